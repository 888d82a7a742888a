package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"time"

	"github.com/chatwarden/chatwarden/detect/eval"
	"github.com/chatwarden/chatwarden/internal/progress"
	"github.com/chatwarden/chatwarden/store"
)

// runEval replays a labelled scenario through a fresh ClickHouse database
// and the detection engine on a simulated clock, and prints the score.
func runEval(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "eval")
	events := fs.String("events", "", "JSONL scenario: access.v1 and consent.v1 lines (required)")
	labels := fs.String("labels", "", "labels JSONL: {id, kind, tenant, actor_id, start, end} a line (required)")
	negatives := fs.String("negatives", "", "hard-negative labels JSONL (kind negative:<name>)")
	window := fs.Duration("window", 0, "detection window (default: detect.window, 60s)")
	alertsOut := fs.String("alerts-out", "", "write the alerts, one JSON object a line, to this file")
	format := addFormatFlag(fs, "text", "json").withJSONAlias(fs)
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the replay to this file")
	maxRejected := fs.Float64("max-rejected", eval.DefaultMaxRejected,
		"fail (exit 1) when more than this fraction of the lines is rejected (0.001 = 0.1%)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	out, err := format.get(e.stderr)
	if err != nil {
		return err
	}
	if *events == "" || *labels == "" {
		fmt.Fprintln(e.stderr, "chatwarden eval: -events and -labels are required")
		return errUsage
	}
	if *maxRejected < 0 || *maxRejected > 1 {
		fmt.Fprintln(e.stderr, "chatwarden eval: -max-rejected must be a fraction between 0 and 1")
		return errUsage
	}
	c, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *window != 0 {
		c.Detect.Window = *window
		if err := c.Detect.Validate(); err != nil {
			return err
		}
	}
	ls, err := eval.ReadLabels(*labels)
	if err != nil {
		return err
	}
	var negs []eval.Label
	if *negatives != "" {
		if negs, err = eval.ReadLabels(*negatives); err != nil {
			return err
		}
	}
	in, err := eval.OpenFile(*events)
	if err != nil {
		return err
	}
	defer in.Close()
	var alerts io.Writer
	if *alertsOut != "" {
		f, err := os.Create(*alertsOut)
		if err != nil {
			return fmt.Errorf("creating alerts file: %w", err)
		}
		defer f.Close()
		alerts = f
	}

	// A fresh database of its own, dropped at the end, with the detection
	// schema: every table, but not the views that fill only the rollups
	// of ingest's dedupe, the pages and the reports, which the replay never
	// reads (about 3 s less ClickHouse CPU on the eval scenario's INSERTs).
	// When the replay can answer every read of raw events itself, and can
	// start again from the file should it meet one it cannot, the events
	// table keeps no rows either (the pass-through schema: about a third
	// less INSERT CPU again; docs/scaling.md).
	sc := store.DetectionSchema
	if _, seekable := in.(io.ReadSeeker); seekable && eval.PassThrough(c.Detect, c.ClickHouse.Cluster != "") {
		sc = store.PassThroughSchema
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	c.ClickHouse.Database = "eval_" + hex.EncodeToString(b)
	s, err := openStore(ctx, e, c)
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := s.DropDatabase(dctx); err != nil {
			e.log.Error("dropping eval database", "database", c.ClickHouse.Database, "err", err)
		}
		s.Close()
	}()
	if _, err := s.MigrateSchema(ctx, time.Now(), sc); err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	// A replay allocates decoded events at a high rate; some memory for
	// less collection work is worth it, but not much: once the replay
	// holds only the chunks in flight (about 0.5 GB live on the eval
	// scenario), 400 grew the heap to 2.4-2.5 GB, and every fresh page is
	// a page fault (system time), while 200 took 1.5-1.8 GB, 0.4 s less
	// system time and no more user time (GC 100: no less CPU again; see
	// docs/scaling.md, "Replay memory").
	defer debug.SetGCPercent(debug.SetGCPercent(200))
	fmt.Fprintf(e.stderr, "eval: replaying %s into database %s (%s schema, window %s)\n", *events, c.ClickHouse.Database, sc, c.Detect.WithDefaults().Window)
	// On a terminal a bar with rate and ETA; otherwise eval's own line
	// every 5 s (with the simulated clock and the insert/detect split).
	opts := eval.Options{Events: in, Labels: ls, Negatives: negs, Config: c.Detect, Store: s, Alerts: alerts, Progress: e.stderr}
	// A file in time order is replayed while it is decoded; one that
	// turns out not to be is replayed again into a fresh database.
	opts.Reset = func(ctx context.Context, sc store.Schema) (*store.Store, error) {
		if err := s.DropDatabase(ctx); err != nil {
			return nil, err
		}
		s.Close()
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		c.ClickHouse.Database = "eval_" + hex.EncodeToString(b)
		fresh, err := openStore(ctx, e, c)
		if err != nil {
			return nil, err
		}
		s = fresh // the one dropped at the end
		if _, err := s.MigrateSchema(ctx, time.Now(), sc); err != nil {
			return nil, err
		}
		return s, nil
	}
	var bar *progress.Bar
	if progress.IsTerminal(e.stderr) {
		bar = progress.New(e.stderr, "eval replay", "events", progress.Options{})
		opts.Tick = func(done, total int) { bar.Update(int64(done), float64(done)/float64(max(total, 1))) }
		opts.Progress = nil
	}
	sum, err := eval.Run(ctx, opts)
	if bar != nil {
		bar.Done()
	}
	if err != nil {
		return err
	}
	if out == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		printSummary(e.stdout, sum)
	}
	if r := sum.RejectedRatio(); r > *maxRejected {
		printRejected(e.stderr, sum)
		return fmt.Errorf("%d of %d lines (%.3f%%) were rejected, more than -max-rejected %.3f%%: the scores above do not describe the whole file",
			sum.Rejected, sum.Lines, 100*r, 100**maxRejected)
	}
	return nil
}

