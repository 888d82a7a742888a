package slack_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/chatwarden/chatwarden/alert"
	aslack "github.com/chatwarden/chatwarden/alert/slack"
	"github.com/chatwarden/chatwarden/models"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func view(f models.Finding, status models.AlertStatus, findings int) alert.AlertView {
	return alert.AlertView{Alert: models.Alert{ID: "fp-" + f.Detector, Fingerprint: f.Fingerprint(), Detector: f.Detector,
		Tenant: f.Tenant, ActorID: f.ActorID, ActorType: f.ActorType, Severity: f.Severity, Status: status,
		FirstSeen: f.DetectedAt, LastSeen: f.DetectedAt, Findings: findings, Latest: f, UpdatedAt: f.DetectedAt,
		UpdatedBy: "chatwarden"}}
}

func TestRenderGolden(t *testing.T) {
	spike := finding("volume_spike", "agent-17", models.SeverityHigh, t0)
	spike.Evidence.Peers, spike.Evidence.PeerCount = "role:support", 42
	spike.Summary = "Read 5,000 customer profiles in a minute, 125× the usual"
	hostile := finding("bulk_export", "<@U0ADMIN> & <!channel>", models.SeverityCritical, t0)
	hostile.Tenant = "brand<b>"
	hostile.Summary = "Exported <https://evil.example|click here> & more\nsecond line"
	hostile.Evidence.Metric = "records <per> export"
	hostile.Evidence.Categories = []string{"email", "<script>"}
	acked := view(spike, models.StatusAcknowledged, 3)
	acked.UpdatedBy, acked.AckedAt = "slack:U42", t0.Add(2*time.Minute)
	escalated := view(eventRule("bot-3", t0), models.StatusEscalated, 1)
	escalated.EscalatedAt = t0.Add(15 * time.Minute)
	pii := finding("pii_in_payload", "crm", models.SeverityMedium, t0)
	pii.Summary = "producer crm sent personal data in 3 event(s) (card in resource.id, email in fields[1]); stored pseudonymized"
	pii.Evidence.PII = []models.PIIHit{{Field: "resource.id", Kind: models.PIICard, Masked: "order-****-****-****-****"},
		{Field: "fields[1]", Kind: models.PIIEmail, Masked: "****@*******.***"}}
	share := finding("destination_new", "agent-9", models.SeverityHigh, t0)
	share.Evidence.Destinations = []string{"quickdrop-417.example"}
	shape := finding("conversation_shape", "assistant-7", models.SeverityHigh, t0)
	shape.Summary = "assistant-7: conversation conv-9 has a shape its bot's conversations have with probability 3.1e-12"
	for i, c := range []string{"search_kb search vector_index", "lookup_order read orders", "get_profile read crm", "lookup_order read orders",
		"get_profile search crm", "<@U0ADMIN> search crm", "create_ticket update tickets"} {
		f := strings.Fields(c)
		st := models.CallStep{TS: t0.Add(time.Duration(i) * 20 * time.Second), Tool: f[0], Action: f[1], Store: f[2], Records: 1, Surprise: 1.5}
		if f[1] == "search" && f[2] == "crm" {
			st.Records, st.Categories, st.Surprise, st.Improbable = 12, []string{"address", "email"}, 17.3, true
		}
		shape.Evidence.Calls = append(shape.Evidence.Calls, st)
	}
	var storm []alert.AlertView
	for i, det := range []string{"volume_spike", "enumeration", "off_hours", "rare_store", "peer_deviation", "denied_burst"} {
		v := view(finding(det, "agent-5", models.Severity(1+i%4), t0), models.StatusOpen, 10+i)
		if det == "off_hours" {
			v.MutedBy = "inhibited:fp-peer_deviation"
			v.Status = models.StatusSilenced
		}
		storm = append(storm, v)
	}
	tests := []struct {
		name string
		msg  alert.Message
	}{
		{"single_high", alert.Message{ID: "g1-abc", Kind: alert.KindGroup, Tenant: "acme", ActorID: "agent-17",
			Alerts: []alert.AlertView{view(spike, models.StatusOpen, 1)}, MaxListed: 10,
			InvestigateURL: "https://chatwarden.example/investigate?actor=agent-17&tenant=acme"}},
		{"escaping", alert.Message{ID: "g2-abc", Kind: alert.KindGroup, Tenant: hostile.Tenant, ActorID: hostile.ActorID,
			Alerts: []alert.AlertView{view(hostile, models.StatusOpen, 1)}, MaxListed: 10}},
		{"acknowledged", alert.Message{ID: "g3-abc", Kind: alert.KindGroup, Tenant: "acme", ActorID: "agent-17",
			Alerts: []alert.AlertView{acked}, MaxListed: 10}},
		{"escalated_original", alert.Message{ID: "g4-abc", Kind: alert.KindGroup, Tenant: "acme", ActorID: "bot-3",
			Alerts: []alert.AlertView{escalated}, EscalationChannel: "C0ESCALATE", EscalateAfter: 15 * time.Minute, MaxListed: 10}},
		{"escalation", alert.Message{ID: "e-x", Kind: alert.KindEscalation, Tenant: "acme", ActorID: "bot-3",
			Alerts: []alert.AlertView{escalated}, EscalationChannel: "C0ESCALATE", EscalateAfter: 15 * time.Minute, MaxListed: 10}},
		{"storm_group", alert.Message{ID: "g5-abc", Kind: alert.KindGroup, Tenant: "acme", ActorID: "agent-5",
			Alerts: storm, MaxListed: 4, RemindedAt: t0.Add(4 * time.Hour)}},
		{"closed", alert.Message{ID: "g6-abc", Kind: alert.KindGroup, Tenant: "acme", ActorID: "agent-17",
			Alerts: []alert.AlertView{view(spike, models.StatusResolved, 7)}, Closed: true, MaxListed: 10}},
		{"payload_pii", alert.Message{ID: "g7-abc", Kind: alert.KindGroup, Tenant: "acme", ActorID: "crm",
			Alerts: []alert.AlertView{view(pii, models.StatusOpen, 1)}, MaxListed: 10}},
		{"destination", alert.Message{ID: "g8-abc", Kind: alert.KindGroup, Tenant: "acme", ActorID: "agent-9",
			Alerts: []alert.AlertView{view(share, models.StatusOpen, 1)}, MaxListed: 10}},
		{"conversation_shape", alert.Message{ID: "g9-abc", Kind: alert.KindGroup, Tenant: "acme", ActorID: "assistant-7",
			Alerts: []alert.AlertView{view(shape, models.StatusOpen, 1)}, MaxListed: 10}},
		{"digest", alert.Message{ID: "digest-2025-01-13", Kind: alert.KindDigest, Digest: &alert.Digest{
			Title: "Weekly breach-risk summary", Week: time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC), URL: "https://chatwarden.example/reports/weekly",
			Sections: []alert.DigestSection{{Title: "Top risks", Lines: []string{"agent-17: 0.93 (volume_spike, enumeration)", "vendor <acme-bpo> & co: 0.71"}},
				{Title: "Time to acknowledge", Lines: []string{"median 6m, p95 41m"}}}}}},
	}
	// Evidence a message must show (masked values only, for payload PII).
	shows := map[string][]string{
		"payload_pii": {"card in `resource.id`: `order-****-****-****-****`", "email in `fields[1]`: `****@*******.***`"},
		"destination": {"*Destinations*\\nquickdrop-417.example"},
		"conversation_shape": {"*Conversation calls* (7, 2 improbable :warning:)", "… 3 ordinary calls",
			"get_profile search crm [address,email] x12 · 17.3 nats :warning: *improbable*", "&lt;@U0ADMIN&gt; search crm"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			blocks, text := aslack.Render(&tc.msg)
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false) // readable golden files: show &amp; as Slack receives it
			enc.SetIndent("", "  ")
			if err := enc.Encode(struct {
				Text   string        `json:"text"`
				Blocks []slack.Block `json:"blocks"`
			}{text, blocks}); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			for _, want := range shows[tc.name] {
				if !bytes.Contains(got, []byte(want)) {
					t.Errorf("the message does not show %q", want)
				}
			}
			path := filepath.Join("testdata", tc.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("rendering differs from %s (run go test -update after checking):\n%s", path, got)
			}
			// Every rendering must round-trip through slack-go's block decoder.
			var back slack.Blocks
			if err := json.Unmarshal(mustJSON(t, blocks), &back); err != nil || len(back.BlockSet) != len(blocks) {
				t.Errorf("blocks do not decode back: %v", err)
			}
			if back.BlockSet[0].ID() != aslack.BlockIDPrefix+tc.msg.ID {
				t.Errorf("first block id %q does not carry the message id", back.BlockSet[0].ID())
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEscapeNeutralizesMarkup(t *testing.T) {
	f := finding("bulk_export", "<!here>", models.SeverityCritical, t0)
	f.Summary = "<@U1> & <https://x.example|y>"
	blocks, text := aslack.Render(&alert.Message{ID: "g", Kind: alert.KindGroup, Alerts: []alert.AlertView{view(f, models.StatusOpen, 1)}})
	raw := string(mustJSON(t, blocks)) + text
	for _, bad := range []string{"<!here>", "<@U1>", "<https://x.example"} {
		if strings.Contains(raw, bad) {
			t.Errorf("rendering contains unescaped %q", bad)
		}
	}
	if got := aslack.Escape("a & <b> c"); got != "a &amp; &lt;b&gt; c" {
		t.Errorf("Escape = %q", got)
	}
}
