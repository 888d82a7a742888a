package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/chatwarden/chatwarden/detect/eval"
)

// runLoad stores a JSONL history straight into the configured ClickHouse
// database through the replay path (no Kafka, no detection): `make demo`
// loads days of simulated history this way before it streams live traffic,
// and serve learns the baselines from it when it back-fills.
func runLoad(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "load")
	events := fs.String("events", "", "JSONL history: access.v1 and consent.v1 lines, any order (required; - for stdin)")
	maxRejected := fs.Float64("max-rejected", eval.DefaultMaxRejected,
		"fail (exit 1) when more than this fraction of the lines is rejected (0.001 = 0.1%)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *events == "" {
		fmt.Fprintln(e.stderr, "chatwarden load: --events is required")
		return errUsage
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	p, err := c.pseudonymizer()
	if err != nil {
		return err
	}
	in, err := eval.OpenFile(*events)
	if err != nil {
		return err
	}
	defer in.Close()
	s, err := openStore(ctx, e, c)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Migrate(ctx, time.Now()); err != nil {
		return err
	}
	began := time.Now()
	res, err := eval.Load(ctx, eval.LoadOptions{Events: in, Store: s, Pseudonymizer: p, Progress: e.stderr, IngestedAt: began})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "loaded %d events and %d consents (%s .. %s) into %s in %.1fs; %d already stored, %d of %d lines rejected\n",
		res.Events, res.Consents, res.First.Format(time.RFC3339), res.Last.Format(time.RFC3339), c.ClickHouse.Database,
		time.Since(began).Seconds(), res.Duplicates, res.Rejected, res.Lines)
	if res.Rejected > 0 {
		reasons := make([]string, 0, len(res.RejectedByReason))
		for r := range res.RejectedByReason {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		for _, r := range reasons {
			fmt.Fprintf(e.stdout, "  %s=%d", r, res.RejectedByReason[r])
		}
		fmt.Fprintln(e.stdout)
		for _, x := range res.RejectedExamples {
			fmt.Fprintf(e.stdout, "  line %d: %s: %s %s\n", x.Line, x.Reason, x.Field, x.Detail)
		}
	}
	if res.Lines > 0 && float64(res.Rejected)/float64(res.Lines) > *maxRejected {
		return fmt.Errorf("%d of %d lines were rejected, more than --max-rejected %.3f%%", res.Rejected, res.Lines, 100**maxRejected)
	}
	return nil
}
