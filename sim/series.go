package sim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Labelled seasonal count series: one actor per series (its own tenant),
// one access event per point with records = the point's count. Each series
// has a daily and a weekly cycle, a trend, Poisson or overdispersed
// (gamma-Poisson) noise, and a few anomalies of these kinds:
const (
	SeriesSpike     = "spike"      // 1-3 points at 2.5-6x the expected count
	SeriesDip       = "dip"        // 1-6 hours at 0-35% of the expected count
	SeriesLevelUp   = "level_up"   // a lasting rise of 50-150%
	SeriesLevelDown = "level_down" // a lasting fall of 40-70%
	SeriesDrift     = "drift"      // a rise of 60-120% ramping over 6-12 hours, then lasting
)

// SeriesKinds lists the anomaly kinds, in the order the generator rotates
// through them.
var SeriesKinds = []string{SeriesSpike, SeriesDip, SeriesLevelUp, SeriesLevelDown, SeriesDrift}

// SeriesWindow is a labelled anomaly window, NAB's way: the window holds
// 10% of the series' points divided by its number of anomalies, centred on
// the anomaly's first point (Index); First and Last are point indices.
type SeriesWindow struct {
	Kind  string    `json:"kind"`
	Index int       `json:"index"`
	First int       `json:"first"`
	Last  int       `json:"last"`
	At    time.Time `json:"at"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Series is one generated count series and its labels.
type Series struct {
	Name    string         `json:"name"`
	Tenant  string         `json:"tenant"`
	Actor   string         `json:"actor"`
	Start   time.Time      `json:"start"`
	Step    time.Duration  `json:"step_ns"`
	Points  int            `json:"points"`
	Noise   string         `json:"noise"`
	Level   float64        `json:"level"`
	Windows []SeriesWindow `json:"windows"`
	Values  []uint64       `json:"-"`
}

// SeriesOptions choose a generated set.
type SeriesOptions struct {
	Seed int64
	// Step is the point spacing (5m or 30m typically).
	Step time.Duration
	// Count is how many series; Days how long each is.
	Count, Days int
	// Start is the first point's time (default 2026-01-05, a Monday).
	Start time.Time
}

// GenerateSeries returns opts.Count labelled series. Levels, cycle shapes,
// trends, noise and the anomalies' kinds, places and sizes come from the
// seed; anomalies fall in the last 80% of each series, their windows apart.
func GenerateSeries(opts SeriesOptions) []Series {
	if opts.Start.IsZero() {
		opts.Start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	}
	rng := rand.New(rand.NewPCG(uint64(opts.Seed), 0x5e41e5))
	n := int(time.Duration(opts.Days) * 24 * time.Hour / opts.Step)
	perHour := float64(time.Hour) / float64(opts.Step)
	out := make([]Series, 0, opts.Count)
	kind := rng.IntN(len(SeriesKinds))
	for si := range opts.Count {
		name := fmt.Sprintf("s%d-%s-%02d", opts.Seed, opts.Step, si)
		s := Series{Name: name, Tenant: name, Actor: "feed-" + strconv.Itoa(si), Start: opts.Start, Step: opts.Step, Points: n}
		// Per 5 minutes, 15..400 at the daily mean; scaled to the step.
		s.Level = math.Exp(math.Log(15)+rng.Float64()*math.Log(400.0/15)) * float64(opts.Step) / float64(5*time.Minute)
		amp := 0.3 + 0.6*rng.Float64()      // daily swing
		peak := 10 + 8*rng.Float64()        // peak hour (UTC)
		second := 0.3 * rng.Float64()       // a second, smaller daily bump
		weekend := 0.35 + 0.6*rng.Float64() // weekend level vs weekdays
		trend := (rng.Float64() - 0.4) * 0.6
		disp := 0.0 // gamma-Poisson shape: 0 means Poisson
		s.Noise = "poisson"
		if rng.Float64() < 0.5 {
			disp = 8 + 40*rng.Float64()
			s.Noise = fmt.Sprintf("overdispersed (gamma shape %.0f)", disp)
		}
		mean := make([]float64, n)
		for i := range n {
			t := opts.Start.Add(time.Duration(i) * opts.Step)
			h := float64(t.Hour()) + float64(t.Minute())/60
			d := 1 + amp*math.Cos(2*math.Pi*(h-peak)/24) + second*math.Cos(4*math.Pi*(h-peak)/24)
			if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
				d *= weekend
			}
			mean[i] = s.Level * math.Max(0.02, d) * (1 + trend*float64(i)/float64(n))
		}
		// Anomalies: 2..4, kinds rotating through the set.
		k := 2 + rng.IntN(3)
		wlen := int(0.10 * float64(n) / float64(k))
		lo, hi := n/5, n-wlen/2-1
		var idx []int
		for tries := 0; len(idx) < k && tries < 1000; tries++ {
			c := lo + rng.IntN(hi-lo)
			okc := true
			for _, o := range idx {
				if c > o-wlen-int(perHour*24) && c < o+wlen+int(perHour*24) {
					okc = false
				}
			}
			if okc {
				idx = append(idx, c)
			}
		}
		sortInts(idx)
		for _, a := range idx {
			kd := SeriesKinds[kind%len(SeriesKinds)]
			kind++
			applyAnomaly(rng, kd, mean, a, perHour)
			first, last := max(0, a-wlen/2), min(n-1, a+wlen/2)
			s.Windows = append(s.Windows, SeriesWindow{Kind: kd, Index: a, First: first, Last: last,
				At: opts.Start.Add(time.Duration(a) * opts.Step), Start: opts.Start.Add(time.Duration(first) * opts.Step),
				End: opts.Start.Add(time.Duration(last) * opts.Step)})
		}
		s.Values = make([]uint64, n)
		for i, m := range mean {
			if disp > 0 {
				m *= gammaDraw(rng, disp) / disp
			}
			s.Values[i] = poissonDraw(rng, m)
		}
		out = append(out, s)
	}
	return out
}

func applyAnomaly(rng *rand.Rand, kind string, mean []float64, a int, perHour float64) {
	n := len(mean)
	switch kind {
	case SeriesSpike:
		f := 2.5 + 3.5*rng.Float64()
		for i := a; i < min(n, a+1+rng.IntN(3)); i++ {
			mean[i] *= f
		}
	case SeriesDip:
		f := 0.35 * rng.Float64()
		for i := a; i < min(n, a+max(1, int(perHour*(1+5*rng.Float64())))); i++ {
			mean[i] *= f
		}
	case SeriesLevelUp, SeriesLevelDown:
		f := 1.5 + rng.Float64()
		if kind == SeriesLevelDown {
			f = 0.3 + 0.3*rng.Float64()
		}
		for i := a; i < n; i++ {
			mean[i] *= f
		}
	case SeriesDrift:
		f := 0.6 + 0.6*rng.Float64()
		ramp := perHour * (6 + 6*rng.Float64())
		for i := a; i < n; i++ {
			mean[i] *= 1 + f*math.Min(1, float64(i-a+1)/ramp)
		}
	}
}

func sortInts(xs []int) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j] < xs[j-1]; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

// poissonDraw draws a Poisson count: Knuth's product method below 30,
// Hörmann's transformed rejection (PTRS) above.
func poissonDraw(rng *rand.Rand, lambda float64) uint64 {
	if lambda <= 0 {
		return 0
	}
	if lambda < 30 {
		l, k, p := math.Exp(-lambda), uint64(0), 1.0
		for {
			p *= rng.Float64()
			if p <= l {
				return k
			}
			k++
		}
	}
	slam := math.Sqrt(lambda)
	loglam := math.Log(lambda)
	b := 0.931 + 2.53*slam
	a := -0.059 + 0.02483*b
	invalpha := 1.1239 + 1.1328/(b-3.4)
	vr := 0.9277 - 3.6224/(b-2)
	for {
		u := rng.Float64() - 0.5
		v := rng.Float64()
		us := 0.5 - math.Abs(u)
		k := math.Floor((2*a/us+b)*u + lambda + 0.43)
		if us >= 0.07 && v <= vr {
			return uint64(k)
		}
		if k < 0 || (us < 0.013 && v > us) {
			continue
		}
		lg, _ := math.Lgamma(k + 1)
		if math.Log(v)+math.Log(invalpha)-math.Log(a/(us*us)+b) <= -lambda+k*loglam-lg {
			return uint64(k)
		}
	}
}

// gammaDraw draws Gamma(shape, 1) (Marsaglia and Tsang, shape >= 1).
func gammaDraw(rng *rand.Rand, shape float64) float64 {
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}

// WriteSeriesEvents writes the series as access.v1 JSONL, time-ordered
// across series: one read event per point at the point's start, records =
// the count.
func WriteSeriesEvents(w io.Writer, ss []Series) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	pos := make([]int, len(ss))
	var b []byte
	for {
		best := -1
		for i := range ss {
			if pos[i] >= len(ss[i].Values) {
				continue
			}
			if best < 0 || ss[i].Start.Add(time.Duration(pos[i])*ss[i].Step).Before(ss[best].Start.Add(time.Duration(pos[best])*ss[best].Step)) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		s := &ss[best]
		i := pos[best]
		pos[best]++
		b = b[:0]
		b = append(b, `{"event_id":"`...)
		b = append(b, s.Name...)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `","ts":"`...)
		b = s.Start.Add(time.Duration(i)*s.Step).AppendFormat(b, time.RFC3339)
		b = append(b, `","tenant":"`...)
		b = append(b, s.Tenant...)
		b = append(b, `","actor":{"id":"`...)
		b = append(b, s.Actor...)
		b = append(b, `","type":"service","role":"feed"},"action":"read","store":"metrics","resource":{"type":"count"},"records":`...)
		b = strconv.AppendUint(b, s.Values[i], 10)
		b = append(b, "}\n"...)
		if _, err := bw.Write(b); err != nil {
			return fmt.Errorf("writing series events: %w", err)
		}
	}
	return bw.Flush()
}

// WriteSeriesLabels writes one eval label a line per anomaly window (kind
// series:<kind>).
func WriteSeriesLabels(w io.Writer, ss []Series) error {
	enc := json.NewEncoder(w)
	for _, s := range ss {
		for i, win := range s.Windows {
			l := map[string]any{"id": fmt.Sprintf("%s-%d", s.Name, i), "kind": "series:" + win.Kind, "tenant": s.Tenant,
				"actor_id": s.Actor, "start": win.Start, "end": win.End}
			if err := enc.Encode(l); err != nil {
				return fmt.Errorf("writing series labels: %w", err)
			}
		}
	}
	return nil
}
