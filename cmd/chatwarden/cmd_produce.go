package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/internal/progress"
)

func runProduce(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "produce")
	file := fs.String("file", "", "JSONL file of access.v1 (and consent.v1) events, one per line; - for stdin (required)")
	topic := fs.String("topic", "", "access topic (default ingest.access_topic); consent.v1 lines go to ingest.consent_topic")
	rate := fs.Int("rate", 0, "messages per second (0: as fast as the broker takes them)")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *file == "" {
		fmt.Fprintln(e.stderr, "produce: -file is required")
		return errUsage
	}
	c, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	var r io.Reader = os.Stdin
	var size int64 // 0: unknown (stdin)
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return fmt.Errorf("opening events file: %w", err)
		}
		defer f.Close()
		r = f
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
	}
	p, err := ingest.NewProducer(c.Ingest, *topic)
	if err != nil {
		return err
	}
	start := time.Now()
	bar := progress.New(e.stderr, "produce", "messages", progress.Options{})
	show := func(st ingest.ProduceStats) {
		if *quiet {
			return
		}
		frac := -1.0
		if size > 0 {
			frac = float64(st.Bytes+int64(st.Access+st.Consents)) / float64(size) // values and their newlines
		}
		bar.Update(int64(st.Access+st.Consents), frac)
	}
	st, err := p.ProduceJSONL(ctx, r, *rate, show)
	if !*quiet {
		bar.Done()
	}
	if cerr := p.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing producer: %w", cerr)
	}
	el := time.Since(start)
	fmt.Fprintf(e.stdout, "produced %d messages (%d access, %d consent, %d bytes) in %s: %.0f msg/s\n",
		st.Access+st.Consents, st.Access, st.Consents, st.Bytes, el.Round(time.Millisecond), float64(st.Access+st.Consents)/el.Seconds())
	return err
}
