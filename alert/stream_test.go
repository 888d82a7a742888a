package alert

import (
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// openWindowFinding is a finding streaming detection raises on the open
// window [t0, t0+1m) of actor, 23 s into it (detect/stream.go): its
// WindowEnd is the newest event it covers, not the window's end.
func openWindowFinding(actor string) models.Finding {
	f := testFinding("volume_spike", actor, models.SeverityHigh, t0.Add(time.Minute))
	f.WindowStart, f.WindowEnd, f.DetectedAt = t0, t0.Add(23*time.Second), t0.Add(24*time.Second)
	f.OpenWindow = true
	return f
}

// TestOpenWindowFindingThenWindowIsOneAlert (issue 12): a finding raised
// on the open window, then the window's own finding of the same detector
// when it closes, make one alert and one Slack post; the window's finding
// updates the alert (and its message) with the whole window's numbers. A
// retraction (the window did not confirm) resolves an alert only that
// finding fed, and leaves one other findings fed alone.
func TestOpenWindowFindingThenWindowIsOneAlert(t *testing.T) {
	ctx := t.Context()
	st := newMemStore()
	poster := &fakePoster{}
	d := newTestDispatcher(t, Config{DefaultChannel: "C1"}, st, Options{Poster: poster})
	open := openWindowFinding("a1")
	now := open.DetectedAt
	if err := d.Notify(ctx, now, open); err != nil {
		t.Fatal(err)
	}
	step(t, d, now)
	if posts, _ := poster.counts(); posts != 1 {
		t.Fatalf("%d posts after the open window's finding, want 1 at once (high)", posts)
	}
	win := testFinding("volume_spike", "a1", models.SeverityHigh, t0.Add(time.Minute+5*time.Second))
	win.Evidence.Records = 1500
	now = win.DetectedAt
	if err := d.Notify(ctx, now, win); err != nil {
		t.Fatal(err)
	}
	for end := now.Add(10 * time.Minute); !now.After(end); now = now.Add(10 * time.Second) {
		step(t, d, now)
	}
	rows, err := st.ActiveAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Alert.Findings != 2 {
		t.Fatalf("alerts = %+v, want one alert of 2 findings", rows)
	}
	if got := rows[0].Alert.Latest; !got.WindowEnd.Equal(win.WindowEnd) || got.Evidence.Records != 1500 {
		t.Errorf("latest finding %v .. %v records %d, want the closed window's (%v, 1500)", got.WindowStart, got.WindowEnd,
			got.Evidence.Records, win.WindowEnd)
	}
	posts, updates := poster.counts()
	if posts != 1 {
		t.Errorf("%d Slack posts, want 1 (the window's finding updates the message)", posts)
	}
	if updates < 1 {
		t.Errorf("%d Slack updates, want the message updated with the window's finding", updates)
	}

	// a2: raised on the open window, not confirmed when it closed.
	unconfirmed := openWindowFinding("a2")
	if err := d.Notify(ctx, now, unconfirmed); err != nil {
		t.Fatal(err)
	}
	// a3: raised on the open window and fed by a later window's finding too.
	fed := openWindowFinding("a3")
	later := testFinding("volume_spike", "a3", models.SeverityHigh, t0.Add(3*time.Minute))
	if err := d.Notify(ctx, now, fed, later); err != nil {
		t.Fatal(err)
	}
	step(t, d, now)
	ids := map[string]string{}
	for _, actor := range []string{"a2", "a3"} {
		ids[actor] = d.byFP[models.Fingerprint("volume_spike", "acme", actor)]
	}
	for _, f := range []models.Finding{unconfirmed, fed} {
		r := f
		r.Retract, r.Severity, r.Summary = true, models.SeverityInfo, "not confirmed when its window closed: "+f.Summary
		if err := d.Notify(ctx, now, r); err != nil {
			t.Fatal(err)
		}
	}
	step(t, d, now.Add(time.Second))
	status := map[string]models.AlertStatus{}
	for _, actor := range []string{"a2", "a3"} {
		id := ids[actor]
		rs, err := st.AlertsByID(ctx, []string{id})
		if err != nil || len(rs) != 1 {
			t.Fatalf("%s's alert %q: %v %v", actor, id, rs, err)
		}
		status[actor] = rs[0].Alert.Status
		if rs[0].Alert.Findings > 2 {
			t.Errorf("%s: the retraction was folded in as a finding (%d findings)", actor, rs[0].Alert.Findings)
		}
	}
	if status["a2"] != models.StatusResolved {
		t.Errorf("a2 (only the unconfirmed open-window finding): %s, want resolved", status["a2"])
	}
	if status["a3"] != models.StatusOpen {
		t.Errorf("a3 (another finding fed the alert): %s, want open", status["a3"])
	}
}
