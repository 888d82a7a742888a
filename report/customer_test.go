package report

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/store"
)

// customerFixture is a data-subject report whose internal ids and names
// must never reach the customer: staff accounts named after people, event
// and conversation ids, a pseudonymized recipient, store names.
func customerFixture() CustomerInput {
	d := func(day, h int) time.Time { return time.Date(2026, 11, day, h, 0, 0, 0, time.UTC) }
	return CustomerInput{
		From: d(1, 0), To: time.Date(2026, 12, 5, 10, 30, 0, 0, time.UTC), Issued: time.Date(2026, 12, 5, 10, 30, 0, 0, time.UTC),
		Accesses: []store.SubjectAccess{
			{Tenant: "retail", ActorID: "alice.smith@corp.example", ActorType: "human", ActorRole: "support-eu", Purpose: "support",
				Stores: []string{"crm-prod-7"}, Actions: []string{"read"}, Categories: []string{"email", "phone"}, Events: 3, First: d(3, 9), Last: d(4, 10)},
			{Tenant: "retail", ActorID: "bob.jones", ActorType: "human", ActorRole: "support-eu", Purpose: "support",
				Stores: []string{"crm-prod-7"}, Actions: []string{"read", "search"}, Categories: []string{"address"}, Events: 2, First: d(2, 9), Last: d(2, 9)},
			{Tenant: "retail", ActorID: "assistant-0042", ActorType: "bot", ActorRole: "chat-assistant", Purpose: "support",
				ConversationID: "conv-8812", Stores: []string{"orders"}, Actions: []string{"read"}, Categories: []string{"order_history"},
				Events: 4, Denied: 1, First: d(20, 14), Last: d(20, 15)},
			{Tenant: "retail", ActorID: "acme-bpo-ph-17", ActorType: "vendor", ActorRole: "vendor-agent", ActorVendor: "acme-bpo",
				Purpose: "billing", Stores: []string{"payments"}, Actions: []string{"read", "share", "export"},
				Categories: []string{"payment", "government_id"}, Events: 5, Outbound: 4, First: d(10, 8), Last: d(11, 8)},
		},
		Shares: []store.SubjectShare{
			{Tenant: "retail", Destination: "paycorp.example", Action: "share", ActorType: "vendor", ActorRole: "vendor-agent",
				ActorVendor: "acme-bpo", Purpose: "billing", Categories: []string{"payment"}, Events: 2, First: d(10, 8), Last: d(11, 8)},
			{Tenant: "retail", Destination: "p1zq9c0ffee", Action: "export", ActorType: "vendor", ActorRole: "vendor-agent",
				ActorVendor: "acme-bpo", Purpose: "billing", Categories: []string{"government_id"}, Events: 1, First: d(10, 9), Last: d(10, 9)},
		},
		Withheld: func(s string) bool { return strings.HasPrefix(s, "p1") },
	}
}

// forbidden are the strings of customerFixture that must appear in no
// rendering: people's account names, actor, conversation and tenant ids,
// the pseudonym, store names, raw category and purpose codes, detector
// words.
var forbidden = []string{"alice", "smith", "bob", "jones", "assistant-0042", "acme-bpo-ph", "conv-8812", "p1zq9c0ffee", "retail",
	"crm-prod-7", "government_id", "order_history", "actor", "pseudonym", "subject", "tenant", "detector", "event", "denied"}

func renderAll(t *testing.T, rep *CustomerReport) map[Format]string {
	t.Helper()
	r, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	out := map[Format]string{}
	for _, f := range []Format{FormatHTML, FormatMarkdown, FormatJSON} {
		var b bytes.Buffer
		if err := r.RenderCustomer(&b, rep, f); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = b.String()
	}
	var b bytes.Buffer
	if err := r.RenderCustomer(&b, rep, FormatPDF); err != nil {
		t.Fatalf("pdf: %v", err)
	}
	out[FormatPDF] = PDFText(t, b.Bytes())
	return out
}

// PDFText extracts the text layer of a PDF with poppler's pdftotext
// (installed by scripts/deps.sh; a missing tool fails the test).
func PDFText(t *testing.T, pdf []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatal("pdftotext (poppler-utils) is required: run scripts/deps.sh")
	}
	p := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(p, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-layout", "-enc", "UTF-8", p, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return string(out)
}

// TestCustomerReportRedaction: in every format (HTML, Markdown, JSON and the
// PDF's text layer) no account name, internal id, pseudonym, store name or
// raw code appears; staff appear by role, the vendor by company, the
// pseudonymized recipient as withheld.
func TestCustomerReportRedaction(t *testing.T) {
	rep := Customer(customerFixture())
	for f, text := range renderAll(t, rep) {
		low := strings.ToLower(text)
		for _, s := range forbidden {
			if strings.Contains(low, s) {
				t.Errorf("%s holds %q:\n%s", f, s, text)
			}
		}
		flat := strings.Join(strings.Fields(text), " ")
		for _, want := range []string{"Staff member, role: Support EU", "Service provider Acme BPO, role: Vendor agent",
			"Chatbot (an automated assistant), role: Chat assistant", "paycorp.example", "whose name we hold only in coded form",
			"government-issued ID number", "payment details", "1 November 2026 to 5 December 2026"} {
			if !strings.Contains(flat, want) {
				t.Errorf("%s lacks %q:\n%s", f, want, text)
			}
		}
	}
}

