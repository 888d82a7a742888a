package slack_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/alert"
	aslack "github.com/chatwarden/chatwarden/alert/slack"
	"github.com/chatwarden/chatwarden/internal/slackfake"
	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

const (
	chAlerts = "C0ALERTS"
	chEsc    = "C0ESCALATE"
	secret   = "8f742231b10e8888abcd99yyyzzz85a5"
)

var t0 = time.Date(2025, 1, 6, 10, 0, 0, 0, time.UTC)

type rig struct {
	d     *alert.Dispatcher
	slack *slackfake.Server
	st    *store.Store
	cfg   alert.Config
	now   time.Time
}

func newRig(t *testing.T, cfg alert.Config) *rig {
	t.Helper()
	f := newFakeSlack(t)
	st := storetest.New(t)
	r := &rig{slack: f, st: st, now: t0}
	cfg.DefaultChannel, cfg.EscalationChannel = chAlerts, chEsc
	cfg.InvestigateURL = "https://chatwarden.example/"
	cfg.Slack.Token, cfg.Slack.APIURL, cfg.Slack.Timeout = "xoxb-test", f.URL(), 5*time.Second
	r.cfg = cfg
	r.d = r.newDispatcher(t)
	return r
}

// newDispatcher starts a dispatcher on the rig's store and Slack, as a
// restarted process would.
func (r *rig) newDispatcher(t *testing.T) *alert.Dispatcher {
	t.Helper()
	c, err := aslack.New(r.cfg.Slack, nil)
	if err != nil || c == nil {
		t.Fatalf("slack client: %v", err)
	}
	d, err := alert.New(r.cfg, alert.Options{Store: r.st, Poster: c})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// advance steps the simulated clock by step until it has moved by total,
// running the timers and the sender at every step.
func (r *rig) advance(t *testing.T, total, step time.Duration) {
	t.Helper()
	for end := r.now.Add(total); !r.now.After(end); r.now = r.now.Add(step) {
		if err := r.d.Tick(t.Context(), r.now); err != nil {
			t.Logf("tick at %s: %v", r.now.Sub(t0), err)
		}
		_, _ = r.d.Deliver(t.Context(), r.now) // failures are retried; the test checks the outcome
	}
}

func finding(detector, actor string, sev models.Severity, at time.Time) models.Finding {
	return models.Finding{Detector: detector, Tenant: "acme", ActorID: actor, ActorType: models.ActorHuman,
		WindowStart: at.Add(-time.Minute), WindowEnd: at, DetectedAt: at, Severity: sev, Score: 9.5,
		Probability: 1e-6, Summary: detector + " on " + actor,
		Evidence: models.Evidence{Metric: "records per minute", Observed: 5000, Baseline: 40, Spread: 8,
			BaselineSource: "actor", Subjects: 1200, Records: 5000, Categories: []string{"email", "payment"},
			TopStores: []string{"crm"}}}
}

func eventRule(actor string, at time.Time) models.Finding {
	f := finding("bulk_export", actor, models.SeverityCritical, at)
	f.WindowStart, f.Probability = at, 0
	f.Evidence.BaselineSource, f.Evidence.Threshold, f.Evidence.EventIDs = "rule", 1000, []string{"ev-" + actor}
	return f
}

// assertNoDuplicates fails when one message id was posted twice.
func assertNoDuplicates(t *testing.T, f *slackfake.Server, channels ...string) {
	t.Helper()
	for _, ch := range channels {
		seen := map[string]bool{}
		for _, m := range f.Messages(ch) {
			var md struct {
				Payload map[string]any `json:"event_payload"`
			}
			_ = json.Unmarshal(m.Metadata, &md)
			id, _ := md.Payload["message_id"].(string)
			if id == "" {
				t.Errorf("message %s in %s carries no message id", m.TS, ch)
			}
			if seen[id] {
				t.Errorf("message %s posted twice in %s", id, ch)
			}
			seen[id] = true
		}
	}
}

func TestStormCollapsesIntoOneMessagePerActor(t *testing.T) {
	t.Parallel()
	r := newRig(t, alert.Config{})
	ctx := t.Context()
	var fs []models.Finding
	detectors := []string{"volume_spike", "enumeration", "off_hours", "rare_store", "peer_deviation"}
	for a := 0; a < 50; a++ {
		for _, det := range detectors {
			for w := 0; w < 4; w++ {
				fs = append(fs, finding(det, fmt.Sprintf("agent-%02d", a), models.SeverityHigh, t0.Add(time.Duration(w)*time.Minute)))
			}
		}
	}
	if len(fs) != 1000 {
		t.Fatalf("built %d findings", len(fs))
	}
	for i := 0; i < len(fs); i += 100 {
		if err := r.d.Notify(ctx, r.now, fs[i:i+100]...); err != nil {
			t.Fatal(err)
		}
		r.now = r.now.Add(time.Second)
	}
	// One message per second per channel: count posts per simulated second.
	for end := r.now.Add(3 * time.Minute); r.now.Before(end); r.now = r.now.Add(500 * time.Millisecond) {
		before, _ := r.slack.Counts()
		if err := r.d.Tick(ctx, r.now); err != nil {
			t.Fatal(err)
		}
		if _, err := r.d.Deliver(ctx, r.now); err != nil {
			t.Fatal(err)
		}
		if after, _ := r.slack.Counts(); after-before > 1 {
			t.Fatalf("%d posts to one channel at %s", after-before, r.now.Sub(t0))
		}
	}
	posts, _ := r.slack.Counts()
	if posts != 50 {
		t.Errorf("1,000 findings on 50 actors made %d posts, want 50", posts)
	}
	if n := r.d.Unsent(); n != 0 {
		t.Errorf("%d messages unsent", n)
	}
	assertNoDuplicates(t, r.slack, chAlerts)
	msgs := r.slack.Messages(chAlerts)
	if len(msgs) > 0 && !strings.Contains(string(msgs[0].Blocks), "5 alerts on this actor") {
		t.Errorf("group message does not summarize its 5 alerts: %s", msgs[0].Blocks)
	}
	active, err := r.st.ActiveAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 250 {
		t.Errorf("%d active alerts in ClickHouse, want 250 (50 actors × 5 detectors)", len(active))
	}
	for _, a := range active {
		if a.Alert.Findings != 4 {
			t.Errorf("alert %s folded %d findings, want 4", a.Alert.ID, a.Alert.Findings)
			break
		}
	}
}

func TestRateLimitBurstHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	r := newRig(t, alert.Config{})
	ctx := t.Context()
	limited := 0
	var lastLimitedAt time.Time
	var early []time.Duration
	r.slack.SetFault(func(method string) slackfake.Fault {
		if method == "post" && limited < 6 {
			if !lastLimitedAt.IsZero() && r.now.Sub(lastLimitedAt) < 3*time.Second {
				early = append(early, r.now.Sub(lastLimitedAt))
			}
			limited++
			lastLimitedAt = r.now
			return slackfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: 3}
		}
		return slackfake.Fault{}
	})
	for i := 0; i < 3; i++ {
		if err := r.d.Notify(ctx, r.now, eventRule(fmt.Sprintf("bot-%d", i), r.now)); err != nil {
			t.Fatal(err)
		}
	}
	r.advance(t, 2*time.Minute, 250*time.Millisecond)
	if limited != 6 {
		t.Fatalf("the fake answered 429 %d times, want 6", limited)
	}
	if len(early) > 0 {
		t.Errorf("posted again %v after a 429 with Retry-After 3s", early)
	}
	posts, _ := r.slack.Counts()
	if posts != 3 {
		t.Errorf("%d posts, want 3 (one per alert group)", posts)
	}
	if n := r.d.Unsent(); n != 0 {
		t.Errorf("%d messages unsent", n)
	}
	assertNoDuplicates(t, r.slack, chAlerts)
}

