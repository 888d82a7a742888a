package detect

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
	"unsafe"
)

// TestF16 checks the 16-bit encoding of per-window values: integers up to
// 4096 and values with a fractional 2^-10 below 2 are exact, other values
// keep 12 significant bits, codes are ordered, out-of-range values
// saturate, and stochastic rounding is unbiased.
func TestF16(t *testing.T) {
	for i := 0; i <= 4096; i++ {
		if got := f16Decode(f16Encode(float64(i))); got != float64(i) {
			t.Fatalf("integer %d decodes as %v", i, got)
		}
	}
	for _, x := range []float64{0.5, 0.25, 1.0 / 1024, 1.5, 14.5, 2.75} {
		if got := f16Decode(f16Encode(x)); got != x {
			t.Errorf("%v decodes as %v", x, got)
		}
	}
	for _, x := range []float64{4097, 5000.3, 123456.7, 9.87e6, 3.3e9, math.Log(777), 0.0123} {
		got := f16Decode(f16Encode(x))
		if rel := math.Abs(got-x) / x; rel > 1.0/4096 && math.Abs(got-x) > 1.0/2048 {
			t.Errorf("%v decodes as %v (relative error %.2g)", x, got, rel)
		}
	}
	prev := -1.0
	for c := 0; c <= math.MaxUint16; c++ {
		v := f16Decode(uint16(c))
		if v <= prev {
			t.Fatalf("code %d = %v is not above code %d = %v", c, v, c-1, prev)
		}
		if back := f16Encode(v); back != uint16(c) {
			t.Fatalf("code %d = %v encodes back as %d", c, v, back)
		}
		prev = v
	}
	for _, x := range []float64{-3, math.NaN(), 0} {
		if f16Encode(x) != 0 {
			t.Errorf("%v encodes as %d, want 0", x, f16Encode(x))
		}
	}
	if f16Encode(1e12) != math.MaxUint16 || f16Encode(math.Inf(1)) != math.MaxUint16 {
		t.Error("values beyond the range do not saturate")
	}
	// 20,000 additions of 1.3 to a sum past 4096 (where a code steps by 2
	// or more): round-to-nearest would lose each addition, stochastic
	// rounding keeps the sum within a fraction of a percent.
	var c uint16
	for i := range 20000 {
		c = f16Add(c, 1.3, uniform(uint64(i)))
	}
	if got, want := f16Decode(c), 26000.0; math.Abs(got-want)/want > 0.005 {
		t.Errorf("stochastic sum %v, want about %v", got, want)
	}
}

// TestHowProfile: the sparse hour-of-week profile reads back what was
// added, in any order of hours, and halving drops emptied bins only.
func TestHowProfile(t *testing.T) {
	var p howProfile
	dense := map[int][2]float64{}
	for i, h := range []int{100, 3, 167, 64, 63, 0, 100, 128, 3, 3} {
		p.add(h, float64(i), -1)
		d := dense[h]
		dense[h] = [2]float64{d[0] + 1, d[1] + float64(i)}
	}
	for h := range 168 {
		n, r := p.get(h)
		if n != dense[h][0] || r != dense[h][1] || p.count(h) != n {
			t.Fatalf("hour %d: got %v/%v, want %v", h, n, r, dense[h])
		}
	}
	var seen int
	p.each(func(h int, n float64) {
		seen++
		if n != dense[h][0] {
			t.Errorf("each: hour %d has %v windows, want %v", h, n, dense[h][0])
		}
	})
	if seen != len(dense) {
		t.Errorf("each visited %d hours, want %d", seen, len(dense))
	}
	p.add(50, 0, -1) // one window of no records: nothing left after halving
	if tot := p.halve(); tot != 2 {
		t.Errorf("after halving: %d windows, want 2 (hours 3 and 100)", tot)
	}
	for h, want := range map[int][2]float64{0: {0, 2.5}, 167: {0, 1}, 3: {1, 9}, 100: {1, 3}, 50: {0, 0}, 64: {0, 1.5}} {
		if n, r := p.get(h); n != want[0] || r != want[1] {
			t.Errorf("hour %d after halving: %v/%v, want %v", h, n, r, want)
		}
	}
	if _, held := p.index(50); held {
		t.Error("hour 50 (emptied by halving) still holds a bin")
	}
}

// TestRollWindows: the rolling sums over the window-number slots (a mask
// and the latest window instead of a window number per slot) equal sums
// over every window recorded, for spans up to rollLen, with gaps of any
// length and a window recorded twice.
func TestRollWindows(t *testing.T) {
	var s actorState
	held := map[int64][2]float64{}
	slotDen := map[int64]float64{}
	wn := int64(29_000_000)
	for step := range 400 {
		wn += int64([]int{1, 1, 2, 5, 31, 32, 33, 0, 1, 90}[step%10])
		raw, den := float64(step%7*13), float64(step%3)
		// the slot's previous denied count leaves the ring (denied_burst's
		// mean learns it), as with one window number per slot
		prev, written := slotDen[wn%rollLen]
		left, ok := s.roll(wn, raw, den)
		if ok != written || left != prev {
			t.Fatalf("step %d: window %d left %v/%v, want %v/%v", step, wn, left, ok, prev, written)
		}
		slotDen[wn%rollLen] = den
		held[wn] = [2]float64{raw, den}
		for _, w := range []int64{wn, wn + 1, wn + 7} {
			for _, span := range []int{1, 2, 15, 31, 32} {
				var rec, denied, heavy float64
				var k, active int
				for x, v := range held {
					if x > w-int64(span) && x <= w {
						rec, denied = rec+v[0], denied+v[1]
						active++
						if v[0] >= 50 {
							k, heavy = k+1, heavy+v[0]
						}
					}
				}
				gk, gsum, _, gactive := s.heavyInSpan(w, span, 50)
				if got := s.rolling(w, span); got != rec || s.rollingDenied(w, span) != denied || gk != k || gsum != heavy || gactive != active {
					t.Fatalf("step %d, window %d, span %d: rolling %v denied %v heavy %d/%v active %d; want %v %v %d/%v %d",
						step, w, span, got, s.rollingDenied(w, span), gk, gsum, gactive, rec, denied, k, heavy, active)
				}
			}
		}
	}
}

