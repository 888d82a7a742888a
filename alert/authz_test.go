package alert

import (
	"errors"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// TestMayAct is the per-action role table (issue 10 item 1).
func TestMayAct(t *testing.T) {
	tests := []struct {
		role string
		kind ActionKind
		sev  models.Severity
		want bool
	}{
		{RoleResponder, ActionAcknowledge, models.SeverityCritical, true},
		{RoleResponder, ActionEscalate, models.SeverityCritical, true},
		{RoleResponder, ActionSilence, models.SeverityCritical, false},
		{RoleResponder, ActionFalsePositive, models.SeverityHigh, false},
		{RoleResponder, ActionSilence, models.SeverityMedium, true},
		{RoleResponder, ActionFalsePositive, models.SeverityLow, true},
		{RoleSecOps, ActionFalsePositive, models.SeverityCritical, true},
		{RoleAdmin, ActionSilence, models.SeverityCritical, true},
		{RoleManager, ActionAcknowledge, models.SeverityLow, false},
		{"", ActionAcknowledge, models.SeverityLow, false},
		{"guest", ActionAcknowledge, models.SeverityLow, false},
	}
	for _, tc := range tests {
		if got := MayAct(tc.role, tc.kind, tc.sev); got != tc.want {
			t.Errorf("MayAct(%q, %s, %s) = %v, want %v", tc.role, tc.kind, tc.sev, got, tc.want)
		}
	}
}

// TestWebActionsSameRules (issue 10 item 1): the web UI's ActOnAlert applies
// the same role table and reason rule as Slack, and a false-positive mark
// expires after 30 days by default (it never expired before).
func TestWebActionsSameRules(t *testing.T) {
	ctx := t.Context()
	st := newMemStore()
	d := newTestDispatcher(t, Config{DefaultChannel: "C1", GroupWait: time.Second}, st, Options{Poster: &fakePoster{}})
	now := t0
	f := models.Finding{Detector: "enumeration", Tenant: "acme", ActorID: "agent-1", ActorType: models.ActorHuman,
		WindowStart: now.Add(-time.Minute), WindowEnd: now, DetectedAt: now, Severity: models.SeverityCritical, Summary: "x"}
	if err := d.Notify(ctx, now, f); err != nil {
		t.Fatal(err)
	}
	rows, err := st.ActiveAlerts(ctx)
	if err != nil || len(rows) != 1 {
		t.Fatalf("alerts %v %v", rows, err)
	}
	id := rows[0].Alert.ID
	if err := d.ActOnAlert(ctx, now, id, ActionSilence, "rob", RoleResponder, ""); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("responder silence of a critical alert: %v, want ErrNotAllowed", err)
	}
	if err := d.ActOnAlert(ctx, now, id, ActionFalsePositive, "ann", RoleSecOps, " "); !errors.Is(err, ErrReasonRequired) {
		t.Fatalf("false positive without reason: %v, want ErrReasonRequired", err)
	}
	if err := d.ActOnAlert(ctx, now, id, ActionFalsePositive, "ann", "", "x"); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("action without a role: %v, want ErrNotAllowed", err)
	}
	if err := d.ActOnAlert(ctx, now, id, ActionFalsePositive, "ann", RoleSecOps, "known batch job"); err != nil {
		t.Fatal(err)
	}
	sups, err := st.Suppressions(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(sups) != 1 || !sups[0].Until.Equal(now.Add(30*24*time.Hour)) || sups[0].Author != "web:ann" {
		t.Fatalf("suppressions %+v, want one by web:ann until +30d", sups)
	}
}

