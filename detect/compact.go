package detect

import (
	"math"
	"math/bits"
	"slices"
	"strings"
)

// The actor state keeps its per-window values in 16 bits: an unsigned
// minifloat with a 5-bit exponent and an 11-bit mantissa (12 significant
// bits). Integers up to 4096 are exact, larger values keep a relative
// precision of 2^-12 (0.024%), values under 2 a resolution of 2^-10, and
// the largest is about 4.29e9 (larger values saturate). Codes are ordered
// like the values they stand for. Negative values are stored as 0.

// f16Max is the largest value a code holds.
var f16Max = f16Decode(math.MaxUint16)

// f16Decode returns the value of code c.
func f16Decode(c uint16) float64 {
	e, f := uint64(c>>11), uint64(c&0x7ff)
	if e == 0 {
		return float64(f) / 1024
	}
	// (1 + f/2048) * 2^e, built as a float64
	return math.Float64frombits((e+1023)<<52 | f<<41)
}

// f16Encode returns the code nearest to x (ties to even).
func f16Encode(x float64) uint16 { return f16Round(x, -1) }

// f16Round returns the code of x rounded to nearest (u < 0, ties to even)
// or stochastically (u in [0, 1): up with the probability of x's distance
// from the code below, so that sums of many small additions stay
// unbiased).
func f16Round(x, u float64) uint16 {
	switch {
	case !(x > 0): // also NaN
		return 0
	case x >= f16Max:
		return math.MaxUint16
	case x < 2:
		m := x * 1024 // exact; 2048 is the code of 2
		lo := math.Floor(m)
		q := uint16(lo)
		switch rem := m - lo; {
		case u < 0 && (rem > 0.5 || rem == 0.5 && q&1 == 1):
			q++
		case u >= 0 && u < rem:
			q++
		}
		return q
	}
	b := math.Float64bits(x)
	e := b>>52 - 1023 // x = 1.m * 2^e, 1 <= e <= 31 here
	q := b >> 41 & 0x7ff
	rem := b & (1<<41 - 1)
	const half = 1 << 40
	switch {
	case u < 0 && (rem > half || rem == half && q&1 == 1):
		q++
	case u >= 0 && u*(1<<41) < float64(rem):
		q++
	}
	c := e<<11 + q // a carry out of the mantissa moves to the next exponent
	if c > math.MaxUint16 {
		return math.MaxUint16
	}
	return uint16(c)
}

// f16Add returns the code of c's value plus x, rounded stochastically with
// the uniform draw u.
func f16Add(c uint16, x, u float64) uint16 { return f16Round(f16Decode(c)+x, u) }

