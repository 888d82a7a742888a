package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/store"
)

// TestCustomerReportCLI: `chatwarden dsar -customer` writes the
// customer-readable report as Markdown and PDF (text layer read back with
// pdftotext): staff by role, the recipient named, no account name, id or
// other tenant; each run is audited as customer_report; -format pdf without
// -customer is a usage error.
func TestCustomerReportCLI(t *testing.T) {
	t.Setenv("CHATWARDEN_CLICKHOUSE_DATABASE", "")
	t.Setenv("CHATWARDEN_PSEUDONYM_KEY_FILE", "")
	ch := storetest.Config(t)
	s := storetest.Open(t, ch)
	keyHex := strings.Repeat("ab", 32)
	p, err := pseudonym.New(pseudonym.Key{ID: '1', Secret: bytes.Repeat([]byte{0xab}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	ev := func(id, tenant, actor string, a models.Action, dest string) models.Event {
		return models.Event{EventID: id, TS: at, Tenant: tenant, Actor: models.Actor{ID: actor, Type: models.ActorHuman, Role: "billing"},
			Action: a, Store: "crm", Resource: models.Resource{Type: "customer_profile", ID: "prof-77"},
			SubjectID: p.HashTenant(tenant, "cust-9"), Records: 1, Fields: []string{"email", "address"}, Purpose: "billing",
			Result: models.ResultAllowed, Destination: dest}
	}
	if err := s.InsertEvents(t.Context(), []models.Event{ev("r1", "retail", "jane.doe", models.ActionRead, ""),
		ev("r2", "retail", "jane.doe", models.ActionShare, "printhouse.example"), ev("b1", "bank", "agent-b", models.ActionShare, "bank-partner.example")},
		time.Now()); err != nil {
		t.Fatal(err)
	}
	cli := limitedUserCLI(t, ch, keyHex, "rita", "retail")
	code, md := cli("dsar", "-subject", "cust-9", "-as", "rita", "-customer", "-format", "md")
	if code != 0 {
		t.Fatalf("dsar -customer: exit %d\n%s", code, md)
	}
	pdfPath := filepath.Join(t.TempDir(), "r.pdf")
	if code, out := cli("dsar", "-subject", "cust-9", "-as", "rita", "-customer", "-format", "pdf", "-out", pdfPath); code != 0 {
		t.Fatalf("dsar -customer -format pdf: exit %d\n%s", code, out)
	}
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Fatal("pdftotext (poppler-utils) is required: run scripts/deps.sh")
	}
	pdf, err := exec.Command("pdftotext", "-enc", "UTF-8", pdfPath, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	for name, text := range map[string]string{"markdown": md, "pdf": string(pdf)} {
		flat := strings.Join(strings.Fields(text), " ")
		for _, want := range []string{"Staff member, role: Billing", "printhouse.example", "e-mail address, postal address"} {
			if !strings.Contains(flat, want) {
				t.Errorf("%s lacks %q:\n%s", name, want, text)
			}
		}
		for _, not := range []string{"jane", "doe", "agent-b", "bank", "retail", "prof-77", "cust-9", p.HashTenant("retail", "cust-9")} {
			if strings.Contains(text, not) {
				t.Errorf("%s holds %q:\n%s", name, not, text)
			}
		}
	}
	es, err := s.AuditLog(t.Context(), store.AuditFilter{From: at.Add(-time.Hour), To: time.Now().Add(time.Hour), Action: "customer_report"})
	if err != nil || len(es) != 2 || es[0].Source != "cli" || es[0].User != "rita" || strings.Join(es[0].Tenants, ",") != "retail" {
		t.Fatalf("audit rows = %+v %v", es, err)
	}
	if code, out := cli("dsar", "-subject", "cust-9", "-as", "rita", "-format", "pdf"); code != 2 || !strings.Contains(out, "add -customer") {
		t.Errorf("-format pdf without -customer: exit %d\n%s", code, out)
	}
	_ = os.Remove(pdfPath)
}