// TestNoOneHidesTheAlertAboutThemselves (issue 10 item 1): the
// self-monitoring alert about a person's suppressions may be acknowledged
// or escalated by them but not silenced or marked false positive; another
// secops may.
func TestNoOneHidesTheAlertAboutThemselves(t *testing.T) {
	ctx := t.Context()
	st := newMemStore()
	d := newTestDispatcher(t, Config{DefaultChannel: "C1"}, st, Options{Poster: &fakePoster{}})
	now := t0
	f := models.Finding{Detector: DetectorMassSuppression, Tenant: SelfTenant, ActorID: "person:ann", ActorType: models.ActorService,
		WindowStart: now.Add(-24 * time.Hour), WindowEnd: now, DetectedAt: now, Severity: models.SeverityHigh, Summary: "ann suppressed 9 actors"}
	if err := d.Notify(ctx, now, f); err != nil {
		t.Fatal(err)
	}
	rows, err := st.ActiveAlerts(ctx)
	if err != nil || len(rows) != 1 {
		t.Fatalf("alerts %v %v", rows, err)
	}
	id := rows[0].Alert.ID
	for _, k := range []ActionKind{ActionSilence, ActionFalsePositive} {
		if err := d.ActOnAlert(ctx, now, id, k, "ann", RoleSecOps, "it was me"); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("ann %s on the alert about ann: %v, want ErrNotAllowed", k, err)
		}
	}
	if err := d.ActOnAlert(ctx, now, id, ActionAcknowledge, "ann", RoleSecOps, ""); err != nil {
		t.Fatalf("ann acknowledges: %v", err)
	}
	if err := d.ActOnAlert(ctx, now, id, ActionSilence, "bob", RoleSecOps, ""); err != nil {
		t.Fatalf("bob silences: %v", err)
	}
}

// TestActionsTenantScoped (issue 10 item 8): a user limited to tenant acme
// may not acknowledge, escalate, silence or mark false positive an alert of
// tenant bank, from Slack or from the web; nothing changes. On acme's alert
// the same user may act.
func TestActionsTenantScoped(t *testing.T) {
	ctx := t.Context()
	st := newMemStore()
	d := newTestDispatcher(t, Config{DefaultChannel: "C1", GroupWait: time.Second}, st, Options{Poster: &fakePoster{}})
	now := t0
	fd := func(tenant string) models.Finding {
		return models.Finding{Detector: "enumeration", Tenant: tenant, ActorID: "agent-1", ActorType: models.ActorHuman,
			WindowStart: now.Add(-time.Minute), WindowEnd: now, DetectedAt: now, Severity: models.SeverityMedium, Summary: "x"}
	}
	if err := d.Notify(ctx, now, fd("acme"), fd("bank")); err != nil {
		t.Fatal(err)
	}
	rows, err := st.ActiveAlerts(ctx)
	if err != nil || len(rows) != 2 {
		t.Fatalf("alerts %v %v", rows, err)
	}
	ids := map[string]string{}
	for _, r := range rows {
		ids[r.Alert.Tenant] = r.Alert.ID
	}
	for _, src := range []string{"", "web"} {
		for _, k := range Actions {
			a := Action{Kind: k, AlertID: ids["bank"], User: "UAL", Identity: "al", Role: RoleSecOps, Tenants: []string{"acme"},
				Reason: "not us", Source: src}
			if err := d.Authorize(ctx, now, a); !errors.Is(err, ErrNotAllowed) {
				t.Errorf("source %q: authorize %s on bank's alert by an acme user: %v, want ErrNotAllowed", src, k, err)
			}
			if err := d.Act(ctx, now, a); !errors.Is(err, ErrNotAllowed) {
				t.Errorf("source %q: %s on bank's alert by an acme user: %v, want ErrNotAllowed", src, k, err)
			}
		}
	}
	if sups, _ := st.Suppressions(ctx, now); len(sups) != 0 {
		t.Fatalf("suppressions written across tenants: %+v", sups)
	}
	if rows, _ = st.ActiveAlerts(ctx); len(rows) != 2 {
		t.Fatalf("alerts changed across tenants: %+v", rows)
	}
	for _, r := range rows {
		if r.Alert.Status != models.StatusOpen || !r.AckedAt.IsZero() {
			t.Fatalf("alert of %s changed across tenants: %+v", r.Alert.Tenant, r.Alert)
		}
	}
	if err := d.Act(ctx, now, Action{Kind: ActionAcknowledge, AlertID: ids["acme"], User: "al", Identity: "al", Role: RoleSecOps,
		Tenants: []string{"acme"}, Source: "web"}); err != nil {
		t.Fatalf("acme user acknowledges acme's alert: %v", err)
	}
	if err := d.Act(ctx, now, Action{Kind: ActionAcknowledge, AlertID: ids["bank"], User: "sam", Identity: "sam", Role: RoleSecOps,
		Source: "web"}); err != nil {
		t.Fatalf("a user of every tenant acknowledges bank's alert: %v", err)
	}
}