// uniform returns a deterministic draw in [0, 1) from a seed (splitmix64):
// the stochastic rounding of the accumulated profiles must replay the same
// way in eval and after a restore.
func uniform(seed uint64) float64 {
	z := seed + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

// ring holds the most recent values of a per-window series.
type ring struct {
	V [ringLen]uint16 // f16 codes
	N uint8           // values held (<= ringLen)
	I uint8           // next slot
}

func (r *ring) add(x float64) {
	r.V[r.I] = f16Encode(x)
	r.I = (r.I + 1) % ringLen
	if r.N < ringLen {
		r.N++
	}
}

// appendValues appends the values held (in slot order) to dst.
func (r *ring) appendValues(dst []float64) []float64 {
	for _, c := range r.V[:r.N] {
		dst = append(dst, f16Decode(c))
	}
	return dst
}

// medianMAD returns the median and the median absolute deviation of the
// values held, using scratch.
//
// It sorts the f16 codes, not the values (f16Decode increases with the
// code), by their two bytes (sortCodes), and does not sort the deviations:
// those of the values below the median, taken downwards, and of the
// others, taken upwards, are each in order (x-med rounds monotonically),
// so merging the two runs gives them sorted; the merge stops at the two
// the median of the deviations needs. The results are those of sorting
// the values and the deviations, bit for bit (TestRingMedianMADAsSorting).
func (r *ring) medianMAD(scratch []float64) (med, mad float64, _ []float64) {
	n := int(r.N)
	if n == 0 {
		return 0, 0, scratch
	}
	var codes [ringLen]uint16
	c := codes[:n]
	sortCodes(c, r.V[:n])
	scratch = slices.Grow(scratch[:0], 2*n)
	xs := scratch[:n]
	for i, v := range c {
		xs[i] = f16Decode(v)
	}
	med = quantileSorted(xs, 0.5)
	hi := 0
	for hi < n && xs[hi] < med {
		hi++
	}
	devs := scratch[n : 2*n]
	lo := hi - 1
	// quantileSorted(devs, 0.5) reads devs[(n-1)/2] and the one after
	for k := range devs[:min(n, (n-1)/2+2)] {
		if hi == n || lo >= 0 && math.Abs(xs[lo]-med) <= math.Abs(xs[hi]-med) {
			devs[k] = math.Abs(xs[lo] - med)
			lo--
		} else {
			devs[k] = math.Abs(xs[hi] - med)
			hi++
		}
	}
	return med, quantileSorted(devs, 0.5), scratch[:2*n]
}

// quantile returns quantileSorted of the values held at q (0 for an
// empty ring): the codes sorted (sortCodes), not the values, as medianMAD
// does; no allocation.
func (r *ring) quantile(q float64) float64 {
	n := int(r.N)
	var codes [ringLen]uint16
	var xs [ringLen]float64
	sortCodes(codes[:n], r.V[:n])
	for i, v := range codes[:n] {
		xs[i] = f16Decode(v)
	}
	return quantileSorted(xs[:n], q)
}

// sortCodes writes the codes of src, sorted, to dst (as long as src): a
// radix sort by the low byte, then (stably) by the high one. For a ring's
// at most 64 codes it takes half the time of slices.Sort, and medianMAD,
// which sorts the three rings of every actor the detectors judge, was a
// tenth of a replay's detection.
func sortCodes(dst, src []uint16) {
	const _ = uint8(ringLen) // the counts are uint8s: a larger ring does not compile
	var tmp [ringLen]uint16
	var lo, hi [257]uint8
	for _, v := range src {
		lo[int(v&0xff)+1]++
		hi[int(v>>8)+1]++
	}
	for i := 1; i < len(lo); i++ {
		lo[i] += lo[i-1]
		hi[i] += hi[i-1]
	}
	t := tmp[:len(src)]
	for _, v := range src {
		t[lo[v&0xff]] = v
		lo[v&0xff]++
	}
	for _, v := range t {
		dst[hi[v>>8]] = v
		hi[v>>8]++
	}
}

// count returns how many values r holds (0 for a nil ring).
func (r *ring) count() int {
	if r == nil {
		return 0
	}
	return int(r.N)
}

// howProfile is an actor's hour-of-week profile, sparse: Bits marks the
// hours of the week (0..167) that hold a bin, and Bins holds those bins in
// hour order, so an office worker's forty-odd working hours cost 4 bytes
// each instead of the whole week's.
type howProfile struct {
	Bits [3]uint64
	Bins []howBin
}

// howBin is one hour of the week: N active windows, R (f16) their records.
type howBin struct{ N, R uint16 }

// index returns where hour h's bin is (or would be) in Bins, and whether
// it is there.
func (p *howProfile) index(h int) (int, bool) {
	w, b := h>>6, uint(h&63)
	i := bits.OnesCount64(p.Bits[w] & (1<<b - 1))
	for k := 0; k < w; k++ {
		i += bits.OnesCount64(p.Bits[k])
	}
	return i, p.Bits[w]&(1<<b) != 0
}

// count returns hour h's active windows.
func (p *howProfile) count(h int) float64 {
	if i, ok := p.index(h); ok {
		return float64(p.Bins[i].N)
	}
	return 0
}

// get returns hour h's active windows and records.
func (p *howProfile) get(h int) (n, rec float64) {
	if i, ok := p.index(h); ok {
		return float64(p.Bins[i].N), f16Decode(p.Bins[i].R)
	}
	return 0, 0
}

// add counts an active window of rec records at hour h, rounding the sum
// with the uniform draw u.
func (p *howProfile) add(h int, rec, u float64) {
	i, ok := p.index(h)
	if !ok {
		if len(p.Bins) == cap(p.Bins) { // grow by 8 bins, not by doubling
			bins := make([]howBin, len(p.Bins), len(p.Bins)+8)
			copy(bins, p.Bins)
			p.Bins = bins
		}
		p.Bins = slices.Insert(p.Bins, i, howBin{})
		p.Bits[h>>6] |= 1 << uint(h&63)
	}
	b := &p.Bins[i]
	if b.N < math.MaxUint16 {
		b.N++
	}
	b.R = f16Add(b.R, rec, u)
}

// halve halves every bin (old weeks fade) and returns the new total of
// active windows; bins left empty are dropped.
func (p *howProfile) halve() uint32 {
	var tot uint32
	var keep [3]uint64
	out := p.Bins[:0]
	i := 0
	for h := 0; h < 168; h++ {
		if p.Bits[h>>6]&(1<<uint(h&63)) == 0 {
			continue
		}
		b := p.Bins[i]
		i++
		b.N /= 2
		b.R = f16Encode(f16Decode(b.R) / 2)
		tot += uint32(b.N)
		if b.N == 0 && b.R == 0 {
			continue
		}
		keep[h>>6] |= 1 << uint(h&63)
		out = append(out, b)
	}
	p.Bits, p.Bins = keep, out
	return tot
}

// each calls fn with every hour that holds a bin and its active windows.
func (p *howProfile) each(fn func(h int, n float64)) {
	i := 0
	for h := 0; h < 168; h++ {
		if p.Bits[h>>6]&(1<<uint(h&63)) != 0 {
			fn(h, float64(p.Bins[i].N))
			i++
		}
	}
}

// setInterner shares identical item sets between actors: most actors of a
// role touch the same few stores, resource types, categories and
// countries, and one copy of each set serves them all. Shared slices are
// clipped (capacity = length), so mergeSet's append copies before it
// changes one.
type setInterner struct{ m map[string][]string }

// maxInterned bounds the distinct sets kept; beyond it the table starts
// over (the slices already shared stay valid).
const maxInterned = 1 << 16

// intern returns the shared copy of set.
func (t *setInterner) intern(set []string) []string {
	if len(set) == 0 {
		return nil
	}
	key := strings.Join(set, "\x00")
	if s, ok := t.m[key]; ok {
		return s
	}
	if t.m == nil || len(t.m) >= maxInterned {
		t.m = map[string][]string{}
	}
	s := slices.Clip(set)
	t.m[key] = s
	return s
}

// internAll interns every item set of st.
func (t *setInterner) internAll(st *actorState) {
	st.Stores = t.intern(st.Stores)
	st.ResourceTypes = t.intern(st.ResourceTypes)
	st.Categories = t.intern(st.Categories)
	st.Countries = t.intern(st.Countries)
}
