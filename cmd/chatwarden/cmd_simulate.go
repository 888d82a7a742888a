package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/internal/progress"
	"github.com/chatwarden/chatwarden/internal/traffic"
	"github.com/chatwarden/chatwarden/sim"
)

// simulateFlags are the flags of `chatwarden simulate`.
type simulateFlags struct {
	seed          uint64
	start         string
	days          float64
	actors        int
	tenants       string
	events        uint64
	attacks       string
	hardNegatives bool
	payloadPII    bool
	outEvents     string
	outLabels     string
	outNegatives  string
	outConfig     string
	kafka         string
	accessTopic   string
	consentTopic  string
	realtime      bool
	speedup       float64
	rateScale     float64
	warmup        time.Duration
	attackEvery   time.Duration
	model         string
	shape         string
}

func runSimulate(ctx context.Context, e *env, args []string) error {
	fs, _ := newFlags(e, "simulate")
	var f simulateFlags
	fs.Uint64Var(&f.seed, "seed", 1, "random seed: the same flags and seed give identical output")
	fs.StringVar(&f.start, "start", sim.DefaultStart.Format(time.DateOnly), "first simulated day or instant (RFC 3339 date or time, UTC); ignored with -realtime (starts now)")
	fs.Float64Var(&f.days, "days", 14, "simulated days (default 14; with -events and no -days: until -events are written)")
	fs.IntVar(&f.actors, "actors", 120, "approximate number of actors over all tenants")
	fs.StringVar(&f.tenants, "tenants", "default,brand-b", "comma-separated tenant names")
	fs.Uint64Var(&f.events, "events", 0, "stop after this many events (access and consent lines; 0: no limit)")
	fs.StringVar(&f.attacks, "attacks", "all", `attack kinds to inject: comma list, "all" or "none" (kinds: `+strings.Join(sim.AttackKinds, ",")+`)`)
	fs.BoolVar(&f.payloadPII, "payload-pii", false, "office model: two producers write personal data into resource ids for a few minutes (a card number in orders', an e-mail address in crm's), labelled payload_pii with the store as the actor; ingest rejects those lines as pii_in_payload")
	fs.BoolVar(&f.hardNegatives, "hard-negatives", false, "add the hard-negative scenarios (promotion day, new hire, evening shift, back from leave, month-end batch, DST change)")
	fs.StringVar(&f.outEvents, "out-events", "", `events JSONL file, "-" for stdout (default "-" unless -kafka is set)`)
	fs.StringVar(&f.outLabels, "out-labels", "", "attack labels JSONL file (optional)")
	fs.StringVar(&f.outNegatives, "out-negatives", "", "hard-negative labels JSONL file (optional)")
	fs.StringVar(&f.outConfig, "out-config", "", "write the simulated platform's own configuration (purpose policy, consent-gated purposes, vendor contracts) as a chatwarden YAML config file, for eval and the demo (optional)")
	fs.StringVar(&f.kafka, "kafka", "", "comma-separated Kafka brokers: send events there instead of a file")
	fs.StringVar(&f.accessTopic, "access-topic", sim.DefaultAccessTopic, "Kafka topic for access.v1 events")
	fs.StringVar(&f.consentTopic, "consent-topic", sim.DefaultConsentTopic, "Kafka topic for consent.v1 events")
	fs.BoolVar(&f.realtime, "realtime", false, "live mode: start now, pace events to the wall clock, attacks back to back after -warmup")
	fs.Float64Var(&f.speedup, "speedup", 1, "realtime only: simulated seconds per wall-clock second")
	fs.Float64Var(&f.rateScale, "rate-scale", 1, "multiply every actor's activity")
	fs.DurationVar(&f.warmup, "warmup", 2*time.Minute, "realtime only: simulated time before the first attack")
	fs.DurationVar(&f.attackEvery, "attack-every", time.Minute, "realtime only: simulated time between attacks")
	fs.StringVar(&f.model, "model", traffic.Office, "traffic model: office (package sim: office shifts, Zipf customers) or rota (package sim/rota: 24/7 rota, demand-driven); rota writes files only, with every attack and hard negative")
	fs.StringVar(&f.shape, "shape", "", "rota only: one of the evaluation matrix's traffic shapes ("+traffic.ShapeNames()+") instead of -days/-actors/-tenants")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.model == traffic.Rota {
		return simulateRota(e, f)
	}
	if f.model != traffic.Office {
		return fmt.Errorf("-model: unknown model %q (known: %s)", f.model, strings.Join(traffic.Models, ", "))
	}
	daysSet := false
	fs.Visit(func(fl *flag.Flag) { daysSet = daysSet || fl.Name == "days" })
	return simulate(ctx, e, f, daysSet, time.Now)
}

