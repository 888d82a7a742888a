package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/store"
)

// errAuditTampered is returned when `audit verify` finds a problem.
var errAuditTampered = errors.New("the audit trail is not what its writers wrote")

// runAudit runs `chatwarden audit verify`.
func runAudit(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(e.stderr, "usage: chatwarden audit verify [-config FILE] [-kafka] [-format text|json]")
		return errUsage
	}
	fs, cfgPath := newFlags(e, "audit verify")
	withKafka := fs.Bool("kafka", false, "also compare audit_log with its Kafka copy (audit.kafka_topic)")
	format := addFormatFlag(fs, "text", "json").withJSONAlias(fs)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	out, err := format.get(e.stderr)
	if err != nil {
		return err
	}
	c, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	var copied []store.AuditEntry
	if *withKafka {
		if c.Audit.KafkaTopic == "" {
			return errors.New("-kafka: audit.kafka_topic is not set")
		}
		if copied, err = ingest.ReadAuditCopy(ctx, c.Ingest, c.Audit.KafkaTopic); err != nil {
			return err
		}
	}
	// Verification only reads: no copy is installed, no entry written.
	s, err := store.Open(ctx, c.ClickHouse, e.log)
	if err != nil {
		return err
	}
	defer s.Close()
	res, err := s.VerifyAudit(ctx, copied)
	if err != nil {
		return err
	}
	if out == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		for _, p := range res.Problems {
			fmt.Fprintf(e.stdout, "%-12s writer=%s seq=%d ts=%s: %s\n", p.Kind, p.Writer, p.Seq, p.TS.Format("2006-01-02T15:04:05Z"), p.Detail)
		}
		fmt.Fprintf(e.stdout, "audit trail: %d rows, %d chains, %d from before chaining, %d chains trimmed by retention", res.Rows, res.Writers, res.Legacy, res.Trimmed)
		if *withKafka {
			fmt.Fprintf(e.stdout, ", %d entries in the Kafka copy", res.Copied)
		}
		if res.OK() {
			fmt.Fprintln(e.stdout, ": OK")
		} else {
			fmt.Fprintf(e.stdout, ": %d problems\n", len(res.Problems))
		}
	}
	if !res.OK() {
		return errAuditTampered
	}
	return nil
}
