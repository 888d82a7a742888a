package store_test

import (
	"slices"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

func TestQueryAlertsAndLives(t *testing.T) {
	t.Parallel() // a database of its own
	s := storetest.New(t)
	ctx := t.Context()
	t0 := time.Date(2026, 11, 17, 2, 0, 0, 0, time.UTC)
	mk := func(id, det, actor string, sev models.Severity, st models.AlertStatus, first time.Time, version uint64) store.AlertRow {
		return store.AlertRow{Version: version, Alert: models.Alert{ID: id, Fingerprint: models.Fingerprint(det, "t1", actor), Detector: det,
			Tenant: "t1", ActorID: actor, ActorType: models.ActorHuman, Severity: sev, Status: st, FirstSeen: first, LastSeen: first.Add(time.Minute),
			Findings: 1, Latest: models.Finding{Detector: det, Summary: "s-" + id, Evidence: models.Evidence{Observed: 9, Baseline: 2}}, UpdatedAt: first}}
	}
	rows := []store.AlertRow{
		mk("a1", "enumeration", "agent-1", models.SeverityCritical, models.StatusOpen, t0, 1),
		mk("a1", "enumeration", "agent-1", models.SeverityCritical, models.StatusAcknowledged, t0, 2), // newer version wins
		mk("a2", "off_hours", "agent-2", models.SeverityLow, models.StatusOpen, t0.Add(time.Hour), 1),
		mk("a3", "vendor_scope", "vendor-1", models.SeverityHigh, models.StatusFalsePositive, t0.Add(-48*time.Hour), 1),
	}
	if err := s.PutAlerts(ctx, rows); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		q    store.AlertQuery
		want []string
	}{
		{"all, newest first", store.AlertQuery{}, []string{"a2", "a1", "a3"}},
		{"min severity high", store.AlertQuery{Severity: "high"}, []string{"a1", "a3"}},
		{"status of latest version", store.AlertQuery{Status: "acknowledged"}, []string{"a1"}},
		{"old status gone", store.AlertQuery{Status: "open", Detector: "enumeration"}, nil},
		{"actor", store.AlertQuery{ActorID: "agent-2", Tenant: "t1"}, []string{"a2"}},
		{"since", store.AlertQuery{From: t0.Add(-time.Hour)}, []string{"a2", "a1"}},
		{"limit", store.AlertQuery{Limit: 1}, []string{"a2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			as, err := s.QueryAlerts(ctx, c.q)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, a := range as {
				ids = append(ids, a.ID)
			}
			if !slices.Equal(ids, c.want) {
				t.Fatalf("got %v, want %v", ids, c.want)
			}
		})
	}
	a, found, err := s.Alert(ctx, "a1")
	if err != nil || !found || a.Status != models.StatusAcknowledged || a.Latest.Summary != "s-a1" || a.Latest.Evidence.Observed != 9 {
		t.Fatalf("alert a1 = %+v found=%v err=%v", a, found, err)
	}
	if _, found, err := s.Alert(ctx, "nope"); found || err != nil {
		t.Fatalf("missing alert: found=%v err=%v", found, err)
	}
	if err := s.PutAlerts(ctx, []store.AlertRow{mk("a4", "bulk_access", "agent-4", models.SeverityCritical, models.StatusEscalated, t0.Add(2*time.Hour), 1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAlertChanges(ctx, []store.AlertChange{
		{AlertID: "a1", At: t0.Add(5 * time.Minute), Status: models.StatusAcknowledged, Previous: models.StatusOpen, By: "sam"},
		{AlertID: "a1", At: t0.Add(50 * time.Minute), Status: models.StatusResolved, Previous: models.StatusAcknowledged, By: "sam"},
		{AlertID: "a1", At: t0.Add(70 * time.Minute), Status: models.StatusEscalated, Previous: models.StatusResolved, By: "sam"},
		// a2 was escalated automatically (not acknowledged in time), then
		// acknowledged by a person: only the person's change is a reaction.
		{AlertID: "a2", At: t0.Add(75 * time.Minute), Status: models.StatusEscalated, Previous: models.StatusOpen, By: "chatwarden"},
		{AlertID: "a2", At: t0.Add(90 * time.Minute), Status: models.StatusAcknowledged, Previous: models.StatusEscalated, By: "slack:U1"},
		// a4 was escalated automatically and nobody ever reacted.
		{AlertID: "a4", At: t0.Add(20 * time.Minute), Status: models.StatusEscalated, Previous: models.StatusOpen, By: "chatwarden"},
	}); err != nil {
		t.Fatal(err)
	}
	lives, err := s.AlertLives(ctx, nil, t0.Add(-time.Hour), t0.Add(24*time.Hour))
	if err != nil || len(lives) != 3 {
		t.Fatalf("lives = %+v err=%v", lives, err)
	}
	// Tenant-scoped (issue 10 item 8): another tenant's reader sees none.
	if other, err := s.AlertLives(ctx, []string{"t2"}, t0.Add(-time.Hour), t0.Add(24*time.Hour)); err != nil || len(other) != 0 {
		t.Fatalf("lives of tenant t2 = %+v err=%v, want none", other, err)
	}
	if same, err := s.AlertLives(ctx, []string{"t2", "t1"}, t0.Add(-time.Hour), t0.Add(24*time.Hour)); err != nil || len(same) != 3 {
		t.Fatalf("lives of tenants t1, t2 = %+v err=%v, want 3", same, err)
	}
	if lives[0].Alert.ID != "a1" || !lives[0].AckedAt.Equal(t0.Add(5*time.Minute)) || !lives[0].ResolvedAt.Equal(t0.Add(50*time.Minute)) {
		t.Fatalf("a1 life = %+v", lives[0])
	}
	if lives[1].Alert.ID != "a2" || !lives[1].AckedAt.Equal(t0.Add(90*time.Minute)) || !lives[1].ResolvedAt.IsZero() {
		t.Fatalf("a2 life = %+v, want acknowledged at +90m (the automatic escalation at +75m is no reaction)", lives[1])
	}
	if lives[2].Alert.ID != "a4" || !lives[2].AckedAt.IsZero() {
		t.Fatalf("a4 life = %+v, want never acknowledged (only escalated automatically)", lives[2])
	}
}
