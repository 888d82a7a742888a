package eval

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/sim"
	"github.com/chatwarden/chatwarden/store"
)

// seriesAgg serves generated series as window aggregates, one row per
// point (the same rows the store returns for one event per point).
type seriesAgg struct {
	start time.Time
	step  time.Duration
	ss    []sim.Series
	// silent, when set, drops the rows it returns true for (a feed that
	// sends nothing).
	silent func(s *sim.Series, i int) bool
}

func (a *seriesAgg) WindowAggregates(_ context.Context, from, to time.Time, window time.Duration, _ store.Shard) ([]store.WindowActivity, error) {
	if window != a.step {
		return nil, fmt.Errorf("series have %s points, asked %s windows", a.step, window)
	}
	var out []store.WindowActivity
	for t := from; t.Before(to); t = t.Add(window) {
		i := int(t.Sub(a.start) / a.step)
		for k := range a.ss {
			s := &a.ss[k]
			if i < 0 || i >= len(s.Values) || (a.silent != nil && a.silent(s, i)) {
				continue
			}
			out = append(out, store.WindowActivity{WindowStart: t, Tenant: s.Tenant, ActorID: s.Actor, ActorType: "service",
				ActorRole: "feed", Events: 1, Records: s.Values[i], Stores: []string{"metrics"}, ResourceTypes: []string{"count"}})
		}
	}
	return out, nil
}

func (a *seriesAgg) RecentSubjects(context.Context, time.Time, time.Time, time.Time, store.Shard) ([]store.SubjectCounts, error) {
	return nil, nil
}

func (a *seriesAgg) TopSubjects(context.Context, string, string, time.Time, time.Time, int) ([]string, error) {
	return nil, nil
}

func (a *seriesAgg) SubjectsOutsideConversation(context.Context, string, string, time.Time, time.Time) (uint64, error) {
	return 0, nil
}

func (a *seriesAgg) SubjectsRead(context.Context, string, string, time.Time, time.Time) (uint64, error) {
	return 0, nil
}

// replaySeries runs the whole engine (every detector, defaults unless cfg
// says otherwise) over the series in process and returns the alerts, after
// the same per-(detector, actor) hourly dedupe as eval.
func replaySeries(t *testing.T, cfg detect.Config, ss []sim.Series) []Alert {
	t.Helper()
	return replaySilent(t, cfg, ss, nil)
}

// replaySilent is replaySeries with the rows silent returns true for left
// out.
func replaySilent(t *testing.T, cfg detect.Config, ss []sim.Series, silent func(*sim.Series, int) bool) []Alert {
	t.Helper()
	step := ss[0].Step
	cfg.Window = step
	if cfg.Detectors.EnumEvery == 0 && step > 10*time.Minute {
		cfg.Detectors.EnumEvery = step // the 10m default refuses longer windows today
	}
	al := &alerter{last: map[alertKey]time.Time{}}
	agg := &seriesAgg{start: ss[0].Start, step: step, ss: ss, silent: silent}
	e, err := detect.New(cfg, agg, detect.Options{Findings: func(_ context.Context, fs ...models.Finding) error { return al.add(fs) }})
	if err != nil {
		t.Fatal(err)
	}
	e.StartAt(ss[0].Start.Add(step))
	if err := e.Advance(t.Context(), ss[0].Start.Add(time.Duration(ss[0].Points)*step)); err != nil {
		t.Fatal(err)
	}
	var out []Alert
	for _, a := range al.alerts {
		if !a.Folded {
			out = append(out, a)
		}
	}
	return out
}

func manifests(ss []sim.Series) []SeriesManifest {
	out := make([]SeriesManifest, len(ss))
	for i, s := range ss {
		m := SeriesManifest{Name: s.Name, Tenant: s.Tenant, Actor: s.Actor, Start: s.Start, Step: s.Step, Points: s.Points, Noise: s.Noise}
		for _, w := range s.Windows {
			m.Windows = append(m.Windows, struct {
				Kind  string `json:"kind"`
				First int    `json:"first"`
				Last  int    `json:"last"`
			}{w.Kind, w.First, w.Last})
		}
		out[i] = m
	}
	return out
}

// TestSeriesAnomaliesDetected: in generated seasonal series (daily and
// weekly cycles, trend, Poisson and overdispersed noise), labelled spikes,
// dips and level shifts are detected inside their windows by
// seasonal_count at the shipped defaults: at least one of each kind, and at
// least 2 in 3 of each kind (a dip of a few points in noise with a 30%
// coefficient of variation can be lost in it; seed 7 has one such).
func TestSeriesAnomaliesDetected(t *testing.T) {
	found, total := map[string]int{}, map[string]int{}
	for _, step := range []time.Duration{5 * time.Minute, 30 * time.Minute} {
		days := 45
		if step == 30*time.Minute {
			days = 70
		}
		ss := sim.GenerateSeries(sim.SeriesOptions{Seed: 7, Step: step, Count: 4, Days: days})
		alerts := replaySeries(t, detect.Config{}, ss)
		for _, s := range ss {
			for _, w := range s.Windows {
				total[w.Kind]++
				hit := false
				for _, a := range alerts {
					if a.Tenant == s.Tenant && a.Detector == detect.DetSeasonal && !a.WindowEnd.Before(w.At) && !a.WindowEnd.After(w.End) {
						hit = true
						break
					}
				}
				if hit {
					found[w.Kind]++
				} else {
					t.Logf("%s (%s): %s at %s not detected", s.Name, s.Noise, w.Kind, w.At.Format(time.RFC3339))
				}
			}
		}
	}
	t.Logf("detected %v of %v", found, total)
	for _, k := range []string{sim.SeriesSpike, sim.SeriesDip, sim.SeriesLevelUp, sim.SeriesLevelDown} {
		if found[k] == 0 || 3*found[k] < 2*total[k] {
			t.Errorf("%s: %d of %d detected, want at least one and 2 in 3", k, found[k], total[k])
		}
	}
}