func TestSlackOutageLosesNothingAndPostsNothingTwice(t *testing.T) {
	t.Parallel()
	r := newRig(t, alert.Config{})
	ctx := t.Context()
	outageEnd := t0.Add(5 * time.Minute)
	r.slack.SetFault(func(string) slackfake.Fault {
		if r.now.Before(outageEnd) {
			return slackfake.Fault{Status: http.StatusInternalServerError}
		}
		return slackfake.Fault{}
	})
	if err := r.d.Notify(ctx, r.now, eventRule("bot-1", r.now), eventRule("bot-2", r.now)); err != nil {
		t.Fatal(err)
	}
	r.advance(t, time.Minute, time.Second)
	if err := r.d.Notify(ctx, r.now, finding("volume_spike", "agent-7", models.SeverityHigh, r.now)); err != nil {
		t.Fatal(err)
	}
	r.advance(t, 7*time.Minute, time.Second)
	posts, _ := r.slack.Counts()
	if posts != 3 {
		t.Errorf("%d posts after a 5-minute outage, want 3", posts)
	}
	if n := r.d.Unsent(); n != 0 {
		t.Errorf("%d messages still unsent", n)
	}
	assertNoDuplicates(t, r.slack, chAlerts)
	if calls, _ := r.slack.Calls(); calls["post"] < 4 {
		t.Errorf("only %d post attempts: the outage was not exercised", calls["post"])
	}
}

