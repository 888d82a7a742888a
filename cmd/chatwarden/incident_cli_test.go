package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestIncidentAssessCLI (issue 14 item 3): `chatwarden incident assess`
// prints the assessment in text, markdown and JSON, writes an
// incident_assess audit row, and treats another tenant's alert as missing
// for a limited -as user.
func TestIncidentAssessCLI(t *testing.T) {
	t.Setenv("CHATWARDEN_CLICKHOUSE_DATABASE", "")
	t.Setenv("CHATWARDEN_PSEUDONYM_KEY_FILE", "")
	ch := storetest.Config(t)
	s := storetest.Open(t, ch)
	at := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute)
	var evs []models.Event
	for i := range 4 {
		evs = append(evs, models.Event{EventID: fmt.Sprintf("r%d", i), TS: at.Add(time.Duration(i) * time.Minute), Tenant: "retail",
			Actor: models.Actor{ID: "agent-r", Type: models.ActorHuman}, Action: models.ActionShare, Store: "crm",
			Resource: models.Resource{Type: "customer_profile"}, SubjectID: fmt.Sprintf("c%d", i), Records: 10, Fields: []string{"email"},
			Result: models.ResultAllowed, Destination: "quickdrop.example"})
	}
	if err := s.InsertEvents(t.Context(), evs, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAlerts(t.Context(), []store.AlertRow{{Version: 1, Alert: models.Alert{ID: "al-r", Fingerprint: "f", Detector: "destination_new",
		Tenant: "retail", ActorID: "agent-r", Severity: models.SeverityHigh, Status: models.StatusOpen, FirstSeen: at.Add(4 * time.Minute),
		LastSeen: at.Add(4 * time.Minute), Findings: 1, UpdatedAt: at,
		Latest: models.Finding{WindowStart: at, WindowEnd: at.Add(4 * time.Minute), Summary: "agent-r sent 40 records to quickdrop.example"}}}}); err != nil {
		t.Fatal(err)
	}
	cli := limitedUserCLI(t, ch, strings.Repeat("ab", 32), "bob", "bank")
	for format, want := range map[string][]string{
		"text":     {"customers           4", "data left           yes", "destination retail/quickdrop.example: 40 records", "query impact:"},
		"markdown": {"| affected customers | 4 | [impact](#query-impact) |", "| retail | quickdrop.example | 40 | 4 |", "72 hours later"},
		"json":     {`"customers": 4`, `"data_left": true`, `"name": "withdrawn_consent"`},
	} {
		code, out := cli("incident", "assess", "-alert", "al-r", "-as", "ops", "-format", format)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", format, code, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s output lacks %q:\n%s", format, w, out)
			}
		}
	}
	if code, out := cli("incident", "assess", "-alert", "al-r", "-as", "bob"); code == 0 || !strings.Contains(out, `no alert "al-r"`) || strings.Contains(out, "quickdrop") {
		t.Fatalf("a bank user saw retail's incident: %d %s", code, out)
	}
	es, err := s.AuditLog(t.Context(), store.AuditFilter{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if e.Action == "incident_assess" && e.User == "ops" && e.Detail == "incident=al-r" {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d incident_assess audit rows by ops, want 3", n)
	}
}