// TestSeriesOutage: a busy feed that stops sending altogether (no events,
// not zero counts) for three hours of a weekday afternoon is reported by
// seasonal_count while it is silent, judged as zero counts.
func TestSeriesOutage(t *testing.T) {
	ss := sim.GenerateSeries(sim.SeriesOptions{Seed: 5, Step: 5 * time.Minute, Count: 1, Days: 35})
	s := &ss[0]
	out0 := time.Date(2026, 1, 29, 13, 0, 0, 0, time.UTC) // a Thursday, day 24
	for _, w := range s.Windows {
		if w.End.After(out0.Add(-4*24*time.Hour)) && w.Start.Before(out0.Add(24*time.Hour)) {
			t.Fatalf("a labelled anomaly %+v is near the outage: pick another time", w)
		}
	}
	first := int(out0.Sub(s.Start) / s.Step)
	alerts := replaySilent(t, detect.Config{}, ss, func(_ *sim.Series, i int) bool { return i >= first && i < first+36 })
	var hit, before int
	for _, a := range alerts {
		switch {
		case a.Detector == detect.DetSeasonal && !a.WindowEnd.Before(out0) && !a.WindowEnd.After(out0.Add(3*time.Hour)):
			hit++
			if !strings.Contains(a.Summary, "no events at all") {
				t.Errorf("outage finding without the silence in its summary: %s", a.Summary)
			}
		case a.WindowEnd.Before(out0) && a.WindowEnd.After(out0.Add(-3*24*time.Hour)):
			before++
			t.Logf("before: %s %s %s", a.WindowEnd.Format(time.RFC3339), a.Detector, a.Summary)
		}
	}
	if hit == 0 {
		t.Errorf("a three-hour outage of a busy feed at %s was not reported (alerts %d)", out0, len(alerts))
	}
	if before > 0 {
		t.Errorf("%d alerts in the three quiet days before the outage", before)
	}
}

// seriesSeeds picks the generated sets of TestSeriesNAB: the default is
// held-out seed 11 (the detector's defaults were tuned on seeds 1-3:
// go test -run TestSeriesNAB -v ./detect/eval/ -args -series-seeds=1,2,3).
var seriesSeeds = flag.String("series-seeds", "11", "comma-separated seeds of TestSeriesNAB")

// TestSeriesNAB replays generated series (3 of 5-minute points over 60
// days and 3 of 30-minute points over 120 days per seed) through the whole
// engine in process at the shipped defaults, scores every alert with NAB's
// standard profile, and wants at least 70.
func TestSeriesNAB(t *testing.T) {
	var seeds []int64
	for _, f := range strings.Split(*seriesSeeds, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			t.Fatalf("-series-seeds: %v", err)
		}
		seeds = append(seeds, n)
	}
	var files []NABFile
	for _, seed := range seeds {
		for _, step := range []time.Duration{5 * time.Minute, 30 * time.Minute} {
			days, count := 60, 3
			if step == 30*time.Minute {
				days = 120
			}
			ss := sim.GenerateSeries(sim.SeriesOptions{Seed: seed, Step: step, Count: count, Days: days})
			alerts := replaySeries(t, detect.Config{}, ss)
			byDet := map[string]int{}
			for _, a := range alerts {
				byDet[a.Detector]++
			}
			t.Logf("seed %d step %s: alerts by detector %v", seed, step, byDet)
			files = append(files, NABFiles(manifests(ss), alerts)...)
		}
	}
	r := ScoreNAB(files, NABStandard)
	kinds := map[string][2]int{}
	for _, f := range r.Files {
		t.Logf("%-22s windows %d detected %d fp %d score %.2f missed %v", f.Name, f.Windows, f.Detected, f.FalsePositives, f.Score, f.MissedKinds)
		for k, n := range f.DetectedKinds {
			c := kinds[k]
			c[0] += n
			c[1] += n
			kinds[k] = c
		}
		for k, n := range f.MissedKinds {
			c := kinds[k]
			c[1] += n
			kinds[k] = c
		}
	}
	ks := make([]string, 0, len(kinds))
	for k := range kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	for _, k := range ks {
		t.Logf("recall %-12s %d/%d", k, kinds[k][0], kinds[k][1])
	}
	t.Logf("nab_standard=%.1f (raw %.2f null %.2f perfect %.2f)", r.Normalized, r.Raw, r.Null, r.Perfect)
	if r.Normalized < 70 {
		t.Errorf("NAB standard %.1f on seeds %v, want >= 70", r.Normalized, seeds)
	}
}
