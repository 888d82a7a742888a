package detect

import (
	"math"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/chatwarden/chatwarden/models"
)

// seasonalFixture is a noiseless count series of 30-minute points: a daily
// cycle between 50 and 150, weekends at half, level times lvl(i).
func seasonalFixture(i int64, lvl func(int64) float64) float64 {
	t := time.Unix(i*1800, 0).UTC()
	h := float64(t.Hour()) + float64(t.Minute())/60
	y := 100 + 50*math.Sin(2*math.Pi*h/24)
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		y *= 0.5
	}
	return math.Round(y * lvl(i))
}

// feedSeries runs seriesPrepare and learn over windows [from, to) and
// returns the state prepared for window to.
func feedSeries(t *testing.T, e *Engine, st *actorState, from, to int64, lvl func(int64) float64) *seriesState {
	t.Helper()
	for w := from; w < to; w++ {
		s := e.seriesPrepare(st, w)
		if s == nil && w-from >= seriesMinLife {
			t.Fatalf("window %d: no series state", w)
		}
		if s != nil {
			s.learn(w, seasonalFixture(w, lvl))
		}
		st.ActiveWindows++
		if st.FirstSeen == 0 {
			st.FirstSeen = w * 1800
		}
		st.LastSeen = w * 1800
	}
	return e.seriesPrepare(st, to)
}

func seriesEngine(t *testing.T) *Engine {
	t.Helper()
	cfg := Config{Window: 30 * time.Minute}
	cfg.Detectors.EnumEvery = 30 * time.Minute
	e, err := New(cfg, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestSeasonalDecomposition: the expectation follows the daily and weekly
// cycle (weekday/weekend day types before three weeks, past weeks after),
// the spread stays at its Poisson floor on a noiseless series, and a level
// shift moves the level ratio, not the seasonal base.
func TestSeasonalDecomposition(t *testing.T) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC).Unix() / 1800 // a Monday
	one := func(int64) float64 { return 1 }
	cases := []struct {
		name     string
		days     int64
		lvl      func(int64) float64
		mode     string
		wantRho  float64
		warmedUp bool
	}{
		{"one day: warming up", 1, one, "warming-up", 1, false},
		{"day types after a week (weekday)", 9, one, "same slot, past days of the same day type", 1, true},
		{"weekend after two weekends", 13, one, "same slot, past days of the same day type", 1, true},
		{"past weeks after three weeks", 25, one, "same slot, past weeks", 1, true},
		{"level shift x1.5 two days ago", 25, func(i int64) float64 {
			if i >= start+23*48 {
				return 1.5
			}
			return 1
		}, "same slot, past weeks", 1.5, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := seriesEngine(t)
			st := &actorState{}
			to := start + c.days*48 + 17 // 08:30
			s := feedSeries(t, e, st, start, to, c.lvl)
			if s.ok != c.warmedUp || s.mode != c.mode {
				t.Fatalf("ok %v mode %q, want %v %q", s.ok, s.mode, c.warmedUp, c.mode)
			}
			if !s.ok {
				return
			}
			want := seasonalFixture(to, c.lvl)
			if math.Abs(s.mu-want) > 0.03*want {
				t.Errorf("expected %.1f, want %.1f (base %.1f level %.3f)", s.mu, want, s.b, s.rho)
			}
			if math.Abs(s.rho-c.wantRho) > 0.03 {
				t.Errorf("level %.3f, want %.2f", s.rho, c.wantRho)
			}
			if s.kappa != 1 || math.Abs(s.v-s.mu) > 0.1*s.mu+2 {
				t.Errorf("spread: kappa %.2f variance %.1f for mean %.1f, want Poisson", s.kappa, s.v, s.mu)
			}
		})
	}
}

