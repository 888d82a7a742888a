package alert

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

func TestInhibitionAndSilences(t *testing.T) {
	ctx := t.Context()
	st := newMemStore()
	poster := &fakePoster{}
	d := newTestDispatcher(t, Config{DefaultChannel: "C1"}, st, Options{Poster: poster})
	now := t0
	// A silence on actor a3 written by a responder (the shared register).
	if err := st.PutSuppression(ctx, models.Suppression{ID: "s1", Kind: models.SuppressSilence, Tenant: "acme", ActorID: "a3",
		CreatedAt: now, Until: now.Add(time.Hour), Author: "ann", Reason: "pen test"}, 1); err != nil {
		t.Fatal(err)
	}
	crit := testFinding("bulk_export", "a1", models.SeverityCritical, now)
	crit.Evidence.BaselineSource = "rule"
	if err := d.Notify(ctx, now, crit, testFinding("volume_spike", "a1", models.SeverityHigh, now),
		testFinding("volume_spike", "a3", models.SeverityHigh, now)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		now = now.Add(time.Second)
		step(t, d, now)
	}
	posts, _ := poster.counts()
	if posts != 1 {
		t.Fatalf("%d posts, want 1 (a1's group; a3 is silenced)", posts)
	}
	rows, err := st.ActiveAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[r.Alert.Detector+"/"+r.Alert.ActorID] = string(r.Alert.Status) + " " + r.MutedBy
	}
	for k, want := range map[string]string{
		"bulk_export/a1":  "open ",
		"volume_spike/a1": "silenced inhibited:",
		"volume_spike/a3": "silenced s1",
	} {
		if !strings.HasPrefix(got[k], want) {
			t.Errorf("%s: %q, want prefix %q", k, got[k], want)
		}
	}
	// The critical alert resolves (no finding for an hour) while a1's
	// volume spike keeps firing: the inhibited alert opens.
	for i := 1; i <= 7; i++ {
		now = t0.Add(time.Duration(i) * 10 * time.Minute)
		if err := d.Notify(ctx, now, testFinding("volume_spike", "a1", models.SeverityHigh, now)); err != nil {
			t.Fatal(err)
		}
		step(t, d, now)
	}
	rows, err = st.AlertsByID(ctx, []string{d.byFP[models.Fingerprint("volume_spike", "acme", "a1")]})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Alert.Status != models.StatusOpen || rows[0].MutedBy != "" {
		t.Errorf("inhibited alert after the critical one resolved: %+v", rows)
	}
}

