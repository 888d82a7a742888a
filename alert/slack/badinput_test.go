package slack_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/alert"
	aslack "github.com/chatwarden/chatwarden/alert/slack"
	"github.com/chatwarden/chatwarden/models"
)

// hostile are strings an event producer controls (actor ids, tenants,
// stores, categories...) that would be markup, mentions or links if Slack
// read them unescaped.
var hostile = []string{
	`<!channel>`, `<!here|here>`, `<@U0ADMIN>`, `<#C0SECRET|secret>`, `<https://evil.example|Reset your password>`,
	`<mailto:x@evil.example|x>`, `&lt;!channel&gt;`, `a > b & c < d`, "*bold* _it_ ~s~ `code` ```pre```",
	`'; DROP TABLE alerts; --`, `<script>alert(1)</script>`, "two\nlines\r\n<!everyone>", "\u202e<!channel>",
}

// allowedMarkup is the markup the renderer itself writes: user and channel
// mentions built from Slack ids.
var allowedMarkup = regexp.MustCompile(`<[@#][A-Z0-9]+>`)

// checkMrkdwn fails when text holds a Slack control sequence: '<' or '>'
// outside the renderer's own mentions, or '&' that is not an escape.
func checkMrkdwn(t *testing.T, where, text string) {
	t.Helper()
	s := allowedMarkup.ReplaceAllString(text, "")
	if strings.ContainsAny(s, "<>") {
		t.Errorf("%s: unescaped < or > in %q", where, text)
	}
	for i := strings.IndexByte(s, '&'); i >= 0; i = strings.IndexByte(s, '&') {
		rest := s[i:]
		if !strings.HasPrefix(rest, "&amp;") && !strings.HasPrefix(rest, "&lt;") && !strings.HasPrefix(rest, "&gt;") {
			t.Errorf("%s: bare & in %q", where, text)
			return
		}
		s = rest[1:]
	}
}

// walkText calls fn with every text object of a JSON block tree.
func walkText(v any, fn func(kind, text string)) {
	switch x := v.(type) {
	case map[string]any:
		if txt, ok := x["text"].(string); ok {
			kind, _ := x["type"].(string)
			fn(kind, txt)
		}
		for _, c := range x {
			walkText(c, fn)
		}
	case []any:
		for _, c := range x {
			walkText(c, fn)
		}
	}
}

func hostileFinding(s string) models.Finding {
	f := finding("bulk_export", s, models.SeverityCritical, t0)
	f.Tenant, f.ActorRole, f.ActorVendor, f.Summary = s, s, s, "exported "+s
	f.Evidence.Metric, f.Evidence.BaselineSource, f.Evidence.Peers = s, s, s
	f.Evidence.TopSubjects, f.Evidence.TopStores, f.Evidence.Categories = []string{s}, []string{s, "crm"}, []string{s}
	f.Evidence.EventIDs, f.Evidence.Query = []string{s}, s
	f.Evidence.Notes = map[string]float64{s: 1}
	return f
}

// TestHostileTextRenderedEscaped renders alert groups, escalations and a
// digest whose every producer-controlled string is hostile, and checks that
// every mrkdwn text (and the notification text) is escaped, and that the
// hostile actor still shows, escaped.
func TestHostileTextRenderedEscaped(t *testing.T) {
	for _, s := range hostile {
		t.Run(s, func(t *testing.T) {
			f := hostileFinding(s)
			v := view(f, models.StatusAcknowledged, 2)
			v.UpdatedBy, v.MutedBy, v.EscalatedAt = "web:"+s, "inhibited:"+s, t0.Add(time.Minute)
			other := view(hostileFinding(s+"2"), models.StatusOpen, 1)
			other.Detector = s
			msgs := []alert.Message{
				{ID: "g-1", Kind: alert.KindGroup, Tenant: s, ActorID: s, Alerts: []alert.AlertView{v, other}, MaxListed: 10,
					EscalationChannel: "C0ESC", EscalateAfter: time.Minute, RemindedAt: t0.Add(time.Hour)},
				{ID: "e-1", Kind: alert.KindEscalation, Tenant: s, ActorID: s, Alerts: []alert.AlertView{v}, EscalationChannel: "C0ESC",
					EscalateAfter: time.Minute, MaxListed: 10},
				{ID: "d-1", Kind: alert.KindDigest, Digest: &alert.Digest{Title: s, Week: t0, URL: "https://chatwarden.example/reports/weekly",
					Sections: []alert.DigestSection{{Title: s, Lines: []string{s, "vendor " + s}}}}},
			}
			for _, m := range msgs {
				blocks, text := aslack.Render(&m)
				checkMrkdwn(t, string(m.Kind)+" notification text", text)
				var tree any
				if err := json.Unmarshal(mustJSON(t, blocks), &tree); err != nil {
					t.Fatal(err)
				}
				seen := false
				walkText(tree, func(kind, txt string) {
					switch kind {
					case "mrkdwn":
						checkMrkdwn(t, string(m.Kind)+" block", txt)
						seen = seen || strings.Contains(txt, aslack.Escape(strings.Join(strings.Fields(s), " ")))
					case "plain_text": // shown as typed by Slack, never parsed
					default:
						t.Errorf("text object of type %q: %q", kind, txt)
					}
				})
				if !seen {
					t.Errorf("%s: the hostile string does not show (escaped) anywhere", m.Kind)
				}
			}
		})
	}
}