// printRejected prints rejected lines by reason code, as `status` prints
// dead letters, with the first lines of each reason.
func printRejected(w io.Writer, s *eval.Summary) {
	reasons := make([]string, 0, len(s.RejectedByReason))
	for r := range s.RejectedByReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	fmt.Fprintf(w, "rejected %d of %d lines", s.Rejected, s.Lines)
	for _, r := range reasons {
		fmt.Fprintf(w, "  %s=%d", r, s.RejectedByReason[r])
	}
	fmt.Fprintln(w)
	for _, x := range s.RejectedExamples {
		field := ""
		if x.Field != "" {
			field = fmt.Sprintf(" field %q:", x.Field)
		}
		fmt.Fprintf(w, "  line %d: %s:%s %s\n", x.Line, x.Reason, field, x.Detail)
	}
}

func printSummary(w io.Writer, s *eval.Summary) {
	fmt.Fprintf(w, "lines %d  events %d  consents %d  rejected %d  actors %d  actor-days %d  windows %d\n",
		s.Lines, s.Events, s.Consents, s.Rejected, s.Actors, s.ActorDays, s.Windows)
	if s.Rejected > 0 {
		printRejected(w, s)
	}
	fmt.Fprintf(w, "alerts %d  true %d  false %d (once per actor, detector, hour)\n", s.Alerts, s.TrueAlerts, s.FalseAlerts)
	fmt.Fprintf(w, "recall %.3f (mean over kinds %.3f)  precision %.3f  false alerts per 1000 actor-days %.2f\n",
		s.Recall, s.KindsRecall, s.Precision, s.FalsePer1000)
	fmt.Fprintf(w, "time to detect: median %.0fs (%.2f windows)  p95 %.0fs\n", s.TTDMedianS, s.TTDMedianWin, s.TTDP95S)
	fmt.Fprintf(w, "open-window findings %d (streaming, judged at each window's close), not confirmed by their window %d\n",
		s.OpenWindowFindings, s.OpenWindowRetracted)
	fmt.Fprintf(w, "replay %.0f events/s (%.1fs)\n", s.EventsPerS, s.ElapsedS)
	kinds := make([]string, 0, len(s.ByKind))
	for k := range s.ByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	fmt.Fprintln(w, "recall by kind:")
	for _, k := range kinds {
		ks := s.ByKind[k]
		fmt.Fprintf(w, "  %-30s %d/%d  %.2f", k, ks.Detected, ks.Labels, ks.Recall)
		if len(ks.Missed) > 0 {
			fmt.Fprintf(w, "  missed %v", ks.Missed)
		}
		fmt.Fprintln(w)
	}
	if len(s.FalseByDetector) > 0 {
		fmt.Fprintln(w, "false alerts by detector:")
		dets := make([]string, 0, len(s.FalseByDetector))
		for d := range s.FalseByDetector {
			dets = append(dets, d)
		}
		sort.Strings(dets)
		for _, d := range dets {
			fmt.Fprintf(w, "  %-30s %d\n", d, s.FalseByDetector[d])
		}
	}
	if len(s.Negatives) > 0 {
		fmt.Fprintln(w, "hard negatives (false alerts inside each):")
		names := make([]string, 0, len(s.Negatives))
		for n := range s.Negatives {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "  %-30s %d\n", n, s.Negatives[n])
		}
	}
}