// TestSeasonalCoverage: an actor active a third of its windows (an office
// worker) is not a count series; one active in every window is.
func TestSeasonalCoverage(t *testing.T) {
	e := seriesEngine(t)
	const day0 = 20000 * 86400
	st := &actorState{FirstSeen: day0, LastSeen: day0 + 2*86400, ActiveWindows: 32}
	if s := e.seriesPrepare(st, (day0+2*86400)/1800+1); s != nil || st.Series != nil {
		t.Error("an actor active in a third of its windows got a series")
	}
	st = &actorState{FirstSeen: day0, LastSeen: day0 + 2*86400 - 1800, ActiveWindows: 96}
	if s := e.seriesPrepare(st, (day0+2*86400)/1800); s == nil {
		t.Error("an actor active in every window got no series")
	}
	// below series_min_window the detector is off
	e60, err := New(Config{}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := e60.seriesPrepare(&actorState{}, 1); s != nil {
		t.Error("60s windows: series kept, want off below series_min_window")
	}
}

// TestCountLower checks the lower count tail against gonum's Poisson CDF
// and the overdispersed case against a wider spread.
func TestCountLower(t *testing.T) {
	if got, want := countLower(3, 10, 10), (distuv.Poisson{Lambda: 10}).CDF(3); math.Abs(got-want) > 1e-12 {
		t.Errorf("Poisson P(X<=3 | 10) = %g, want %g", got, want)
	}
	if p, q := countLower(3, 10, 10), countLower(3, 10, 40); !(q > p) {
		t.Errorf("overdispersed lower tail %g not above Poisson %g", q, p)
	}
	if got := countLower(-1, 10, 10); got != 0 {
		t.Errorf("P(X <= -1) = %g", got)
	}
	// NB mean 10 variance 40: P(X <= 0) = p^r with p = 0.25, r = 10/3
	if got, want := countLower(0, 10, 40), math.Pow(0.25, 10.0/3); math.Abs(got-want) > 1e-9 {
		t.Errorf("NB P(X<=0) = %g, want %g", got, want)
	}
}

// TestSeasonalFindingEvidence: a spike and a dip each give a finding whose
// evidence a person can check: observed beyond the threshold beyond the
// expected value, the spread, a tail probability under series_tail_prob,
// and the base it came from.
func TestSeasonalFindingEvidence(t *testing.T) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC).Unix() / 1800
	one := func(int64) float64 { return 1 }
	for _, c := range []struct {
		name   string
		factor float64
		above  bool
	}{{"spike", 4, true}, {"dip", 0.1, false}} {
		t.Run(c.name, func(t *testing.T) {
			e := seriesEngine(t)
			st := &actorState{Type: "service"}
			to := start + 25*48 + 24 // a Tuesday noon
			feedSeries(t, e, st, start, to, one)
			ws := time.Unix(to*1800, 0).UTC()
			row := windowRow{WindowStart: ws, Tenant: "default", ActorID: "feed", ActorType: "service",
				Records: uint64(c.factor * seasonalFixture(to, one))}
			cyc := e.newCycle(ws, ws.Add(30*time.Minute), []windowRow{row})
			var f *models.Finding
			for _, fd := range e.detectRow(cyc, &row, st) {
				if fd.Detector == DetSeasonal {
					f = &fd
				}
			}
			if f == nil {
				t.Fatalf("no %s finding for %d records (expected %.0f)", DetSeasonal, row.Records, seasonalFixture(to, one))
			}
			ev := f.Evidence
			between := ev.Observed > ev.Threshold && ev.Threshold > ev.Baseline
			if !c.above {
				between = ev.Observed < ev.Threshold && ev.Threshold < ev.Baseline
			}
			if !between || ev.Spread <= 0 || f.Probability > 1e-6 || ev.BaselineSource != "same slot, past weeks" ||
				ev.Notes["level_ratio"] == 0 || ev.Notes["residual_spread"] < 1 || f.Summary == "" {
				t.Errorf("evidence: observed %.0f threshold %.1f expected %.1f spread %.1f p %g source %q notes %v",
					ev.Observed, ev.Threshold, ev.Baseline, ev.Spread, f.Probability, ev.BaselineSource, ev.Notes)
			}
			t.Log(f.Summary)
		})
	}
}

// TestSeasonalQuietSlots: an actor active in every 5-minute window whose
// nights carry zero records (a rota agent's heartbeats) expects nothing at
// night, so a night of zeros is no dip.
func TestSeasonalQuietSlots(t *testing.T) {
	cfg := Config{Window: 5 * time.Minute}
	e, err := New(cfg, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const step = 300
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC).Unix() / step
	y := func(w int64) float64 {
		if h := time.Unix(w*step, 0).UTC().Hour(); h >= 8 && h < 18 {
			return 20
		}
		return 0
	}
	st := &actorState{Type: "human"}
	to := start + 24*288 + 4*12 // 04:00, eight hours into a night of zeros
	for w := start; w < to; w++ {
		ws := time.Unix(w*step, 0).UTC()
		row := windowRow{WindowStart: ws, Tenant: "default", ActorID: "agent", ActorType: "human", Records: uint64(y(w))}
		cyc := e.newCycle(ws, ws.Add(5*time.Minute), []windowRow{row})
		for _, f := range e.detectRow(cyc, &row, st) {
			if f.Detector == DetSeasonal && w >= start+22*288 {
				t.Errorf("%s: %s", ws.Format(time.RFC3339), f.Summary)
			}
		}
		e.learnRow(cyc, &row, st, nil)
	}
	if st.Series == nil || !st.Series.ok {
		t.Fatalf("no warm series state: %+v", st.Series)
	}
}
