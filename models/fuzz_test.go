package models

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeAccess checks that no input crashes the decoder, that every
// rejection carries a known reason code, and that every accepted event is
// within the contract's limits, has no duplicated or case-folded known key
// (checked by an independent token walk), and survives a JSON round trip.
// Seeds: the f.Add calls below and testdata/fuzz/FuzzDecodeAccess.
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
			var ve *ValidationError
			ok := errors.As(err, &ve)
			if !ok || !known[ve.Code] {
				t.Fatalf("error %v (%T) is not a ValidationError with a known reason", err, err)
			}
			return
		}
		if k := ambiguousKey(b, accessKeys); k != "" {
			t.Fatalf("accepted a message with the known key %q twice or case-folded", k)
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
		if k := ambiguousKey(b, consentKeys); k != "" {
			t.Fatalf("accepted a message with the known key %q twice or case-folded", k)
		}
	})
}

// ambiguousKey walks b with encoding/json's tokenizer (independently of
// checkKeys) and returns the first known key that appears twice in one
// object, or that matches a known key only case-insensitively.
func ambiguousKey(b []byte, known keySet) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	var walk func(known keySet, check bool) string
	walk = func(known keySet, check bool) string {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return ""
				}
				key := kt.(string)
				var child keySet
				isKnown := false
				if check {
					for k, c := range known {
						if strings.EqualFold(k, key) {
							if k != key || seen[k] {
								return key
							}
							seen[k], child, isKnown = true, c, true
						}
					}
				}
				if bad := walk(child, isKnown && child != nil); bad != "" {
					return bad
				}
			}
			_, _ = dec.Token()
		case json.Delim('['):
			for dec.More() {
				if bad := walk(nil, false); bad != "" {
					return bad
				}
			}
			_, _ = dec.Token()
		}
		return ""
	}
	return walk(known, true)
}

// FuzzMaskPII checks that a masked string keeps its length and holds
// nothing that still looks like personal data, and that a masked JSON
// message stays JSON when it was.
func FuzzMaskPII(f *testing.F) {
	for _, c := range PIICases {
		f.Add(c.Value)
	}
	f.Add("a@b.co4111111111111111")
	f.Add(good)
	f.Fuzz(func(t *testing.T, s string) {
		m := MaskPII(s)
		if len(m) != len(s) {
			t.Fatalf("length %d -> %d", len(s), len(m))
		}
		if k, ok := PIIIn(m); ok {
			t.Fatalf("masked %q still holds %s", m, k)
		}
		if json.Valid([]byte(s)) && !json.Valid(MaskPIIJSON([]byte(s))) {
			t.Fatalf("masking broke JSON: %q", MaskPIIJSON([]byte(s)))
		}
	})
}
