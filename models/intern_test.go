package models

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// sameInterned checks that decoding b through in gives what DecodeAccess
// gives: the same event or the same error; and so does DecodeAccessTo
// through in, into an event holding another event's values (the zero
// Event on an error).
func sameInterned(t *testing.T, in *Interner, b []byte) {
	t.Helper()
	want, werr := DecodeAccess(b, now, Limits{})
	got, gerr := DecodeAccessInterned(b, now, Limits{}, in)
	to := Event{EventID: "stale", Tenant: "stale", Destination: "stale", Fields: []string{"stale"}, Records: 9, Result: ResultDenied}
	terr := DecodeAccessTo(&to, b, now, Limits{}, in)
	for _, g := range []struct {
		name string
		ev   Event
		err  error
	}{{"interned", got, gerr}, {"decoded in place", to, terr}} {
		if (werr == nil) != (g.err == nil) {
			t.Fatalf("%s err %v, plain err %v\n%s", g.name, g.err, werr, b)
		}
		if werr != nil {
			var wv, gv *ValidationError
			if !errors.As(werr, &wv) || !errors.As(g.err, &gv) || *wv != *gv {
				t.Fatalf("%s %v, plain %v\n%s", g.name, g.err, werr, b)
			}
			if g.name == "decoded in place" && !reflect.DeepEqual(g.ev, Event{}) {
				t.Fatalf("decoded in place with an error, the event is %+v, want the zero Event\n%s", g.ev, b)
			}
			continue
		}
		if !reflect.DeepEqual(g.ev, want) {
			t.Fatalf("%s and plain events differ:\n%+v\n%+v\n%s", g.name, g.ev, want, b)
		}
	}
}

// TestInternedDecodeMatchesDecodeAccess: through one Interner (the second
// time round every repeated value comes from it), each corpus input and
// variant decodes as DecodeAccess decodes it.
func TestInternedDecodeMatchesDecodeAccess(t *testing.T) {
	inputs := corpus(t)
	if len(inputs) < 50 {
		t.Fatalf("only %d corpus inputs; the seed corpus under testdata/fuzz is missing", len(inputs))
	}
	for _, v := range []string{
		good,
		strings.Replace(good, `"crm"`, `"cr\u006d"`, 1),
		strings.Replace(good, `"fields":["email"]`, `"fields":["email","email","phone"]`, 1),
		strings.Replace(good, `"fields":["email"]`, `"fields":[]`, 1),
		strings.Replace(good, `"subject_id":"c1"`, `"subject_id":"c1","subject_id":"c2"`, 1),
		strings.Replace(good, `"crm"`, `"`+strings.Repeat("s", maxInternLen+1)+`"`, 1),
	} {
		inputs = append(inputs, []byte(v))
	}
	in := NewInterner()
	for range 2 {
		for _, b := range inputs {
			sameInterned(t, in, b)
		}
	}
}

// TestInternerSharesAndIsBounded: equal values share one copy, which does
// not alias the message; past maxInterned strings, values are still right
// (copied, not shared).
func TestInternerSharesAndIsBounded(t *testing.T) {
	in := NewInterner()
	msg := []byte(good)
	a, err := DecodeAccessInterned(msg, now, Limits{}, in)
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeAccessInterned([]byte(good), now, Limits{}, in)
	if err != nil {
		t.Fatal(err)
	}
	if unsafe.StringData(a.Store) != unsafe.StringData(b.Store) || unsafe.StringData(a.Tenant) != unsafe.StringData(b.Tenant) {
		t.Fatal("the store and tenant of two equal events are not shared")
	}
	for i := range msg {
		msg[i] = 'x'
	}
	if a.Store != "crm" || a.Fields[0] != "email" {
		t.Fatalf("an interned value aliases the message bytes: store %q, fields %q", a.Store, a.Fields)
	}
	for i := range maxInterned + 10 {
		v := strings.Replace(good, `"crm"`, fmt.Sprintf(`"store-%d"`, i), 1)
		e, err := DecodeAccessInterned([]byte(v), now, Limits{}, in)
		if err != nil || e.Store != fmt.Sprintf("store-%d", i) {
			t.Fatalf("store %d: %q, %v", i, e.Store, err)
		}
	}
	if len(in.m) != maxInterned {
		t.Fatalf("the interner holds %d strings, want its bound %d", len(in.m), maxInterned)
	}
}

// FuzzInternedMatchesDecodeAccess looks for an input that decodes
// differently through an Interner (fresh, and holding the input's values
// from a first decode), or whose payload PII the Interner's FindPII finds
// differently.
func FuzzInternedMatchesDecodeAccess(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(strings.Replace(good, `"fields":["email"]`, `"fields":["email","email"]`, 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := NewInterner()
		sameInterned(t, in, b)
		sameInterned(t, in, b)
		samePIIFound(t, in, b)
	})
}