func TestLostAnswerIsFoundNotPostedTwice(t *testing.T) {
	t.Parallel()
	r := newRig(t, alert.Config{})
	ctx := t.Context()
	lost := 0
	r.slack.SetFault(func(method string) slackfake.Fault {
		if method == "post" && lost == 0 {
			lost++
			return slackfake.Fault{Lost: true} // Slack posted, but its answer never arrived
		}
		return slackfake.Fault{}
	})
	if err := r.d.Notify(ctx, r.now, eventRule("bot-1", r.now)); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Tick(ctx, r.now); err != nil {
		t.Fatal(err)
	}
	if _, err := r.d.Deliver(ctx, r.now); err == nil {
		t.Fatal("the lost answer was not reported as an error")
	}
	// The process dies here; a new one takes over from ClickHouse.
	r.d = r.newDispatcher(t)
	r.advance(t, time.Minute, time.Second)
	posts, updates := r.slack.Counts()
	if posts != 1 || updates != 1 {
		t.Errorf("posts=%d updates=%d, want the one post found in history and updated", posts, updates)
	}
	if r.slack.Histories() == 0 {
		t.Error("no channel-history look-up before re-posting")
	}
	if n := r.d.Unsent(); n != 0 {
		t.Errorf("%d messages unsent", n)
	}
}

func TestRestartDeliversWhatWasPersisted(t *testing.T) {
	t.Parallel()
	r := newRig(t, alert.Config{})
	ctx := t.Context()
	r.slack.SetFault(func(string) slackfake.Fault { return slackfake.Fault{Status: http.StatusServiceUnavailable} })
	if err := r.d.Notify(ctx, r.now, eventRule("bot-1", r.now), finding("enumeration", "agent-2", models.SeverityMedium, r.now)); err != nil {
		t.Fatal(err)
	}
	r.advance(t, time.Minute, time.Second)
	// Slack never answered; the process restarts after Slack is back.
	r.slack.SetFault(nil)
	r.d = r.newDispatcher(t)
	r.advance(t, 2*time.Minute, time.Second)
	posts, _ := r.slack.Counts()
	if posts != 2 {
		t.Errorf("%d posts after restart, want 2", posts)
	}
	assertNoDuplicates(t, r.slack, chAlerts)
	// A further restart must not post or update anything again.
	r.d = r.newDispatcher(t)
	p0, u0 := r.slack.Counts()
	r.advance(t, 10*time.Second, time.Second)
	if p, u := r.slack.Counts(); p != p0 || u != u0 {
		t.Errorf("an idle restart posted %d and updated %d messages", p-p0, u-u0)
	}
}

