package models

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeAccess checks that no input crashes the decoder, that every
// rejection carries a known reason code, and that every accepted event is
// within the contract's limits and survives a JSON round trip.
func FuzzDecodeAccess(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"event_id":1}`))
	f.Add([]byte(`{"event_id":"x","ts":"2026-11-28T11:00:00Z","actor":{"id":"a","type":"human"},"action":"export","store":"crm","resource":{"type":"t"},"records":99999999999}`))
	f.Add([]byte("{\"event_id\":\"\xff\"}"))
	f.Add([]byte(`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`))
	f.Add([]byte(`{"event_id":"a","event_id":"b"}`))
	f.Add([]byte(`{"event_id":"<script>","ts":"2026-11-28T11:00:00Z","actor":{"id":"'; DROP TABLE events; --","type":"bot"},"action":"read","store":"<!channel>","resource":{"type":"*bold*"}}`))
	known := map[Reason]bool{}
	for _, r := range Reasons {
		known[r] = true
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeAccess(b, now, Limits{})
		if err != nil {
			ve, ok := err.(*ValidationError)
			if !ok || !known[ve.Code] {
				t.Fatalf("error %v (%T) is not a ValidationError with a known reason", err, err)
			}
			return
		}
		if e.EventID == "" || len(e.EventID) > MaxEventIDLen || e.Actor.ID == "" || e.Store == "" || e.Resource.Type == "" {
			t.Fatalf("accepted event misses required fields: %+v", e)
		}
		if e.TS.After(now.Add(DefaultMaxFuture)) || e.TS.Before(now.Add(-DefaultMaxAge)) {
			t.Fatalf("accepted ts %s out of range", e.TS)
		}
		for _, s := range []string{e.EventID, e.Actor.ID, e.Store, e.SubjectID, e.Purpose, e.Tool} {
			if !utf8.ValidString(s) {
				t.Fatalf("accepted invalid UTF-8 %q", s)
			}
		}
		out, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := DecodeAccess(out, now, Limits{})
		if err != nil {
			t.Fatalf("re-decoding an accepted event failed: %v\n%s", err, out)
		}
		if e2.EventID != e.EventID || !e2.TS.Equal(e.TS) || e2.Records != e.Records || e2.Actor != e.Actor {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", e, e2)
		}
	})
}

// FuzzDecodeConsent checks the consent decoder the same way.
func FuzzDecodeConsent(f *testing.F) {
	f.Add([]byte(`{"schema":"consent.v1","ts":"2026-11-28T10:00:00Z","subject_id":"c1","purpose":"marketing","granted":false}`))
	f.Add([]byte(`{"granted":"yes"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeConsent(b, now, Limits{})
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error %v has no reason", err)
			}
			return
		}
		if c.SubjectID == "" || c.Purpose == "" || c.TS.IsZero() {
			t.Fatalf("accepted consent misses fields: %+v", c)
		}
	})
}
