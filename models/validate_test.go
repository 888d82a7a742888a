package models

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

const good = `{"event_id":"e1","ts":"2026-11-28T11:59:00Z","actor":{"id":"bot-1","type":"bot"},"action":"read","store":"crm","resource":{"type":"customer_profile","id":"r1"},"subject_id":"c1","fields":["email"],"unknown":{"x":1}}`

func TestDecodeAccessOK(t *testing.T) {
	e, err := DecodeAccess([]byte(good), now, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if e.Tenant != DefaultTenant || e.Records != 1 || e.Result != ResultAllowed || e.Actor.Type != ActorBot {
		t.Fatalf("defaults not applied: %+v", e)
	}
}

func TestDecodeAccessReasons(t *testing.T) {
	tests := []struct {
		name  string
		msg   string
		code  Reason
		field string
	}{
		{"not json", `hello`, ReasonBadJSON, ""},
		{"array", `[1,2]`, ReasonBadJSON, ""},
		{"truncated", good[:40], ReasonBadJSON, ""},
		{"invalid utf8", strings.Replace(good, "crm", "cr\xff", 1), ReasonBadUTF8, ""},
		{"nul escape", strings.Replace(good, "crm", `cr\u0000`, 1), ReasonBadUTF8, ""},
		{"missing event_id", strings.Replace(good, `"event_id":"e1",`, "", 1), ReasonMissingField, "event_id"},
		{"missing actor.id", strings.Replace(good, `"id":"bot-1",`, "", 1), ReasonMissingField, "actor.id"},
		{"missing resource", strings.Replace(good, `"resource":{"type":"customer_profile","id":"r1"},`, "", 1), ReasonMissingField, "resource"},
		{"event_id number", strings.Replace(good, `"e1"`, `17`, 1), ReasonBadType, "event_id"},
		{"actor string", strings.Replace(good, `{"id":"bot-1","type":"bot"}`, `"bot-1"`, 1), ReasonBadType, "actor"},
		{"fields not array", strings.Replace(good, `["email"]`, `"email"`, 1), ReasonBadType, "fields"},
		{"records float", strings.Replace(good, `"subject_id"`, `"records":1.5,"subject_id"`, 1), ReasonBadValue, "records"},
		{"records negative", strings.Replace(good, `"subject_id"`, `"records":-3,"subject_id"`, 1), ReasonBadValue, "records"},
		{"bad actor type", strings.Replace(good, `"bot"}`, `"robot"}`, 1), ReasonBadEnum, "actor.type"},
		{"bad action", strings.Replace(good, `"read"`, `"steal"`, 1), ReasonBadEnum, "action"},
		{"bad result", strings.Replace(good, `"subject_id"`, `"result":"ok","subject_id"`, 1), ReasonBadEnum, "result"},
		{"bad ts", strings.Replace(good, `2026-11-28T11:59:00Z`, `yesterday`, 1), ReasonBadValue, "ts"},
		{"future ts", strings.Replace(good, `2026-11-28T11:59:00Z`, `2026-12-01T00:00:00Z`, 1), ReasonTSFuture, "ts"},
		{"old ts", strings.Replace(good, `2026-11-28T11:59:00Z`, `2025-01-01T00:00:00Z`, 1), ReasonTSTooOld, "ts"},
		{"too large", strings.Replace(good, `"crm"`, `"`+strings.Repeat("x", 70<<10)+`"`, 1), ReasonTooLarge, ""},
		{"long event id", strings.Replace(good, `"e1"`, `"`+strings.Repeat("e", 200)+`"`, 1), ReasonTooLong, "event_id"},
		{"deep nesting", strings.Replace(good, `"unknown":{"x":1}`, `"unknown":`+strings.Repeat("[", 100)+strings.Repeat("]", 100), 1), ReasonBadJSON, ""},
		{"bad ip", strings.Replace(good, `"subject_id"`, `"client":{"ip":"999.1.1.1"},"subject_id"`, 1), ReasonBadValue, "client.ip"},
		{"wrong schema", strings.Replace(good, `{"event_id"`, `{"schema":"consent.v1","event_id"`, 1), ReasonBadSchema, "schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeAccess([]byte(tt.msg), now, Limits{})
			var ve *ValidationError
			ok := errors.As(err, &ve)
			if !ok {
				t.Fatalf("got %v, want a *ValidationError", err)
			}
			if ve.Code != tt.code || ve.Field != tt.field {
				t.Fatalf("got code=%s field=%q (%v), want %s %q", ve.Code, ve.Field, ve, tt.code, tt.field)
			}
		})
	}
}

func TestDecodeConsent(t *testing.T) {
	c, err := DecodeConsent([]byte(`{"schema":"consent.v1","ts":"2026-11-28T10:00:00Z","subject_id":"c1","purpose":"marketing","granted":false}`), now, Limits{})
	if err != nil || c.Granted || c.Purpose != "marketing" || c.Tenant != DefaultTenant {
		t.Fatalf("got %+v, %v", c, err)
	}
	_, err = DecodeConsent([]byte(`{"ts":"2026-11-28T10:00:00Z","subject_id":"c1","purpose":"marketing"}`), now, Limits{})
	if ReasonOf(err) != ReasonMissingField {
		t.Fatalf("missing granted: got %v", err)
	}
}

// TestDestinationDecoded: a share's destination reaches the event on the
// fast and the reflective path, and Shared tells a share to a third party
// from an in-house export.
func TestDestinationDecoded(t *testing.T) {
	msg := `{"event_id":"s1","ts":"2026-11-28T11:00:00Z","actor":{"id":"a","type":"human"},"action":"share",` +
		`"store":"crm","resource":{"type":"customer_profile"},"records":40,"destination":"acme-analytics.example"}`
	for _, fast := range []bool{true, false} {
		e, err := decodeAccess([]byte(msg), now, Limits{}, fast)
		if err != nil {
			t.Fatalf("fast=%v: %v", fast, err)
		}
		if e.Destination != "acme-analytics.example" || !e.Shared() {
			t.Fatalf("fast=%v: destination %q shared %v", fast, e.Destination, e.Shared())
		}
	}
	e, err := DecodeAccess([]byte(strings.Replace(msg, `,"destination":"acme-analytics.example"`, "", 1)), now, Limits{})
	if err != nil || e.Shared() || !e.IsExport() {
		t.Fatalf("share without destination: %+v %v", e, err)
	}
}