func TestDedupeFoldsFindings(t *testing.T) {
	ctx := t.Context()
	st := newMemStore()
	d := newTestDispatcher(t, Config{}, st, Options{})
	f := testFinding("enumeration", "a1", models.SeverityMedium, t0)
	for i := 0; i < 3; i++ {
		if err := d.Notify(ctx, t0.Add(time.Duration(i)*time.Second), f); err != nil {
			t.Fatal(err)
		}
	}
	g := testFinding("enumeration", "a1", models.SeverityHigh, t0.Add(2*time.Minute))
	if err := d.Notify(ctx, t0.Add(2*time.Minute), g); err != nil {
		t.Fatal(err)
	}
	rows, err := st.ActiveAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Alert.Findings != 2 || rows[0].Alert.Severity != models.SeverityHigh {
		t.Fatalf("alerts = %+v, want one alert of 2 findings raised to high", rows)
	}
	if rows[0].Alert.Latest.WindowEnd != g.WindowEnd.UTC() {
		t.Errorf("latest finding not kept: %v", rows[0].Alert.Latest.WindowEnd)
	}
	changes, err := st.AlertChanges(ctx, rows[0].Alert.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Status != models.StatusOpen {
		t.Errorf("changes = %+v, want the one open", changes)
	}
}

func TestRouting(t *testing.T) {
	crit, high := models.SeverityCritical, models.SeverityHigh
	cfg := Config{DefaultChannel: "Cdefault", Routes: []Route{
		{Channel: "Cvendor", Detectors: []string{"vendor_scope"}, Continue: true},
		{Channel: "Ccrit", MinSeverity: &crit},
		{Channel: "Cbeta", Tenants: []string{"beta"}},
		{Channel: "Cbots", ActorTypes: []models.ActorType{models.ActorBot}, Severities: []models.Severity{high}},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		a    models.Alert
		want string
	}{
		{"critical", models.Alert{Detector: "volume_spike", Severity: crit, Tenant: "beta"}, "Ccrit"},
		{"vendor continues", models.Alert{Detector: "vendor_scope", Severity: crit}, "Cvendor,Ccrit"},
		{"vendor low", models.Alert{Detector: "vendor_scope", Severity: models.SeverityLow}, "Cvendor"},
		{"tenant", models.Alert{Detector: "x", Severity: high, Tenant: "beta"}, "Cbeta"},
		{"bot high", models.Alert{Detector: "x", Severity: high, ActorType: models.ActorBot}, "Cbots"},
		{"bot medium", models.Alert{Detector: "x", Severity: models.SeverityMedium, ActorType: models.ActorBot}, "Cdefault"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(cfg.channels(&tc.a), ","); got != tc.want {
				t.Errorf("channels = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestUrgentGroupWait: the first message of a group holding a high or
// critical alert waits urgent_group_wait instead of group_wait.
func TestUrgentGroupWait(t *testing.T) {
	crit := models.SeverityCritical
	tests := []struct {
		name     string
		cfg      Config
		severity models.Severity
		postAt   time.Duration // first second at which the group is posted
	}{
		{"high skips group_wait by default", Config{}, models.SeverityHigh, 0},
		{"critical skips group_wait by default", Config{}, models.SeverityCritical, 0},
		{"medium waits group_wait", Config{}, models.SeverityMedium, 30 * time.Second},
		{"configured urgent wait", Config{UrgentGroupWait: 5 * time.Second}, models.SeverityHigh, 5 * time.Second},
		{"high below urgent_severity critical", Config{UrgentSeverity: &crit}, models.SeverityHigh, 30 * time.Second},
		{"turned off", Config{UrgentGroupWait: 30 * time.Second}, models.SeverityCritical, 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			poster := &fakePoster{}
			tc.cfg.DefaultChannel = "C1"
			d := newTestDispatcher(t, tc.cfg, newMemStore(), Options{Poster: poster})
			if err := d.Notify(t.Context(), t0, testFinding("volume_spike", "a1", tc.severity, t0)); err != nil {
				t.Fatal(err)
			}
			for at := time.Duration(0); at <= 31*time.Second; at += time.Second {
				step(t, d, t0.Add(at))
				posts, _ := poster.counts()
				if want := btoi(at >= tc.postAt); posts != want {
					t.Fatalf("at %s: %d posts, want %d (first post at %s)", at, posts, want, tc.postAt)
				}
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestConfigValidateNamesField(t *testing.T) {
	neg := -time.Second
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"defaults", Config{}, ""},
		{"negative wait", Config{GroupWait: neg}, "alert.group_wait"},
		{"repeat shorter", Config{GroupInterval: time.Hour, RepeatInterval: time.Minute}, "alert.repeat_interval"},
		{"urgent wait negative", Config{UrgentGroupWait: neg}, "alert.urgent_group_wait"},
		{"urgent wait longer", Config{UrgentGroupWait: time.Minute}, "alert.urgent_group_wait"},
		{"route channel", Config{Routes: []Route{{}}}, "alert.routes[0].channel"},
		{"actor type", Config{Routes: []Route{{Channel: "C", ActorTypes: []models.ActorType{"robot"}}}}, "alert.routes[0].actor_types"},
		{"token needs channel", Config{Slack: SlackConfig{Token: "x"}}, "alert.default_channel"},
		{"weekday", Config{Digest: DigestConfig{Weekday: "funday"}}, "alert.digest.weekday"},
		{"tz", Config{Digest: DigestConfig{TZ: "Mars/Olympus"}}, "alert.digest.tz"},
		{"at", Config{Digest: DigestConfig{At: "9am"}}, "alert.digest.at"},
		{"url", Config{InvestigateURL: "not a url"}, "alert.investigate_url"},
		{"false positive for ever", Config{FalsePositiveFor: 10 * 365 * 24 * time.Hour}, "alert.false_positive_for"},
		{"slack user id", Config{Slack: SlackConfig{Users: []SlackUser{{User: "ann"}}}}, "alert.slack.users[0].slack_id"},
		{"slack user name", Config{Slack: SlackConfig{Users: []SlackUser{{SlackID: "U1"}}}}, "alert.slack.users[0].user"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v does not name %s", err, tc.want)
			}
		})
	}
}

func TestDigestPostedOncePerWeek(t *testing.T) {
	st := newMemStore()
	var weeks []time.Time
	fn := func(_ context.Context, week time.Time) (Digest, error) {
		weeks = append(weeks, week)
		return Digest{Title: "Weekly", Sections: []DigestSection{{Title: "Top", Lines: []string{"a1"}}}}, nil
	}
	cfg := Config{DefaultChannel: "C1", Digest: DigestConfig{Channel: "Cdigest", TZ: "Europe/Berlin"}}
	poster := &fakePoster{}
	d := newTestDispatcher(t, cfg, st, Options{Poster: poster, Digest: fn})
	// Monday 2025-01-13 09:00 Berlin is 08:00 UTC.
	start := time.Date(2025, 1, 13, 7, 58, 0, 0, time.UTC)
	for now := start; now.Before(start.Add(5 * time.Minute)); now = now.Add(30 * time.Second) {
		step(t, d, now)
		if posts, _ := poster.counts(); now.Before(start.Add(2*time.Minute)) && posts != 0 {
			t.Fatalf("digest posted before 09:00 Berlin (%s UTC)", now.Format("15:04:05"))
		}
	}
	// A restart the same morning does not post it again.
	d2 := newTestDispatcher(t, cfg, st, Options{Poster: poster, Digest: fn})
	step(t, d2, start.Add(10*time.Minute))
	posts, _ := poster.counts()
	if posts != 1 || poster.posts[0].channel != "Cdigest" || poster.posts[0].msg.Digest == nil {
		t.Fatalf("posts = %d (%+v), want the one digest in Cdigest", posts, poster.posts)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if len(weeks) != 1 || !weeks[0].Equal(time.Date(2025, 1, 6, 0, 0, 0, 0, berlin)) {
		t.Errorf("digest built for %v, want the week starting Monday 2025-01-06 00:00 Berlin", weeks)
	}
	// The next Monday brings the next one.
	step(t, d2, time.Date(2025, 1, 20, 8, 0, 30, 0, time.UTC))
	step(t, d2, time.Date(2025, 1, 20, 8, 1, 30, 0, time.UTC))
	if posts, _ := poster.counts(); posts != 2 {
		t.Errorf("%d posts after the second Monday, want 2", posts)
	}
}

func TestSelfMonitoring(t *testing.T) {
	ctx := t.Context()
	st := newMemStore()
	lag := int64(20000)
	sources := func(context.Context, time.Time) (map[string]time.Time, error) {
		return map[string]time.Time{"crm": t0.Add(-20 * time.Minute), "orders": t0.Add(-time.Minute)}, nil
	}
	lagFn := func(context.Context) (int64, error) { lag += 1000; return lag, nil }
	if err := st.PutSuppression(ctx, models.Suppression{ID: "all", Kind: models.SuppressSilence, CreatedAt: t0,
		Until: t0.Add(48 * time.Hour), Author: "bob", Reason: "maintenance"}, 1); err != nil {
		t.Fatal(err)
	}
	poster := &fakePoster{}
	// Shard 1 lost its owner 3 minutes before t0 (past 2 one-minute
	// windows); shard 0 is owned (not returned).
	unowned := func(_ context.Context, now time.Time) ([]UnownedShard, error) {
		return []UnownedShard{{Shard: 1, LastOwned: t0.Add(-3 * time.Minute), Since: t0.Add(-time.Hour), Limit: 2 * time.Minute}}, nil
	}
	d := newTestDispatcher(t, Config{DefaultChannel: "C1"}, st, Options{Poster: poster, Sources: sources, Lag: lagFn, Unowned: unowned})
	if err := d.Notify(ctx, t0, testFinding("volume_spike", "a1", models.SeverityHigh, t0)); err != nil {
		t.Fatal(err)
	}
	now := t0
	for i := 0; i < 6; i++ { // 6 checks, one a minute
		step(t, d, now)
		now = now.Add(time.Minute)
	}
	step(t, d, now)
	rows, err := st.ActiveAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]models.AlertStatus{}
	for _, r := range rows {
		got[r.Alert.Detector+" "+r.Alert.ActorID] = r.Alert.Status
	}
	want := map[string]models.AlertStatus{
		"volume_spike a1":                              models.StatusSilenced,
		DetectorSourceSilent + " store:crm":            models.StatusOpen,
		DetectorConsumerLag + " consumer:ingest":       models.StatusOpen,
		DetectorSilenceEverything + " suppression:all": models.StatusOpen,
		DetectorShardUnowned + " detect-shard:1":       models.StatusOpen,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: status %q, want %q", k, got[k], w)
		}
	}
	if _, ok := got[DetectorSourceSilent+" store:orders"]; ok {
		t.Error("a store with fresh events was reported silent")
	}
	if len(got) != len(want) {
		t.Errorf("alerts = %v", got)
	}
	if posts, _ := poster.counts(); posts != 4 {
		t.Errorf("%d posts, want 4 (the self alerts, not the silenced one)", posts)
	}
}

func TestSlackOffStillPersistsAndLogs(t *testing.T) {
	ctx := t.Context()
	st := newMemStore()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	d := newTestDispatcher(t, Config{}, st, Options{Log: log})
	runCtx, cancel := context.WithCancel(ctx)
	cancel()
	_ = d.Run(runCtx) // logs the start-up line and returns
	if err := d.Notify(ctx, t0, testFinding("volume_spike", "a1", models.SeverityHigh, t0)); err != nil {
		t.Fatal(err)
	}
	step(t, d, t0.Add(31*time.Second))
	rows, err := st.ActiveAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d alerts in ClickHouse, want 1", len(rows))
	}
	out := buf.String()
	for _, want := range []string{"Slack is off", "alert (Slack is off)", "detector=volume_spike"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
