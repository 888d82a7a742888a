package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/chatwarden/chatwarden/internal/progress"
	"github.com/chatwarden/chatwarden/store"
)

// retainer is what retention needs of the store.
type retainer interface {
	Retain(ctx context.Context, cfg store.RetentionConfig, now time.Time) (store.RetentionResult, error)
	InsertAudit(ctx context.Context, a store.AuditEntry) error
}

// retainOnce runs retention and writes one audit entry per dropped partition.
func retainOnce(ctx context.Context, r retainer, cfg store.RetentionConfig, now time.Time, user, source string) (store.RetentionResult, error) {
	res, err := r.Retain(ctx, cfg, now)
	for _, dp := range res.Dropped { // audit what was dropped even if a later drop failed
		detail, _ := json.Marshal(dp)
		if aerr := r.InsertAudit(ctx, store.AuditEntry{TS: now, User: user, Role: "system", Source: source,
			Action: "retention_drop", Detail: string(detail), Rows: dp.Rows, OSUser: osUser()}); aerr != nil {
			return res, fmt.Errorf("auditing retention drop of %s %s: %w", dp.Table, dp.Partition, aerr)
		}
	}
	for _, d := range res.Deleted {
		detail, _ := json.Marshal(d)
		if aerr := r.InsertAudit(ctx, store.AuditEntry{TS: now, User: user, Role: "system", Source: source,
			Action: "retention_delete", Detail: string(detail), Rows: d.Rows, OSUser: osUser()}); aerr != nil {
			return res, fmt.Errorf("auditing retention delete of %s: %w", d.Table, aerr)
		}
	}
	return res, err
}

// wireRetention runs retention at start-up and then every interval.
func wireRetention(rc store.RetentionConfig, st *store.Store, log *slog.Logger) component {
	cfg := rc.WithDefaults()
	run := func(ctx context.Context) error {
		t := time.NewTicker(cfg.Interval)
		defer t.Stop()
		for {
			res, err := retainOnce(ctx, st, cfg, time.Now(), "chatwarden", "serve")
			if err != nil {
				log.Error("retention failed; retrying next interval", "err", err, "interval", cfg.Interval)
			} else if len(res.Unmanaged) > 0 {
				log.Warn("partitioned tables without a retention class are kept", "tables", res.Unmanaged)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	}
	log.Info("retention on", "events_days", cfg.EventsDays, "dead_letters_days", cfg.DeadLettersDays,
		"alerts_days", cfg.AlertsDays, "audit_days", cfg.AuditDays, "interval", cfg.Interval)
	return component{name: "retention", run: run}
}

func runRetention(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "retention")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	s, err := openStore(ctx, e, c)
	if err != nil {
		return err
	}
	defer s.Close()
	rc := c.Retention.WithDefaults()
	bar := progress.New(e.stderr, "retention", "partitions dropped", progress.Options{})
	rc.Progress = func(done, total int) { bar.Update(int64(done), float64(done)/float64(total)) }
	res, err := retainOnce(ctx, s, rc, time.Now(), cliUser(""), "cli")
	bar.Done()
	for _, dp := range res.Dropped {
		fmt.Fprintf(e.stdout, "dropped %s partition %s (%d rows)\n", dp.Table, dp.Partition, dp.Rows)
	}
	for _, d := range res.Deleted {
		fmt.Fprintf(e.stdout, "deleting %d rows of %s older than %s\n", d.Rows, d.Table, d.Before.Format(time.RFC3339))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "retention: %d partitions dropped\n", len(res.Dropped))
	return nil
}
