package dashboards

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// addCustomerEvents gives cust-1 of the fixture a chatbot conversation, a
// share to a named recipient by a vendor and an export to a pseudonymized
// one; and a share of cust-1's namesake in another tenant, which the report
// of retail must not show.
func addCustomerEvents(t *testing.T, f *fixture) {
	t.Helper()
	at := testNow.Add(-3 * time.Hour)
	sub := f.pseudo.Hash("cust-1")
	evs := []models.Event{
		{EventID: "cb1", TS: at, Tenant: "retail", Actor: models.Actor{ID: "assistant-77", Type: models.ActorBot, Role: "chat-assistant"},
			Action: models.ActionRead, Store: "orders", Resource: models.Resource{Type: "order"}, SubjectID: sub, Records: 1,
			Fields: []string{"order_history"}, Purpose: "support", Conversation: models.Conversation{ID: "conv-991", SubjectID: sub}, Result: models.ResultAllowed},
		{EventID: "cs1", TS: at.Add(time.Minute), Tenant: "retail", Actor: models.Actor{ID: "maria.rossi", Type: models.ActorVendor, Role: "vendor-agent", Vendor: "acme-bpo"},
			Action: models.ActionShare, Store: "payments", Resource: models.Resource{Type: "payment_method"}, SubjectID: sub, Records: 1,
			Fields: []string{"payment"}, Purpose: "billing", Result: models.ResultAllowed, Destination: "paycorp.example"},
		{EventID: "cs2", TS: at.Add(2 * time.Minute), Tenant: "retail", Actor: models.Actor{ID: "maria.rossi", Type: models.ActorVendor, Role: "vendor-agent", Vendor: "acme-bpo"},
			Action: models.ActionExport, Store: "payments", Resource: models.Resource{Type: "payment_method"}, SubjectID: sub, Records: 1,
			Fields: []string{"payment"}, Purpose: "billing", Result: models.ResultAllowed, Destination: f.pseudo.Hash("someone@example.com")},
		{EventID: "cs3", TS: at, Tenant: "wholesale", Actor: models.Actor{ID: "w-agent", Type: models.ActorHuman, Role: "sales"},
			Action: models.ActionShare, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: f.pseudo.Hash("cust-1"), Records: 1,
			Fields: []string{"email"}, Purpose: "marketing", Result: models.ResultAllowed, Destination: "wholesale-partner.example"},
	}
	if err := f.store.InsertEvents(t.Context(), evs, testNow); err != nil {
		t.Fatal(err)
	}
}

// customerForbidden are the fixture's names and ids that a customer report
// must never show.
func customerForbidden(f *fixture) []string {
	return []string{"agent-17", "assistant-77", "maria", "rossi", "conv-42", "conv-991", "cust-1", "retail", "wholesale", "crm",
		f.pseudo.Hash("cust-1"), f.pseudo.Hash("someone@example.com"), "p1", "order_history", "actor", "pseudonym"}
}