// simulate runs the generator with the clock passed in (used only for
// -realtime start and pacing, and for the summary's elapsed time).
func simulate(ctx context.Context, e *env, f simulateFlags, daysSet bool, now func() time.Time) error { //nolint:gocognit // one pass over the generator for three outputs (file, Kafka, real-time pacing) with label flushing; split per mode it would repeat the loop
	attacks, err := sim.ParseAttacks(f.attacks)
	if err != nil {
		return fmt.Errorf("-attacks: %w", err)
	}
	if f.days <= 0 {
		return fmt.Errorf("-days: %g must be positive", f.days)
	}
	if f.speedup <= 0 {
		return fmt.Errorf("-speedup: %g must be positive", f.speedup)
	}
	cfg := sim.Config{
		Seed: f.seed, Actors: f.actors, Attacks: attacks, HardNegatives: f.hardNegatives, PayloadPII: f.payloadPII,
		RateScale: f.rateScale, Duration: time.Duration(f.days * float64(24*time.Hour)),
		Compact: f.realtime, Warmup: f.warmup, AttackEvery: f.attackEvery,
	}
	if f.events > 0 && !daysSet {
		cfg.Duration = 365 * 24 * time.Hour // until -events
	}
	for _, t := range strings.Split(f.tenants, ",") {
		if t = strings.TrimSpace(t); t != "" {
			cfg.Tenants = append(cfg.Tenants, t)
		}
	}
	if f.realtime {
		cfg.Start = now().UTC().Truncate(time.Minute)
	} else if cfg.Start, err = parseStart(f.start); err != nil {
		return err
	}
	g, err := sim.New(cfg)
	if err != nil {
		return err
	}
	if f.outConfig != "" {
		if err := writeSimConfig(f.outConfig, sim.DefaultPolicy(), cfg.Tenants); err != nil {
			return err
		}
	}

	out, err := newSimOutput(ctx, e, f)
	if err != nil {
		return err
	}
	defer out.close()

	began := now()
	var (
		b        sim.Batch
		n        uint64
		last     time.Time
		labelsAt int
		negsAt   int
		wallZero = began
		simZero  = cfg.Start
	)
	if f.realtime {
		simZero = began
	}
	labels, negs := g.Labels(), g.Negatives()
	// Progress: the share of the simulated span (or of -events) done. In
	// -realtime mode the pace is the clock's, so there is none.
	var bar *progress.Bar
	if !f.realtime {
		bar = progress.New(e.stderr, "simulate", "events", progress.Options{})
	}
	showProgress := func(ts time.Time) {
		frac := float64(ts.Sub(cfg.Start)) / float64(cfg.Duration)
		if f.events > 0 {
			frac = max(frac, float64(n)/float64(f.events))
		}
		bar.Update(int64(n), frac)
	}
loop:
	for g.Next(&b) {
		for i := range b.Lines {
			if f.events > 0 && n >= f.events {
				break loop
			}
			ts := time.UnixMilli(b.Lines[i].UnixMilli)
			if f.realtime {
				due := wallZero.Add(time.Duration(float64(ts.Sub(simZero)) / f.speedup))
				if wait := due.Sub(now()); wait > 5*time.Millisecond {
					if err := out.flush(ctx); err != nil {
						return err
					}
					select {
					case <-ctx.Done():
						break loop
					case <-time.After(wait):
					}
				}
			}
			if err := out.line(ctx, &b, i); err != nil {
				return err
			}
			n++
			last = ts
			if !f.realtime {
				if n%4096 == 0 {
					showProgress(ts)
				}
				continue // labels are written at the end, with their final starts
			}
			for ; labelsAt < len(labels) && !labels[labelsAt].Start.After(ts); labelsAt++ {
				if err := out.label(labels[labelsAt]); err != nil {
					return err
				}
			}
			for ; negsAt < len(negs) && !negs[negsAt].Start.After(ts); negsAt++ {
				if err := out.negative(negs[negsAt]); err != nil {
					return err
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	if !f.realtime {
		// A label's start moves to its attack's first event while the
		// generator runs: write the labels of the span covered now.
		labels = slices.Clone(labels)
		sort.SliceStable(labels, func(i, j int) bool { return labels[i].Start.Before(labels[j].Start) })
		for ; labelsAt < len(labels) && !labels[labelsAt].Start.After(last); labelsAt++ {
			if err := out.label(labels[labelsAt]); err != nil {
				return err
			}
		}
		for ; negsAt < len(negs) && !negs[negsAt].Start.After(last); negsAt++ {
			if err := out.negative(negs[negsAt]); err != nil {
				return err
			}
		}
	}
	if err := out.flush(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	if bar != nil {
		showProgress(last)
		bar.Done()
	}
	if err := out.close(); err != nil {
		return err
	}
	elapsed := now().Sub(began)
	printSimSummary(e.stderr, g, n, last, labels[:labelsAt], negs[:negsAt], elapsed)
	return nil
}

// parseStart accepts an RFC 3339 date or date-time.
func parseStart(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("-start: %q is not an RFC 3339 date (2026-10-19) or time", s)
	}
	return t, nil
}

func printSimSummary(w io.Writer, g *sim.Generator, n uint64, last time.Time, labels, negs []sim.Label, elapsed time.Duration) {
	st := g.Stats()
	rate := float64(n) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(w, "simulate: %d events (%d access, %d consent) from %d actors, %s .. %s, in %s (%.0f events/s)\n",
		n, min(st.Access, n), n-min(st.Access, n), g.Actors(), g.Start().Format(time.RFC3339), last.Format(time.RFC3339),
		elapsed.Round(time.Millisecond), rate)
	count := func(ls []sim.Label) string {
		m := map[string]int{}
		for _, l := range ls {
			m[l.Kind]++
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
		return strings.Join(parts, " ")
	}
	fmt.Fprintf(w, "simulate: %d attack labels: %s\n", len(labels), count(labels))
	if len(negs) > 0 {
		fmt.Fprintf(w, "simulate: %d hard-negative labels: %s\n", len(negs), count(negs))
	}
	for _, s := range g.Skipped() {
		fmt.Fprintf(w, "simulate: skipped %s\n", s)
	}
}

// simOutput is where simulate writes: a file (or stdout) or Kafka, plus
// the label files.
type simOutput struct {
	events       *bufio.Writer
	eventsFile   *os.File
	kafka        *sim.KafkaWriter
	labels, negs *bufio.Writer
	files        []*os.File
	enc          []byte
	closed       bool
}

func newSimOutput(_ context.Context, e *env, f simulateFlags) (*simOutput, error) {
	o := &simOutput{}
	openFile := func(name string) (*os.File, error) {
		fh, err := os.Create(name)
		if err != nil {
			return nil, fmt.Errorf("creating output: %w", err)
		}
		o.files = append(o.files, fh)
		return fh, nil
	}
	switch {
	case f.kafka != "":
		if f.outEvents != "" {
			return nil, errors.New("-kafka and -out-events are exclusive")
		}
		o.kafka = sim.NewKafkaWriter(strings.Split(f.kafka, ","), f.accessTopic, f.consentTopic)
	case f.outEvents == "" || f.outEvents == "-":
		o.events = bufio.NewWriterSize(e.stdout, 1<<20)
	default:
		fh, err := openFile(f.outEvents)
		if err != nil {
			return nil, err
		}
		o.events = bufio.NewWriterSize(fh, 1<<20)
	}
	if f.outLabels != "" {
		fh, err := openFile(f.outLabels)
		if err != nil {
			o.close()
			return nil, err
		}
		o.labels = bufio.NewWriter(fh)
	}
	if f.outNegatives != "" {
		fh, err := openFile(f.outNegatives)
		if err != nil {
			o.close()
			return nil, err
		}
		o.negs = bufio.NewWriter(fh)
	}
	return o, nil
}

func (o *simOutput) line(ctx context.Context, b *sim.Batch, i int) error {
	if o.kafka != nil {
		return o.kafka.AddLine(ctx, b, i)
	}
	l := b.Lines[i]
	if _, err := o.events.Write(b.Buf[l.Start:l.End]); err != nil {
		return fmt.Errorf("writing events: %w", err)
	}
	return nil
}

func writeLabel(w *bufio.Writer, l sim.Label) error {
	if w == nil {
		return nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encoding label: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing label: %w", err)
	}
	return nil
}

func (o *simOutput) label(l sim.Label) error    { return writeLabel(o.labels, l) }
func (o *simOutput) negative(l sim.Label) error { return writeLabel(o.negs, l) }

func (o *simOutput) flush(ctx context.Context) error {
	var errs []error
	if o.kafka != nil {
		errs = append(errs, o.kafka.Flush(ctx))
	}
	for _, w := range []*bufio.Writer{o.events, o.labels, o.negs} {
		if w != nil {
			if err := w.Flush(); err != nil {
				errs = append(errs, fmt.Errorf("flushing output: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

func (o *simOutput) close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	var errs []error
	if o.kafka != nil {
		errs = append(errs, o.kafka.Close())
	}
	for _, fh := range o.files {
		if err := fh.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing output: %w", err))
		}
	}
	return errors.Join(errs...)
}

// simulateRota writes the rota model's traffic and labels to files.
func simulateRota(e *env, f simulateFlags) error {
	if f.kafka != "" || f.realtime {
		return errors.New("-model rota: writes files only (no -kafka, no -realtime)")
	}
	if f.payloadPII {
		return errors.New("-payload-pii: the office model's only")
	}
	start, err := parseStart(f.start)
	if err != nil {
		return err
	}
	sh := traffic.Shape{Name: "custom", Days: f.days, Actors: f.actors, RotaRate: f.rateScale}
	for _, t := range strings.Split(f.tenants, ",") {
		if strings.TrimSpace(t) != "" {
			sh.Tenants++
		}
	}
	if f.shape != "" {
		if sh, err = traffic.FindShape(f.shape); err != nil {
			return fmt.Errorf("-shape: %w", err)
		}
	}
	var out io.Writer = e.stdout
	if f.outEvents != "" && f.outEvents != "-" {
		fh, err := os.Create(f.outEvents)
		if err != nil {
			return fmt.Errorf("creating output: %w", err)
		}
		defer fh.Close()
		out = fh
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	began := time.Now()
	tr, err := traffic.Generate(traffic.Rota, sh, f.seed, start, bw)
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing events: %w", err)
	}
	if f.outLabels != "" {
		if err := traffic.WriteLabels(f.outLabels, tr.Labels); err != nil {
			return err
		}
	}
	if f.outNegatives != "" {
		if err := traffic.WriteLabels(f.outNegatives, tr.Negatives); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stderr, "simulate: model rota: %d events (%d access, %d consent) from %d actors, %g days, %d attack labels, %d hard-negative labels, in %s\n",
		tr.Access+tr.Consent, tr.Access, tr.Consent, tr.Actors, sh.Days, len(tr.Labels), len(tr.Negatives), time.Since(began).Round(time.Millisecond))
	for _, s := range tr.Skipped {
		fmt.Fprintf(e.stderr, "simulate: skipped %s\n", s)
	}
	return nil
}

// simConfigFile is the part of the configuration file `simulate
// --out-config` writes: the simulated platform's detection rules.
type simConfigFile struct {
	Detect struct {
		Rules struct {
			Purposes     map[string][]string              `yaml:"purposes"`
			ConsentGated []string                         `yaml:"consent_gated"`
			Vendors      map[string]detect.VendorContract `yaml:"vendors"`
		} `yaml:"rules"`
		Destinations struct {
			Tenants map[string][]string `yaml:"tenants"`
		} `yaml:"destinations"`
	} `yaml:"detect"`
}

// writeSimConfig writes p as a chatwarden configuration file; the first
// of tenants (default: sim's first default tenant) gets the simulated
// platform's destination allow-list (the others none: there
// destination_new alone judges new destinations).
func writeSimConfig(path string, p sim.Policy, tenants []string) error {
	var c simConfigFile
	first := "default"
	if len(tenants) > 0 {
		first = tenants[0]
	}
	c.Detect.Destinations.Tenants = map[string][]string{first: slices.Clone(sim.Destinations)}
	c.Detect.Rules.Purposes = p.Purposes
	c.Detect.Rules.ConsentGated = p.ConsentGated
	c.Detect.Rules.Vendors = map[string]detect.VendorContract{}
	for name, v := range p.Vendors {
		c.Detect.Rules.Vendors[name] = detect.VendorContract{Stores: v.Stores, Categories: v.Categories,
			Hours: v.Hours, Days: v.Days, TimeZone: v.TimeZone, Country: v.Country}
	}
	b, err := yaml.Marshal(&c)
	if err != nil {
		return fmt.Errorf("encoding the simulated platform's configuration: %w", err)
	}
	head := "# Written by `chatwarden simulate -out-config`: the simulated platform's own\n" +
		"# purpose policy, consent-gated purposes, vendor contracts and its first tenant's\n" +
		"# destination allow-list (not product defaults).\n"
	if err := os.WriteFile(path, append([]byte(head), b...), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