func TestEscalationReNotifiesAndSaysSo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		ackAt    time.Duration // 0: never acknowledged
		escalate bool
	}{
		{"unacknowledged", 0, true},
		{"acknowledged in time", 5 * time.Minute, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, alert.Config{EscalateAfter: 15 * time.Minute})
			ctx := t.Context()
			if err := r.d.Notify(ctx, r.now, eventRule("bot-1", r.now)); err != nil {
				t.Fatal(err)
			}
			r.advance(t, 14*time.Minute, 30*time.Second)
			if len(r.slack.Messages(chEsc)) != 0 {
				t.Fatalf("escalated before 15 minutes")
			}
			if tc.ackAt > 0 {
				id := messageID(t, r.slack.Messages(chAlerts)[0])
				if err := r.d.Act(ctx, t0.Add(tc.ackAt), alert.Action{Kind: alert.ActionAcknowledge, MessageID: id, User: "U1", UserName: "ann", Identity: "ann", Role: alert.RoleSecOps}); err != nil {
					t.Fatal(err)
				}
			}
			r.advance(t, 3*time.Minute, 30*time.Second)
			esc := r.slack.Messages(chEsc)
			if got := len(esc) == 1; got != tc.escalate {
				t.Fatalf("escalation posts: %d, want escalation=%v", len(esc), tc.escalate)
			}
			orig := r.slack.Messages(chAlerts)[0]
			says := strings.Contains(string(orig.Blocks), `escalated to \u003c#`+chEsc)
			if says != tc.escalate {
				t.Errorf("original message says escalated=%v, want %v: %s", says, tc.escalate, orig.Blocks)
			}
		})
	}
}

func messageID(t *testing.T, m slackfake.Msg) string {
	t.Helper()
	var md struct {
		Payload map[string]any `json:"event_payload"`
	}
	if err := json.Unmarshal(m.Metadata, &md); err != nil {
		t.Fatalf("metadata: %v", err)
	}
	return md.Payload["message_id"].(string)
}

// signed builds an interactivity request signed with key at ts.
func signed(key string, ts time.Time, body string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/slack/interactivity", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	stamp := fmt.Sprint(ts.Unix())
	mac := hmac.New(sha256.New, []byte(key))
	fmt.Fprintf(mac, "v0:%s:%s", stamp, body)
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return req
}

func clickBody(action, messageID, user string) string {
	payload, _ := json.Marshal(map[string]any{
		"type": "block_actions", "user": map[string]any{"id": user, "name": "responder " + user},
		"actions": []map[string]any{{"action_id": action, "block_id": "cw-actions", "value": messageID, "type": "button"}},
	})
	return url.Values{"payload": {string(payload)}}.Encode()
}

func TestFalsePositiveButtonReachesDetection(t *testing.T) {
	t.Parallel()
	r := newRig(t, alert.Config{})
	ctx := t.Context()
	if err := r.d.Notify(ctx, r.now, eventRule("bot-9", r.now)); err != nil {
		t.Fatal(err)
	}
	r.advance(t, 2*time.Second, time.Second)
	msgs := r.slack.Messages(chAlerts)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	h := r.interactivity(t)
	if rec := serve(t, h, click("false_positive", buttons(t, msgs[0])["false_positive"], "UANN")); rec.Code != http.StatusOK {
		t.Fatalf("handler answered %d: %s", rec.Code, rec.Body)
	}
	views := r.slack.Views()
	if len(views) != 1 {
		t.Fatalf("%d dialogs opened, want 1", len(views))
	}
	meta, _ := views[0].View["private_metadata"].(string)
	if rec := serve(t, h, submit(meta, "UANN", "scheduled export job, ticket OPS-77")); rec.Code != http.StatusOK {
		t.Fatalf("submission answered %d: %s", rec.Code, rec.Body)
	}
	sups, err := r.st.Suppressions(ctx, r.now)
	if err != nil {
		t.Fatal(err)
	}
	if len(sups) != 1 || sups[0].Kind != models.SuppressFalsePositive || sups[0].Detector != "bulk_export" ||
		sups[0].ActorID != "bot-9" || sups[0].Author != "slack:UANN:ann" {
		t.Errorf("suppressions = %+v, want one false_positive on bulk_export/bot-9 by slack:UANN:ann", sups)
	}
	r.advance(t, 2*time.Second, time.Second)
	after := r.slack.Messages(chAlerts)[0]
	if after.Updates == 0 || strings.Contains(string(after.Blocks), `"action_id":"acknowledge"`) ||
		!strings.Contains(string(after.Blocks), "false positive") {
		t.Errorf("message not updated to a closed false positive: %s", after.Blocks)
	}
	rows, err := r.st.ActiveAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 0 {
		t.Errorf("%d alerts still active after false positive", len(rows))
	}
	// Detection's next finding on the same pattern stays quiet.
	if err := r.d.Notify(ctx, r.now, eventRule("bot-9", r.now)); err != nil {
		t.Fatal(err)
	}
	r.advance(t, time.Minute, time.Second)
	if posts, _ := r.slack.Counts(); posts != 1 {
		t.Errorf("a suppressed pattern was posted again (%d posts)", posts)
	}
}