// TestActorStateBudget keeps an actor's state in Go's 1536-byte size class
// (the runtime adds an 8-byte header to objects over 512 bytes that hold
// pointers; the next class is 1792 bytes, 17% more memory at a million
// actors). A field that does not fit needs room made for it: reorder to
// close padding (fields grouped by size), or encode more compactly.
func TestActorStateBudget(t *testing.T) {
	if n := unsafe.Sizeof(actorState{}); n+8 > 1536 {
		t.Errorf("actorState is %d bytes: with the allocation header over the 1536-byte size class", n)
	}
}

// TestCompactStateCheckpoint: a state learned over a few days of windows
// (heavy calls, refusals, gaps) comes back from a checkpoint as it was:
// the sparse profile, the lazily allocated rings and the rolling mask
// included.
func TestCompactStateCheckpoint(t *testing.T) {
	st := &actorState{}
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	for i := range 3000 {
		ts := start.Add(time.Duration(i*7%11+i*3) * time.Minute)
		w := &windowRow{Records: uint64(3 + i%9), Subjects: uint64(1 + i%4), Denied: uint64(i % 13 / 12),
			Stores: []string{"crm"}, Countries: []string{"US"}}
		if i%97 == 0 {
			w.Records = 900
		}
		st.learn(ts, hourOfWeek(ts), 60, 15, float64(w.Records), float64(w.Subjects), float64(w.Denied), 1+float64(i%5)/10, 100, w)
	}
	if st.HeavyLog == nil || st.RollDen == nil || len(st.How.Bins) == 0 || st.RollMask == 0 {
		t.Fatal("the fixture does not reach the lazily allocated parts")
	}
	b, err := encodeSnapshot(&snapshot{Actors: map[actorKey]*actorState{{"t", "a"}: st}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := decodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	got := s.Actors[actorKey{"t", "a"}]
	st.cacheAge = 0 // not saved
	if !reflect.DeepEqual(got, st) {
		t.Errorf("restored state differs:\n got %+v\nwant %+v", got, st)
	}
}

// medianMADBySorting is ring.medianMAD as it was: the values and their
// absolute deviations sorted as float64s. The reference the merge must
// match bit for bit.
func medianMADBySorting(r *ring) (med, mad float64) {
	if r.N == 0 {
		return 0, 0
	}
	xs := r.appendValues(nil)
	slices.Sort(xs)
	med = quantileSorted(xs, 0.5)
	for i, x := range xs {
		xs[i] = math.Abs(x - med)
	}
	slices.Sort(xs)
	return med, quantileSorted(xs, 0.5)
}

// TestRingMedianMADAsSorting: the median and MAD of a ring, from its
// sorted codes and the merged runs of deviations, are bit for bit those of
// sorting the values and the deviations, and so are its quantiles, for
// rings of every length (and wrapped), with ties, zeros, values below 2
// (the f16 codes' linear range), and large ones.
func TestRingMedianMADAsSorting(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 12))
	gens := []func() float64{
		func() float64 { return float64(rng.IntN(5)) },
		func() float64 { return rng.Float64() * 3 },
		func() float64 { return math.Exp(rng.NormFloat64() * 3) },
		func() float64 { return float64(rng.IntN(2)) * float64(rng.IntN(100000)) },
		func() float64 { return 40 + float64(rng.IntN(3)) },
	}
	var scratch []float64
	checked := 0
	for round := range 4000 {
		gen := gens[round%len(gens)]
		var r ring
		for range rng.IntN(3 * ringLen) {
			r.add(gen())
		}
		med, mad, s := r.medianMAD(scratch)
		scratch = s
		wantMed, wantMAD := medianMADBySorting(&r)
		if math.Float64bits(med) != math.Float64bits(wantMed) || math.Float64bits(mad) != math.Float64bits(wantMAD) {
			t.Fatalf("ring %v (N %d): medianMAD = %v, %v; by sorting %v, %v", r.V[:r.N], r.N, med, mad, wantMed, wantMAD)
		}
		if r.N > 1 && wantMAD > 0 {
			checked++
		}
		// quantile, from the sorted codes, is that of the sorted values
		xs := r.appendValues(nil)
		slices.Sort(xs)
		for _, q := range []float64{0, 0.1, 0.5, 0.9, 1} {
			if got, want := r.quantile(q), quantileSorted(xs, q); math.Float64bits(got) != math.Float64bits(want) {
				t.Fatalf("ring %v (N %d): quantile(%v) = %v; by sorting %v", r.V[:r.N], r.N, q, got, want)
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d rings with a positive MAD: the test checks too little", checked)
	}
}
