package main

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestRetentionIsAudited ages events past retention, runs retention as serve
// does, and checks they are gone and that each drop is in the audit trail.
func TestRetentionIsAudited(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := t.Context()
	now := time.Now().UTC()
	old := now.AddDate(0, 0, -120)
	ev := models.Event{EventID: "old", TS: old, Tenant: "t", Actor: models.Actor{ID: "a", Type: models.ActorHuman},
		Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, Records: 1, Result: models.ResultAllowed}
	if err := s.InsertEvents(ctx, []models.Event{ev}, now); err != nil {
		t.Fatal(err)
	}
	res, err := retainOnce(ctx, s, store.RetentionConfig{}.WithDefaults(), now, "chatwarden", "serve")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Dropped) == 0 {
		t.Fatal("nothing dropped; want the 120-day-old partition of events and its views")
	}
	entries, err := s.AuditLog(ctx, store.AuditFilter{From: now.Add(-time.Minute), To: now.Add(time.Minute), Action: "retention_drop"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(res.Dropped) {
		t.Fatalf("%d audit entries for %d dropped partitions", len(entries), len(res.Dropped))
	}
	sum, err := s.Summary(ctx)
	if err != nil || sum.Events != 0 {
		t.Fatalf("events after retention: %d (%v)", sum.Events, err)
	}
}

func TestRetryUntilDone(t *testing.T) {
	calls := 0
	retryUntilDone(t.Context(), slog.New(slog.DiscardHandler), "op", func(context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("clickhouse down")
		}
		return nil
	})
	if calls != 3 {
		t.Fatalf("op ran %d times, want 3 (two failures, then success)", calls)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	n := 0
	retryUntilDone(ctx, slog.New(slog.DiscardHandler), "op", func(context.Context) error { n++; return errors.New("down") })
	if n != 1 {
		t.Fatalf("after shutdown op ran %d times, want 1", n)
	}
}