func TestInteractivityRejectsBadRequests(t *testing.T) {
	t.Parallel()
	var acted []alert.Action
	act := func(_ context.Context, _ time.Time, a alert.Action) error { acted = append(acted, a); return nil }
	h := newTestHandler(t, act)
	body := clickBody("acknowledge", "g1", "U1")
	tests := []struct {
		name string
		req  *http.Request
		want int
	}{
		{"valid", signed(secret, time.Now(), body), http.StatusOK},
		{"replayed", nil, http.StatusUnauthorized}, // the same request again
		{"forged signature", signed("not-the-secret", time.Now(), body), http.StatusUnauthorized},
		{"stale timestamp", signed(secret, time.Now().Add(-6*time.Minute), body), http.StatusUnauthorized},
		{"future timestamp", signed(secret, time.Now().Add(6*time.Minute), body), http.StatusUnauthorized},
		{"tampered body", func() *http.Request {
			req := signed(secret, time.Now(), body)
			tampered := clickBody("false_positive", "g1", "U1")
			r2 := httptest.NewRequest(http.MethodPost, "/slack/interactivity", strings.NewReader(tampered))
			r2.Header = req.Header
			return r2
		}(), http.StatusUnauthorized},
		{"unsigned", httptest.NewRequest(http.MethodPost, "/slack/interactivity", strings.NewReader(body)), http.StatusUnauthorized},
	}
	var first *http.Request
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			if req == nil {
				req = httptest.NewRequest(http.MethodPost, "/slack/interactivity", strings.NewReader(body))
				req.Header = first.Header
			} else if first == nil {
				first = req
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("status %d, want %d", rec.Code, tc.want)
			}
		})
	}
	if len(acted) != 1 || acted[0].Kind != alert.ActionAcknowledge || acted[0].User != "U1" || acted[0].MessageID != "g1" ||
		acted[0].Identity != "ann" || acted[0].Role != alert.RoleSecOps {
		t.Errorf("actions applied = %+v, want exactly the valid acknowledge", acted)
	}
}

// newTestHandler is an interactivity endpoint without a workspace: Slack
// user U1 is ann (secops); act both authorizes and applies; the audit rows
// are dropped.
func newTestHandler(t testing.TB, act aslack.ActFunc) *aslack.Handler {
	t.Helper()
	dir, err := aslack.NewDirectory([]aslack.Person{{Name: "ann", Role: alert.RoleSecOps}}, []alert.SlackUser{{SlackID: "U1", User: "ann"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := aslack.NewHandler(aslack.HandlerOptions{Secret: secret, Act: act,
		Authorize: func(context.Context, time.Time, alert.Action) error { return nil },
		Directory: dir, Audit: func(context.Context, store.AuditEntry) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return h
}
