package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/internal/progress"
	"github.com/chatwarden/chatwarden/store"
)

// statusReport is what `chatwarden status` prints.
type statusReport struct {
	ClickHouse      *store.Summary        `json:"clickhouse,omitempty"`
	ClickHouseError string                `json:"clickhouse_error,omitempty"`
	Kafka           *ingest.ClusterInfo   `json:"kafka,omitempty"`
	KafkaError      string                `json:"kafka_error,omitempty"`
	Group           string                `json:"group"`
	Lag             []ingest.PartitionLag `json:"lag,omitempty"`
	TotalLag        int64                 `json:"total_lag"`
	// NoContract lists the vendors detection reported without a configured
	// contract (vendor_no_contract) in the last 8 days, as tenant/vendor.
	NoContract []string `json:"vendors_without_contract,omitempty"`
}

func runStatus(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "status")
	format := addFormatFlag(fs, "text", "json").withJSONAlias(fs)
	watch := fs.Duration("watch", 0, "refresh every interval (e.g. 5s) until interrupted; 0: once")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	out, err := format.get(e.stderr)
	if err != nil {
		return err
	}
	if *watch < 0 || (*watch > 0 && *watch < time.Second) {
		return fmt.Errorf("-watch %s: want 0 (once) or at least 1s", *watch)
	}
	c, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *watch == 0 {
		rep, err := collectStatus(ctx, e, c)
		if perr := printStatusAs(e, rep, out); perr != nil {
			return perr
		}
		return err
	}
	// -watch: redraw in place on a terminal, a dated block per refresh
	// otherwise; errors are shown, not fatal, until ctx ends.
	term := progress.IsTerminal(e.stdout)
	t := time.NewTicker(*watch)
	defer t.Stop()
	for {
		rep, err := collectStatus(ctx, e, c)
		if ctx.Err() != nil {
			return nil
		}
		if term && out == "text" {
			fmt.Fprint(e.stdout, "\033[H\033[2J")
		}
		if out == "text" {
			fmt.Fprintf(e.stdout, "chatwarden status at %s (every %s, Ctrl-C stops)\n", time.Now().UTC().Format(time.RFC3339), *watch)
		}
		if perr := printStatusAs(e, rep, out); perr != nil {
			return perr
		}
		if err != nil && out == "text" {
			fmt.Fprintf(e.stdout, "errors: %v\n", err)
		}
		if !term && out == "text" {
			fmt.Fprintln(e.stdout)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// collectStatus reads the store's summary and the Kafka cluster and lag;
// what it could not read is in the report's *Error fields and the error.
func collectStatus(ctx context.Context, e *env, c Config) (statusReport, error) {
	ic := c.Ingest.WithDefaults()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	rep := statusReport{Group: ic.Group}
	var errs []error
	if s, err := openStore(ctx, e, c); err != nil {
		rep.ClickHouseError = err.Error()
		errs = append(errs, err)
	} else {
		sum, err := s.Summary(ctx)
		if err == nil {
			rep.NoContract, err = vendorsWithoutContract(ctx, s, time.Now())
		}
		s.Close()
		if err != nil {
			rep.ClickHouseError = err.Error()
			errs = append(errs, err)
		} else {
			rep.ClickHouse = &sum
		}
	}
	if info, err := ingest.Cluster(ctx, ic); err != nil {
		rep.KafkaError = err.Error()
		errs = append(errs, err)
	} else {
		rep.Kafka = &info
		lag, err := ingest.GroupLag(ctx, ic, ic.Group, ic.AccessTopic, ic.ConsentTopic)
		if err != nil {
			rep.KafkaError = err.Error()
			errs = append(errs, err)
		}
		rep.Lag = lag
		for _, l := range lag {
			rep.TotalLag += l.Lag
		}
	}
	return rep, errors.Join(errs...)
}

// printStatusAs prints rep as text or JSON.
func printStatusAs(e *env, rep statusReport, format string) error {
	if format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printStatus(e, rep)
	return nil
}

// vendorsWithoutContract lists, as tenant/vendor, the vendors that
// vendor_no_contract reported in the 8 days before now (it fires at most
// once a week per vendor).
func vendorsWithoutContract(ctx context.Context, s *store.Store, now time.Time) ([]string, error) {
	fs, err := s.Findings(ctx, store.FindingFilter{From: now.Add(-8 * 24 * time.Hour), Detector: detect.RuleVendorNoContract,
		IncludeSuppressed: true, Limit: 1000})
	if err != nil {
		return nil, fmt.Errorf("reading vendor_no_contract findings: %w", err)
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range fs {
		k := f.Tenant + "/" + f.ActorVendor
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

func printStatus(e *env, r statusReport) {
	w := e.stdout
	if s := r.ClickHouse; s != nil {
		fmt.Fprintf(w, "clickhouse   %s, database %s, schema version %d\n", s.Version, s.Database, s.SchemaVersion)
		fmt.Fprintf(w, "events       %d stored, %d distinct event ids\n", s.Events, s.DistinctIDs)
		if s.Events > 0 {
			fmt.Fprintf(w, "last event   ts %s, ingested %s\n", s.LastEventTS.Format(time.RFC3339), s.LastIngested.Format(time.RFC3339))
		}
		fmt.Fprintf(w, "consents     %d\n", s.Consents)
		var total uint64
		reasons := make([]string, 0, len(s.DeadLetters))
		for k, n := range s.DeadLetters {
			reasons = append(reasons, k)
			total += n
		}
		sort.Strings(reasons)
		fmt.Fprintf(w, "dead letters %d", total)
		for _, k := range reasons {
			fmt.Fprintf(w, "  %s=%d", termSafe(k), s.DeadLetters[k])
		}
		fmt.Fprintln(w)
		if len(s.PIIByStore) > 0 {
			stores := make([]string, 0, len(s.PIIByStore))
			for k := range s.PIIByStore {
				stores = append(stores, k)
			}
			sort.Strings(stores)
			fmt.Fprintf(w, "payload pii  dead-lettered per producer store (ingest.pii: dead_letter):")
			for _, k := range stores { // store names come from producers: escaped for the terminal
				fmt.Fprintf(w, "  %s=%d", termSafe(k), s.PIIByStore[k])
			}
			fmt.Fprintln(w)
		}
		if len(s.PIIStoredByStore) > 0 {
			stores := make([]string, 0, len(s.PIIStoredByStore))
			for k := range s.PIIStoredByStore {
				stores = append(stores, k)
			}
			sort.Strings(stores)
			fmt.Fprintf(w, "payload pii  stored pseudonymized per producer store (ingest.pii: pseudonymize; findings pii_in_payload):")
			for _, k := range stores {
				fmt.Fprintf(w, "  %s=%d", termSafe(k), s.PIIStoredByStore[k])
			}
			fmt.Fprintln(w)
		}
		if len(r.NoContract) > 0 {
			fmt.Fprintf(w, "vendors      %d without a configured contract (detect.rules.vendors), judged statistically only: %s\n",
				len(r.NoContract), strings.Join(termSafeAll(r.NoContract), " "))
		}
	} else {
		fmt.Fprintf(w, "clickhouse   UNREACHABLE: %s\n", r.ClickHouseError)
	}
	if k := r.Kafka; k != nil {
		fmt.Fprintf(w, "kafka        reachable, cluster %s, %d broker(s), controller %d, protocol %s\n",
			k.ClusterID, len(k.Brokers), k.ControllerID, k.Protocol)
	}
	if r.KafkaError != "" {
		fmt.Fprintf(w, "kafka        ERROR: %s\n", r.KafkaError)
	}
	if len(r.Lag) > 0 {
		fmt.Fprintf(w, "group %s: total lag %d\n", r.Group, r.TotalLag)
		for _, l := range r.Lag {
			committed := fmt.Sprint(l.Committed)
			if l.Committed < 0 {
				committed = "none"
			}
			fmt.Fprintf(w, "  %-28s p%-3d committed %-10s end %-10d lag %d\n", l.Topic, l.Partition, committed, l.End, l.Lag)
		}
	}
}
