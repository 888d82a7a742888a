package dashboards

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/store"
)

// TestIncidentAssessment (issue 14 item 3): /api/incidents/{id} and
// /incidents/{id} assess the fixture's critical alert (agent-17's 40
// payment reads), count from the alert's first_seen to the 72-hour
// deadline, link every figure to its query, are audited as
// incident_assess, and treat another tenant's alert as missing.
func TestIncidentAssessment(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	c, _ := f.login(t, RoleResponder)
	resp, body := get(t, c, f.ts.URL+"/api/incidents/al-crit")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("api: %d %s", resp.StatusCode, body)
	}
	var as struct {
		ID               string    `json:"id"`
		Customers        uint64    `json:"customers"`
		Records          uint64    `json:"records"`
		DataLeft         bool      `json:"data_left"`
		DetectedAt       time.Time `json:"detected_at"`
		NotifyBy         time.Time `json:"notify_by"`
		FigureQuery      map[string]string
		Facts            store.IncidentFacts `json:"facts"`
		Draft            string              `json:"draft_notification"`
		WithdrawnConsent uint64              `json:"withdrawn_consent"`
	}
	if err := json.Unmarshal([]byte(body), &as); err != nil {
		t.Fatal(err)
	}
	if as.ID != "al-crit" || as.Customers != 40 || as.Records != 40 || as.DataLeft || as.NotifyBy.Sub(as.DetectedAt) != 72*time.Hour ||
		len(as.Facts.Queries) != 4 || !strings.Contains(as.Draft, "Approximately 40 customer(s)") {
		t.Fatalf("assessment %+v", as)
	}
	resp, page := get(t, c, f.ts.URL+"/incidents/al-crit+al-low")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("page: %d", resp.StatusCode)
	}
	for _, want := range []string{"notify the supervisory authority by", `href="#query-impact"`, `id="query-impact"`,
		`href="#query-withdrawn_consent"`, `id="query-destinations"`, "acme-ana", "Draft notification"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for u, code := range map[string]int{"/api/incidents/nope": 404, "/api/incidents/al-crit++al-low": 400, "/incidents/nope": 404} {
		if resp, _ := get(t, c, f.ts.URL+u); resp.StatusCode != code {
			t.Errorf("%s: %d, want %d", u, resp.StatusCode, code)
		}
	}
	es, err := f.store.AuditLog(t.Context(), store.AuditFilter{From: testNow.Add(-time.Hour), To: testNow.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if e.Action == "incident_assess" && e.User == "responder-user" && strings.Contains(e.Detail, "incident=al-crit") {
			n++
			if len(e.Tenants) != 1 || e.Tenants[0] != "retail" {
				t.Errorf("audit row's tenants %v", e.Tenants)
			}
		}
	}
	if n != 2 {
		t.Fatalf("%d incident_assess audit rows, want 2", n)
	}
	// A user of another tenant: the alert does not exist for them.
	g := newFixture(t, Config{Users: []User{{Name: "bank-resp", Role: RoleResponder, PasswordHash: hash(t, "pw-bank"), Tenants: []string{"bank"}}}})
	bc := g.client(t)
	if r, err := bc.PostForm(g.ts.URL+"/login", map[string][]string{"user": {"bank-resp"}, "password": {"pw-bank"}}); err != nil {
		t.Fatal(err)
	} else {
		r.Body.Close()
	}
	if resp, body := get(t, bc, g.ts.URL+"/api/incidents/al-crit"); resp.StatusCode != http.StatusNotFound || strings.Contains(body, "agent-17") {
		t.Fatalf("another tenant's alert: %d %s", resp.StatusCode, body)
	}
}
