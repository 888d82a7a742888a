package dashboards

import (
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestAlertPageConversationCalls: a conversation_shape alert's page lists
// the conversation's calls in order, the improbable ones marked, and the
// JSON twin carries them.
func TestAlertPageConversationCalls(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	base := testNow.Add(-2 * time.Hour).Truncate(time.Minute)
	var calls []models.CallStep
	for i, c := range []string{"search_kb search vector_index", "get_profile search crm", "lookup_order read orders"} {
		p := strings.Fields(c)
		calls = append(calls, models.CallStep{TS: base.Add(time.Duration(i) * 30 * time.Second), Tool: p[0], Action: p[1], Store: p[2],
			Records: 1, Surprise: 1.4})
	}
	calls[1].Records, calls[1].Categories, calls[1].Surprise, calls[1].Improbable = 14, []string{"address", "email", "phone"}, 18.2, true
	fd := models.Finding{Detector: "conversation_shape", Tenant: "retail", ActorID: "assistant-3", ActorType: models.ActorBot,
		WindowStart: base, WindowEnd: base.Add(time.Minute), Score: 11.5, Probability: 3e-12, Severity: models.SeverityHigh,
		Summary:  "assistant-3: conversation conv-77 has a shape its bot's conversations have with probability 3.0e-12",
		Evidence: models.Evidence{Metric: "negative log-likelihood per call of the conversation (nats)", Observed: 7, Baseline: 1.7, Calls: calls}}
	if err := f.store.PutAlerts(t.Context(), []store.AlertRow{{Version: 1, Alert: models.Alert{ID: "al-conv", Fingerprint: "f-conv",
		Detector: fd.Detector, Tenant: fd.Tenant, ActorID: fd.ActorID, ActorType: models.ActorBot, Severity: fd.Severity,
		Status: models.StatusOpen, FirstSeen: base, LastSeen: base, Findings: 1, UpdatedAt: base, Latest: fd}}}); err != nil {
		t.Fatal(err)
	}
	c, _ := f.login(t, RoleSecOps)
	resp, body := get(t, c, f.ts.URL+"/alerts/al-conv")
	if resp.StatusCode != 200 {
		t.Fatalf("alert page: %d", resp.StatusCode)
	}
	table := body[strings.Index(body, "<h2>Conversation calls</h2>"):]
	table = table[:strings.Index(table, "</table>")]
	rows := strings.Split(table, "<tr")[2:] // after the header row
	if len(rows) != 3 {
		t.Fatalf("%d call rows, want 3:\n%s", len(rows), table)
	}
	for i, want := range []string{"search_kb", "get_profile", "lookup_order"} {
		if !strings.Contains(rows[i], want) {
			t.Errorf("row %d lacks %s: %s", i, want, rows[i])
		}
		if marked := strings.Contains(rows[i], `class="improbable"`) && strings.Contains(rows[i], "⚠ improbable"); marked != (i == 1) {
			t.Errorf("row %d marked improbable %v: %s", i, marked, rows[i])
		}
	}
	if !strings.Contains(rows[1], "address, email, phone") || !strings.Contains(rows[1], ">14<") || !strings.Contains(rows[1], "18.2") {
		t.Errorf("improbable row lacks its categories, records or surprise: %s", rows[1])
	}
	if _, body = get(t, c, f.ts.URL+"/api/alerts/al-conv"); !strings.Contains(body, `"improbable": true`) || !strings.Contains(body, `"calls": [`) {
		t.Errorf("JSON twin lacks the calls: %s", body)
	}
}
