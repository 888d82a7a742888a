package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

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
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "k")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	h, _ := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	cfg := filepath.Join(dir, "c.yaml")
	y := fmt.Sprintf("clickhouse:\n  addr: %s\n  database: %s\npseudonym:\n  key_file: %s\ndashboards:\n  users:\n    - name: bob\n      role: responder\n      password_hash: %q\n      tenants: [bank]\n",
		ch.Addr, ch.Database, keyFile, h)
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(t.Context(), append(args, "-config", cfg), &out, &errb)
		return code, out.String() + errb.String()
	}
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