// TestCustomerReport: the data-subject page links to the customer report;
// the page, its PDF (text layer read back with pdftotext), its Markdown and
// the JSON API hold the accesses worded for the customer, staff by role,
// the recipients, and none of the fixture's names or internal ids; each
// generation is audited as customer_report with its format; the roles are
// the data-subject report's; another tenant's data is not in it.
func TestCustomerReport(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	addCustomerEvents(t, f)
	c, csrf := f.login(t, RoleResponder)
	resp, err := c.PostForm(f.ts.URL+"/investigate/subject", url.Values{"csrf": {csrf}, "subject": {"cust-1"}, "tenant": {"retail"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	_, body := get(t, c, f.ts.URL+loc)
	m := regexp.MustCompile(`id="customer-report" href="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no customer report link on the data-subject page:\n%s", body)
	}
	page := strings.ReplaceAll(m[1], "&amp;", "&")
	if !strings.Contains(page, "h=") || strings.Contains(page, "cust-1") {
		t.Fatalf("customer report link %q: want the look-up's handle", page)
	}
	resp, html := get(t, c, f.ts.URL+page)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", page, resp.StatusCode, html)
	}
	doc := html[strings.Index(html, `<article class="customer-report">`):strings.Index(html, "</article>")]
	pdfLink := strings.ReplaceAll(regexp.MustCompile(`id="customer-pdf" href="([^"]+)"`).FindStringSubmatch(html)[1], "&amp;", "&")
	resp, pdf := get(t, c, f.ts.URL+pdfLink)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pdf" || !strings.HasPrefix(pdf, "%PDF-") {
		t.Fatalf("GET %s: %d %s", pdfLink, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, md := get(t, c, f.ts.URL+strings.Replace(pdfLink, "format=pdf", "format=md", 1))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(md, "# Who has accessed your personal data") {
		t.Fatalf("markdown: %d\n%s", resp.StatusCode, md)
	}
	req, _ := http.NewRequest(http.MethodPost, f.ts.URL+"/api/subjects/customer-report", strings.NewReader(`{"subject":"cust-1","tenant":"retail"}`))
	req.Header.Set("X-CSRF-Token", csrf)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var api map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&api); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/subjects/customer-report: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	js, _ := json.Marshal(api)
	texts := map[string]string{"page": doc, "pdf": pdfText(t, []byte(pdf)), "markdown": md, "json": string(js)}
	for name, text := range texts {
		flat := strings.Join(strings.Fields(text), " ")
		for _, s := range customerForbidden(f) {
			if strings.Contains(strings.ToLower(flat), strings.ToLower(s)) {
				t.Errorf("%s holds %q:\n%s", name, s, text)
			}
		}
		for _, want := range []string{"Staff member, role: Support", "Chatbot (an automated assistant), role: Chat assistant",
			"Service provider Acme BPO, role: Vendor agent", "paycorp.example", "whose name we hold only in coded form",
			"payment details", "e-mail address", "order history", "Customer support (answering your questions and requests)"} {
			if !strings.Contains(flat, want) {
				t.Errorf("%s lacks %q:\n%s", name, want, text)
			}
		}
	}
	es, err := f.store.AuditLog(t.Context(), store.AuditFilter{From: testNow.Add(-time.Hour), To: testNow.Add(time.Hour), Action: "customer_report"})
	if err != nil {
		t.Fatal(err)
	}
	formats := map[string]bool{}
	for _, e := range es {
		formats[regexp.MustCompile(`format=(\w+)`).FindStringSubmatch(e.Detail)[1]] = true
		if e.User != "responder-user" || strings.Join(e.Tenants, ",") != "retail" || e.Rows == 0 || strings.Contains(e.Detail, "cust-1") {
			t.Errorf("audit row %+v", e)
		}
	}
	if len(es) != 4 || !formats["html"] || !formats["pdf"] || !formats["md"] || !formats["json"] {
		t.Errorf("audit rows %+v, want one per generation", es)
	}
	// A pseudonym in every tenant for a user of every tenant: one tenant
	// or none.
	admin, _ := f.login(t, RoleAdmin)
	if resp, body := get(t, admin, f.ts.URL+"/investigate/subject/customer?subject="+f.pseudo.Hash("cust-1")); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(body, "name the tenant") {
		t.Errorf("customer report over two tenants: %d", resp.StatusCode)
	}
	// The manager and secops roles may not produce it (as the data-subject
	// report).
	for _, r := range []Role{RoleManager, RoleSecOps} {
		cl, _ := f.login(t, r)
		if resp, _ := get(t, cl, f.ts.URL+"/investigate/subject/customer?tenant=retail&subject="+f.pseudo.Hash("cust-1")); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", r, resp.StatusCode)
		}
	}
}

// pdfText extracts a PDF's text layer with poppler's pdftotext (installed
// by scripts/deps.sh; missing, the test fails).
func pdfText(t testing.TB, pdf []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatal("pdftotext (poppler-utils) is required: run scripts/deps.sh")
	}
	p := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(p, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-enc", "UTF-8", p, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return string(out)
}