// TestCustomerReportWording: the lines are grouped by kind of accessor and
// purpose (two support staff accounts are one line, "2 different
// accounts"), the sums and dates are right and the summary says it in
// plain sentences.
func TestCustomerReportWording(t *testing.T) {
	rep := Customer(customerFixture())
	if len(rep.Accesses) != 3 {
		t.Fatalf("accesses = %+v", rep.Accesses)
	}
	bot, vendor, staff := rep.Accesses[0], rep.Accesses[1], rep.Accesses[2]
	if staff.People != 2 || staff.Times != 5 || staff.When != "from 2 November 2026 to 4 November 2026" ||
		strings.Join(staff.Data, ", ") != "e-mail address, phone number, postal address" ||
		strings.Join(staff.Activities, ", ") != "searched for, viewed" || staff.Purpose != "Customer support (answering your questions and requests)" {
		t.Errorf("staff line = %+v", staff)
	}
	if !bot.InChat || bot.Refused != 1 || bot.When != "on 20 November 2026" || bot.Kind != "chatbot" {
		t.Errorf("bot line = %+v", bot)
	}
	if vendor.Purpose != "Billing and payments" || vendor.Kind != "service provider" {
		t.Errorf("vendor line = %+v", vendor)
	}
	// 4 shares and exports not refused, 3 with a named recipient.
	if rep.Unrecorded != 1 || len(rep.Shares) != 2 || rep.Shares[0].How != "Shared with" || rep.Shares[1].How != "Exported to" {
		t.Errorf("shares = %+v, unrecorded %d", rep.Shares, rep.Unrecorded)
	}
	sum := strings.Join(rep.Summary, " ")
	for _, want := range []string{
		"Between 1 November 2026 and 5 December 2026, your personal data was accessed 14 times.",
		"Once, someone tried to access your data and was refused by our access controls.",
		"Your data was shared with or sent to: paycorp.example;",
		"Your data was also exported or shared once without the recipient being recorded.",
	} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q: %s", want, sum)
		}
	}
	in := customerFixture()
	in.Accesses[0].ActorVendor = "globex"
	if who := Customer(in).Accesses[2].Who; who != "Service provider Globex: staff member, role: Support EU" {
		t.Errorf("a vendor's staff member is %q", who)
	}
	for _, tc := range []struct{ typ, role, want string }{
		{"admin", "admin", "System administrator"},
		{"human", "", "Staff member"},
		{"service", "etl", "Automated system, role: ETL"},
		{"robot", "x_y", "Other account, role: X y"},
	} {
		if _, who := accessorWords(tc.typ, tc.role, ""); who != tc.want {
			t.Errorf("accessorWords(%q, %q) = %q, want %q", tc.typ, tc.role, who, tc.want)
		}
	}
	empty := Customer(CustomerInput{From: customerFixture().From, To: customerFixture().To, Issued: customerFixture().Issued})
	if len(empty.Summary) != 1 || empty.Summary[0] != "We found no access to your personal data between 1 November 2026 and 5 December 2026." {
		t.Errorf("empty summary = %q", empty.Summary)
	}
	quiet := customerFixture()
	quiet.Shares, quiet.Accesses = nil, quiet.Accesses[:1]
	if s := strings.Join(Customer(quiet).Summary, " "); !strings.Contains(s, "not shared with or sent to any other organisation") {
		t.Errorf("summary without shares = %s", s)
	}
}

// TestCustomerReportMarkdownEscapes: a "|" in a producer's role cannot
// split a Markdown table cell.
func TestCustomerReportMarkdownEscapes(t *testing.T) {
	in := customerFixture()
	in.Accesses[0].ActorRole = "support | <b>x</b>"
	out := renderAll(t, Customer(in))[FormatMarkdown]
	if !strings.Contains(out, `Support \| \<b\>x\</b\>`) {
		t.Errorf("role not escaped:\n%s", out)
	}
	if strings.Contains(renderAll(t, Customer(in))[FormatHTML], "<b>x</b>") {
		t.Error("HTML holds the role's markup unescaped")
	}
}

// TestCustomerPDFDeterministic: the same report gives the same PDF bytes
// (its dates are the report's, not the clock's), and the JSON's fields are
// the documented ones.
func TestCustomerPDFDeterministic(t *testing.T) {
	rep := Customer(customerFixture())
	var a, b bytes.Buffer
	if err := CustomerPDF(&a, rep); err != nil {
		t.Fatal(err)
	}
	if err := CustomerPDF(&b, rep); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) || !bytes.HasPrefix(a.Bytes(), []byte("%PDF-")) {
		t.Fatalf("PDF is not deterministic (%d vs %d bytes)", a.Len(), b.Len())
	}
	var m map[string]any
	js, _ := json.Marshal(rep)
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^[a-z_]+$`)
	for k := range m {
		if !re.MatchString(k) {
			t.Errorf("JSON key %q", k)
		}
	}
}

// TestCustomerReportGolden: the customer report of customerFixture as
// HTML, Markdown and JSON, byte for byte the reviewed files under
// testdata/ (go test -run TestCustomerReportGolden -update ./report/
// rewrites them).
func TestCustomerReportGolden(t *testing.T) {
	rep := Customer(customerFixture())
	r, err := NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{FormatHTML, FormatMarkdown, FormatJSON} {
		var b bytes.Buffer
		if err := r.RenderCustomer(&b, rep, f); err != nil {
			t.Fatal(err)
		}
		golden(t, filepath.Join("testdata", "customer."+string(f)), b.Bytes())
	}
}
