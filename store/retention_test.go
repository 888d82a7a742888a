package store_test

import (
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

func TestRetentionDropsOnlyExpiredPartitions(t *testing.T) {
	t.Parallel() // a database of its own
	s := storetest.New(t)
	ctx := t.Context()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	ev := func(id string, ts time.Time) models.Event {
		return models.Event{EventID: id, TS: ts, Tenant: "t", Actor: models.Actor{ID: "a", Type: models.ActorHuman},
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: "s", Records: 1, Result: models.ResultAllowed}
	}
	old, fresh := now.AddDate(0, 0, -40), now.AddDate(0, 0, -5)
	if err := s.InsertEvents(ctx, []models.Event{ev("old", old), ev("fresh", fresh)}, now); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertDeadLetters(ctx, []store.DeadLetter{{ReceivedAt: old, Topic: "x", Reason: "bad_json"}}); err != nil {
		t.Fatal(err)
	}
	// The audit trail is partitioned by month and keeps its own, longer retention.
	if err := s.InsertAudit(ctx, store.AuditEntry{TS: old, User: "ana", Action: "history"}); err != nil {
		t.Fatal(err)
	}
	cfg := store.RetentionConfig{EventsDays: 30, DeadLettersDays: 30, AlertsDays: 365, AuditDays: 365}
	res, err := s.Retain(ctx, cfg, now)
	if err != nil {
		t.Fatal(err)
	}
	dropped := map[string]bool{}
	for _, d := range res.Dropped {
		dropped[d.Table] = true
	}
	for _, tbl := range []string{"events", "event_ids", "events_by_subject", "actor_minute", "dead_letters"} {
		if !dropped[tbl] {
			t.Errorf("retention did not drop the old partition of %s (dropped %v)", tbl, res.Dropped)
		}
	}
	if dropped["audit_log"] {
		t.Error("retention dropped audit_log, whose retention is longer")
	}
	sum, err := s.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != 1 || !sum.LastEventTS.Equal(fresh) {
		t.Fatalf("after retention: %d events, last %s; want only the fresh one", sum.Events, sum.LastEventTS)
	}
	if ids, _ := s.ExistingEventIDs(ctx, []string{"old", "fresh"}); ids["old"] || !ids["fresh"] {
		t.Fatalf("event ids after retention = %v", ids)
	}
	entries, err := s.AuditLog(ctx, store.AuditFilter{From: old.Add(-time.Hour), To: now})
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit entries after retention = %v, %v", entries, err)
	}
	again, err := s.Retain(ctx, cfg, now)
	if err != nil || len(again.Dropped) != 0 {
		t.Fatalf("second run dropped %v, %v; want nothing (idempotent)", again.Dropped, err)
	}
}

func TestRetentionConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  store.RetentionConfig
		ok   bool
	}{
		{"defaults", store.RetentionConfig{}, true},
		{"negative", store.RetentionConfig{EventsDays: -1}, false},
		{"audit shorter than events", store.RetentionConfig{EventsDays: 90, AuditDays: 30}, false},
		{"too frequent", store.RetentionConfig{Interval: time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
