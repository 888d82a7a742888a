package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/detect/eval"
	"github.com/chatwarden/chatwarden/sim"
)

// SimulateSeries writes labelled seasonal count series: access.v1 JSONL
// (one event per point, records = the count), eval labels, and a manifest
// for nab-score. The Makefile's eval-series target runs it.
func SimulateSeries(_ context.Context, e *Env, args []string) error {
	fs := e.flags("simulate-series")
	seed := fs.Int64("seed", 1, "random seed")
	step := fs.Duration("step", 5*time.Minute, "point spacing (use it as eval -window)")
	count := fs.Int("count", 6, "number of series")
	days := fs.Int("days", 60, "days per series")
	outEvents := fs.String("out-events", "", "events JSONL file (required)")
	outLabels := fs.String("out-labels", "", "labels JSONL file (required)")
	outSeries := fs.String("out-series", "", "series manifest JSON file, for nab-score (required)")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if *outEvents == "" || *outLabels == "" || *outSeries == "" {
		return errors.New("-out-events, -out-labels and -out-series are required")
	}
	if *step <= 0 || *count < 1 || *days < 7 {
		return errors.New("want -step > 0, -count >= 1, -days >= 7")
	}
	ss := sim.GenerateSeries(sim.SeriesOptions{Seed: *seed, Step: *step, Count: *count, Days: *days})
	write := func(path string, f func(*os.File) error) error {
		out, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("creating %s: %w", path, err)
		}
		if err := f(out); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	}
	if err := write(*outEvents, func(f *os.File) error { return sim.WriteSeriesEvents(f, ss) }); err != nil {
		return err
	}
	if err := write(*outLabels, func(f *os.File) error { return sim.WriteSeriesLabels(f, ss) }); err != nil {
		return err
	}
	return write(*outSeries, func(f *os.File) error {
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		return enc.Encode(ss)
	})
}

// NABScore scores eval alerts on generated series with NAB's standard
// profile and prints one row per series, recall per anomaly kind, and last
// nab_standard=<score>.
func NABScore(_ context.Context, e *Env, args []string) error {
	fs := e.flags("nab-score")
	series := fs.String("series", "", "comma-separated series manifests (simulate-series -out-series)")
	alerts := fs.String("alerts", "", "comma-separated alerts JSONL files (eval -alerts-out)")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if *series == "" || *alerts == "" {
		return errors.New("-series and -alerts are required")
	}
	var ms []eval.SeriesManifest
	for _, p := range strings.Split(*series, ",") {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("opening series manifest: %w", err)
		}
		m, err := eval.ReadSeriesManifest(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		ms = append(ms, m...)
	}
	var as []eval.Alert
	for _, p := range strings.Split(*alerts, ",") {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("opening alerts: %w", err)
		}
		a, err := eval.ReadAlerts(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		as = append(as, a...)
	}
	r := eval.ScoreNAB(eval.NABFiles(ms, as), eval.NABStandard)
	fmt.Fprintf(e.Stdout, "%-24s %7s %8s %4s %8s  %s\n", "series", "windows", "detected", "fp", "raw", "missed")
	kinds := map[string][2]int{}
	for _, f := range r.Files {
		var missed []string
		for k, n := range f.MissedKinds {
			missed = append(missed, fmt.Sprintf("%s:%d", k, n))
			c := kinds[k]
			c[1] += n
			kinds[k] = c
		}
		for k, n := range f.DetectedKinds {
			c := kinds[k]
			c[0] += n
			c[1] += n
			kinds[k] = c
		}
		sort.Strings(missed)
		fmt.Fprintf(e.Stdout, "%-24s %7d %8d %4d %8.3f  %s\n", f.Name, f.Windows, f.Detected, f.FalsePositives, f.Score, strings.Join(missed, " "))
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintln(e.Stdout, "recall by kind:")
	for _, k := range names {
		c := kinds[k]
		fmt.Fprintf(e.Stdout, "  %-12s %d/%d  %.2f\n", k, c[0], c[1], float64(c[0])/float64(max(1, c[1])))
	}
	fmt.Fprintf(e.Stdout, "raw %.3f  null %.3f  perfect %.3f\n", r.Raw, r.Null, r.Perfect)
	fmt.Fprintf(e.Stdout, "nab_standard=%.1f\n", r.Normalized)
	return nil
}