// BenchmarkDecodeAccessBatch decodes a batch of simulated messages (a few
// tenants, stores, actors and categories, distinct ids) with DecodeAccess
// (plain) and with one Interner per batch (interned), as ingest does.
func BenchmarkDecodeAccessBatch(b *testing.B) {
	const n = 2048
	msgs := make([][]byte, n)
	size := 0
	for i := range msgs {
		msgs[i] = fmt.Appendf(nil, `{"event_id":"sim1-20261019T0000-%d","ts":"2026-11-28T00:00:02.941Z","tenant":"brand-%c","actor":{"id":"assistant-%04d","type":"bot","role":"chat-assistant"},"action":"read","store":"%s","resource":{"type":"order","id":"ord-%08d"},"subject_id":"cust-%06d","records":2,"bytes":5484,"fields":["order_history","%s"],"purpose":"support","conversation":{"id":"conv-%d","subject_id":"cust-%06d"},"tool":"lookup_order","result":"allowed","client":{"ip":"10.20.1.193","country":"US","user_agent":"assistant-runtime/2.7 (tool-calls)"}}`,
			i, 'a'+i%3, i%150, []string{"orders", "crm", "tickets", "payments"}[i%4], i*7919, i*31%20000, []string{"email", "address", "phone"}[i%3], i%500, i*31%20000)
		size += len(msgs[i])
	}
	for _, interned := range []bool{false, true} {
		name := "plain"
		if interned {
			name = "interned"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			evs := make([]Event, n)
			for b.Loop() {
				var in *Interner
				if interned {
					in = NewInterner()
				}
				for i, m := range msgs {
					e, err := DecodeAccessInterned(m, now, Limits{}, in)
					if err != nil {
						b.Fatal(err)
					}
					evs[i] = e
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}
}

// TestBadInputMatrixInterned: every case of the access bad-input matrix,
// decoded through one Interner twice (the second time each repeated value,
// and what the Interner knows of it: looks like personal data or not, is a
// valid IP or not, comes from it), gets the matrix's reason and field, and
// decodes as DecodeAccess decodes it.
func TestBadInputMatrixInterned(t *testing.T) {
	cs := accessMatrix(t)
	in := NewInterner()
	for round := range 2 {
		for _, tc := range cs {
			sameInterned(t, in, tc.msg)
			samePIIFound(t, in, tc.msg)
			_, err := DecodeAccessInterned(tc.msg, now, Limits{}, in)
			var ve *ValidationError
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("round %d, %s: rejected: %v", round, tc.name, err)
			case tc.code != "" && (!errors.As(err, &ve) || ve.Code != tc.code || ve.Field != tc.field):
				t.Fatalf("round %d, %s: got %v, want %s %q", round, tc.name, err, tc.code, tc.field)
			}
		}
	}
}

// TestInternedPIIAndIPFlags: a repeated value that looks like personal
// data is rejected each time it comes, in whichever field; a repeated
// invalid client IP too; a valid one shared by another field first is
// still checked.
func TestInternedPIIAndIPFlags(t *testing.T) {
	in := NewInterner()
	for _, c := range []struct {
		from, to string
		code     Reason
		field    string
	}{
		{`"crm"`, `"crm","tool":"lookup"`, "", ""},
		{`"crm"`, `"crm","tool":"jane@example.com"`, ReasonPIIInPayload, "tool"},
		{`"crm"`, `"jane@example.com"`, ReasonPIIInPayload, "store"},
		{`"fields":["email"]`, `"fields":["email","jane@example.com"]`, ReasonPIIInPayload, "fields[1]"},
		{`"crm"`, `"crm","client":{"ip":"10.0.0.1"}`, "", ""},
		{`"crm"`, `"crm","client":{"ip":"10.0.0.300"}`, ReasonBadValue, "client.ip"},
		{`"crm"`, `"crm","tool":"10.0.0.7"`, "", ""},
		{`"crm"`, `"crm","client":{"ip":"10.0.0.7"}`, "", ""},
		{`"crm"`, `"crm","tool":"10.0.0.777"`, "", ""},
		{`"crm"`, `"crm","client":{"ip":"10.0.0.777"}`, ReasonBadValue, "client.ip"},
	} {
		msg := []byte(strings.Replace(good, c.from, c.to, 1))
		for round := range 3 {
			sameInterned(t, in, msg)
			samePIIFound(t, in, msg)
			_, err := DecodeAccessInterned(msg, now, Limits{}, in)
			var ve *ValidationError
			switch {
			case c.code == "" && err != nil:
				t.Fatalf("round %d, %s: rejected: %v", round, msg, err)
			case c.code != "" && (!errors.As(err, &ve) || ve.Code != c.code || ve.Field != c.field):
				t.Fatalf("round %d, %s: got %v, want %s %q", round, msg, err, c.code, c.field)
			}
		}
	}
}

// samePIIFound checks that in.FindPII, on the event DecodeAccessTo has just
// decoded from b through in without the PII check (as ingest decodes),
// finds what FindPII finds.
func samePIIFound(t *testing.T, in *Interner, b []byte) {
	t.Helper()
	var e Event
	if DecodeAccessTo(&e, b, now, Limits{AllowPII: true}, in) != nil {
		return
	}
	wh, wok := FindPII(&e)
	if gh, gok := in.FindPII(&e); gok != wok || gh != wh {
		t.Fatalf("Interner.FindPII %v %+v, FindPII %v %+v\n%s", gok, gh, wok, wh, b)
	}
}
