package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/detect/eval"
	"github.com/chatwarden/chatwarden/sim"
)

// runSimulateSeries writes labelled seasonal count series: access.v1 JSONL
// (one event per point, records = the count), eval labels, and a manifest
// for nab-score.
func runSimulateSeries(_ context.Context, e *env, args []string) error {
	fs, _ := newFlags(e, "simulate-series")
	seed := fs.Int64("seed", 1, "random seed")
	step := fs.Duration("step", 5*time.Minute, "point spacing (use it as eval -window)")
	count := fs.Int("count", 6, "number of series")
	days := fs.Int("days", 60, "days per series")
	outEvents := fs.String("out-events", "", "events JSONL file (required)")
	outLabels := fs.String("out-labels", "", "labels JSONL file (required)")
	outSeries := fs.String("out-series", "", "series manifest JSON file, for nab-score (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *outEvents == "" || *outLabels == "" || *outSeries == "" {
		fmt.Fprintln(e.stderr, "chatwarden simulate-series: -out-events, -out-labels and -out-series are required")
		return errUsage
	}
	if *step <= 0 || *count < 1 || *days < 7 {
		fmt.Fprintln(e.stderr, "chatwarden simulate-series: want -step > 0, -count >= 1, -days >= 7")
		return errUsage
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

// runNABScore scores eval alerts on generated series with NAB's standard
// profile and prints one row per series, recall per anomaly kind, and last
// nab_standard=<score>.
func runNABScore(_ context.Context, e *env, args []string) error {
	fs, _ := newFlags(e, "nab-score")
	series := fs.String("series", "", "comma-separated series manifests (simulate-series -out-series)")
	alerts := fs.String("alerts", "", "comma-separated alerts JSONL files (eval -alerts-out)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *series == "" || *alerts == "" {
		fmt.Fprintln(e.stderr, "chatwarden nab-score: -series and -alerts are required")
		return errUsage
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
	fmt.Fprintf(e.stdout, "%-24s %7s %8s %4s %8s  %s\n", "series", "windows", "detected", "fp", "raw", "missed")
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
		fmt.Fprintf(e.stdout, "%-24s %7d %8d %4d %8.3f  %s\n", f.Name, f.Windows, f.Detected, f.FalsePositives, f.Score, strings.Join(missed, " "))
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintln(e.stdout, "recall by kind:")
	for _, k := range names {
		c := kinds[k]
		fmt.Fprintf(e.stdout, "  %-12s %d/%d  %.2f\n", k, c[0], c[1], float64(c[0])/float64(max(1, c[1])))
	}
	fmt.Fprintf(e.stdout, "raw %.3f  null %.3f  perfect %.3f\n", r.Raw, r.Null, r.Perfect)
	fmt.Fprintf(e.stdout, "nab_standard=%.1f\n", r.Normalized)
	return nil
}
