package models

import (
	"encoding/json"
	"strings"
	"testing"
)

// PIICase is a value of one PIIKind placed in one free field of an event.
type PIICase struct {
	Name, Field, Value string
	Kind               PIIKind
}

// PIICases has every kind, in several free fields and spellings.
var PIICases = []PIICase{
	{"email", "resource.id", "jane.doe@example.com", PIIEmail},
	{"email in a sentence", "purpose", "reply to jane+x@mail.example.co.uk.", PIIEmail},
	{"email as resource type", "resource.type", "a@b.io", PIIEmail},
	{"e164 phone", "conversation.id", "+49 30 1234567", PIIPhone},
	{"e164 phone compact", "tool", "call_+14155550123", PIIPhone},
	{"us phone dashes", "resource.id", "212-555-0100", PIIPhone},
	{"us phone parens", "store", "(212) 555-0100", PIIPhone},
	{"visa", "resource.id", "4111111111111111", PIICard},
	{"visa in an id", "resource.id", "ord-4111111111111111", PIICard},
	{"visa spaced", "client.user_agent", "pay 4111 1111 1111 1111 now", PIICard},
	{"amex dashed", "purpose", "3782-822463-10005", PIICard},
	{"mastercard 2-series", "event_id", "2223003122003222", PIICard},
	{"ssn", "actor.role", "123-45-6789", PIISSN},
	{"iban", "actor.vendor", "DE89370400440532013000", PIIIBAN},
	{"iban grouped", "resource.id", "GB82 WEST 1234 5698 7654 32", PIIIBAN},
	{"card in tenant", "tenant", "4111111111111111", PIICard},
}

// PIINearMisses look a little like personal data and are not.
var PIINearMisses = []struct{ Name, Value string }{
	{"a@b without a dot", "a@b"},
	{"user@localhost", "user@localhost"},
	{"slack mention", "<@U0ADMIN>"},
	{"at with numeric tld", "x@1.2"},
	{"16-digit order id failing luhn", "4111111111111112"},
	{"16-digit id with first digit 9", "9111111111111117"},
	{"luhn-valid 12 digits", "411111111113"},
	{"20 digits", "41111111111111111113"},
	{"card glued to letters", "ord4111111111111111"},
	{"bare 10 digits", "2125550100"},
	{"bare 9 digits", "123456789"},
	{"ssn never issued area", "666-45-6789"},
	{"ssn group 00", "123-00-6789"},
	{"date", "2026-12-05T06:50:00Z"},
	{"ip", "192.168.100.200"},
	{"version", "Chrome/120.0.6099.109"},
	{"iban bad check digits", "DE88370400440532013000"},
	{"uuid", "9f1c2d3e-4b5a-6789-abcd-ef0123456789"},
	{"order id", "ord-79130954"},
	{"phone without plus or separators", "phone 4155550123"},
	{"plus too few digits", "+1234567"},
}

func TestPIIIn(t *testing.T) {
	for _, c := range PIICases {
		k, ok := PIIIn(c.Value)
		if !ok || k != c.Kind {
			t.Errorf("%s: PIIIn(%q) = %q, %v; want %q", c.Name, c.Value, k, ok, c.Kind)
		}
	}
	for _, c := range PIINearMisses {
		if k, ok := PIIIn(c.Value); ok {
			t.Errorf("%s: PIIIn(%q) = %q; want no PII", c.Name, c.Value, k)
		}
	}
	for _, inj := range Injections {
		if k, ok := PIIIn(inj); ok {
			t.Errorf("injection %q taken for %s", inj, k)
		}
	}
}

func TestMaskPII(t *testing.T) {
	for _, c := range PIICases {
		m := MaskPII(c.Value)
		if len(m) != len(c.Value) {
			t.Errorf("%s: mask changed the length: %q", c.Name, m)
		}
		if _, ok := PIIIn(m); ok {
			t.Errorf("%s: masked %q still looks like PII", c.Name, m)
		}
	}
	if got := MaskPII("ord-4111111111111111 for jane@example.com"); got != "ord-**************** for ****@*******.***" {
		t.Errorf("MaskPII = %q", got)
	}
	if got := MaskPII("ord-79130954"); got != "ord-79130954" {
		t.Errorf("a clean value changed: %q", got)
	}
}

func TestMaskPIIJSON(t *testing.T) {
	msg := `{"event_id":"e1","resource":{"type":"order","id":"4111111111111111"},"note":"mail jane\u0040example.com","subject_id":"jane@example.com","fields":["email"]}`
	out := MaskPIIJSON([]byte(msg))
	for _, secret := range []string{"4111111111111111", "jane", "example.com"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("masked copy still holds %q: %s", secret, out)
		}
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("masked copy is not JSON: %v\n%s", err, out)
	}
	if v["event_id"] != "e1" || v["resource"].(map[string]any)["type"] != "order" {
		t.Errorf("clean values changed: %s", out)
	}
	clean := []byte(good)
	if got := MaskPIIJSON(clean); string(got) != string(clean) {
		t.Errorf("a clean message changed:\n%s\n%s", clean, got)
	}
}

func TestPseudonymizePII(t *testing.T) {
	e := Event{EventID: "e1", Tenant: "t", Resource: Resource{Type: "order", ID: "4111111111111111"},
		Fields: []string{"email", "jane@example.com"}, SubjectID: "jane@example.com", Tool: "lookup"}
	hits := PseudonymizePII(&e, func(_, s string) string { return "h:" + s[:1] })
	if len(hits) != 2 || hits[0] != (PIIHit{"resource.id", PIICard, "****************"}) ||
		hits[1] != (PIIHit{"fields[1]", PIIEmail, "****@*******.***"}) {
		t.Fatalf("hits = %+v", hits)
	}
	if e.Resource.ID != "h:4" || e.Fields[1] != "h:j" || e.Fields[0] != "email" || e.SubjectID != "jane@example.com" || e.Tool != "lookup" {
		t.Fatalf("event = %+v", e)
	}
}

// TestDecodeAllowPII: with AllowPII the decoder keeps the values as given.
func TestDecodeAllowPII(t *testing.T) {
	m := encode(t, with(baseEvent(), "resource.id", "4111111111111111"))
	if _, err := DecodeAccess(m, now, Limits{}); ReasonOf(err) != ReasonPIIInPayload {
		t.Fatalf("default: %v", err)
	}
	e, err := DecodeAccess(m, now, Limits{AllowPII: true})
	if err != nil || e.Resource.ID != "4111111111111111" {
		t.Fatalf("AllowPII: %v %+v", err, e)
	}
}

// BenchmarkFindPII is the payload PII check alone on the clean event of
// BenchmarkDecodeAccess (the cost it adds to every decode).
func BenchmarkFindPII(b *testing.B) {
	msg := []byte(`{"event_id":"sim1-20261019T0000-0","ts":"2026-11-28T00:00:02.941Z","tenant":"brand-b","actor":{"id":"assistant-0098","type":"bot","role":"chat-assistant"},"action":"read","store":"orders","resource":{"type":"order","id":"ord-79130954"},"subject_id":"cust-020153","records":2,"bytes":5484,"fields":["order_history"],"purpose":"support","conversation":{"id":"conv-12","subject_id":"cust-020153"},"tool":"lookup_order","result":"allowed","client":{"ip":"10.20.1.193","country":"US","user_agent":"assistant-runtime/2.7 (tool-calls)"}}`)
	e, err := DecodeAccess(msg, now, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := FindPII(&e); ok {
			b.Fatal("clean event flagged")
		}
	}
}
