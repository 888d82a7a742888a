package models

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sameDecode checks that the fast path and the reflective path agree on b.
func sameDecode(t *testing.T, b []byte) {
	t.Helper()
	fe, ferr := decodeAccess(b, now, Limits{}, true)
	se, serr := decodeAccess(b, now, Limits{}, false)
	if (ferr == nil) != (serr == nil) {
		t.Fatalf("fast err %v, slow err %v\n%s", ferr, serr, b)
	}
	if ferr != nil {
		var fv, sv *ValidationError
		if !errors.As(ferr, &fv) || !errors.As(serr, &sv) || fv.Code != sv.Code || fv.Field != sv.Field {
			t.Fatalf("fast %v, slow %v\n%s", ferr, serr, b)
		}
		return
	}
	if !reflect.DeepEqual(fe, se) {
		t.Fatalf("fast and slow events differ:\n%+v\n%+v\n%s", fe, se, b)
	}
}

// corpus returns the decoder's seed corpus files and the table inputs.
func corpus(t *testing.T) [][]byte {
	t.Helper()
	var out [][]byte
	files, _ := filepath.Glob("testdata/fuzz/FuzzDecodeAccess/*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// go test fuzz v1 format: a header line, then []byte("...").
		lines := strings.SplitN(string(b), "\n", 2)
		if len(lines) == 2 {
			if v, ok := parseFuzzBytes(strings.TrimSpace(lines[1])); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

func TestFastPathMatchesReflectivePath(t *testing.T) {
	inputs := corpus(t)
	if len(inputs) < 50 {
		t.Fatalf("only %d corpus inputs; the seed corpus under testdata/fuzz is missing", len(inputs))
	}
	fastTaken := 0
	variants := []string{
		good,
		strings.Replace(good, `"crm"`, `"crm","STORE":"payments"`, 1),
		strings.Replace(good, `"crm"`, `"cr\u006d"`, 1),
		strings.Replace(good, `"unknown":{"x":1}`, `"unknown":{"x":[1,2.5e3,true,null,"a\"b"]}`, 1),
		strings.Replace(good, `"unknown":{"x":1}`, `"ſtore":"payments"`, 1),
		strings.Replace(good, `"fields":["email"]`, `"fields":[]`, 1),
		strings.Replace(good, `"fields":["email"]`, `"fields":null`, 1),
		strings.Replace(good, `"fields":["email"]`, `"records":1e2`, 1),
		strings.Replace(good, `"fields":["email"]`, `"records":007`, 1),
		strings.Replace(good, `"fields":["email"]`, `"records":-0`, 1),
		strings.Replace(good, `"subject_id":"c1"`, `"subject_id":"c1","subject_id":"c2"`, 1),
		strings.Replace(good, `{"id":"bot-1","type":"bot"}`, `{"id":"bot-1","type":"bot","Id":"x"}`, 1),
		strings.Replace(good, `}`, `} `, 1) + "\n",
		good + "x",
	}
	for _, v := range variants {
		inputs = append(inputs, []byte(v))
	}
	for _, b := range inputs {
		sameDecode(t, b)
		var w wireAccess
		if fastAccess(b, &w) {
			fastTaken++
		}
	}
	if fastTaken == 0 {
		t.Fatal("the fast path took no input: it is not being exercised")
	}
	t.Logf("%d inputs, %d through the fast path", len(inputs), fastTaken)
}

// FuzzFastPathMatchesReflectivePath looks for an input on which the two
// decoding paths disagree.
func FuzzFastPathMatchesReflectivePath(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(strings.Replace(good, `"crm"`, `"crm","Store":"x"`, 1)))
	f.Fuzz(func(t *testing.T, b []byte) { sameDecode(t, b) })
}

func BenchmarkDecodeAccess(b *testing.B) {
	msg := []byte(`{"event_id":"sim1-20261019T0000-0","ts":"2026-11-28T00:00:02.941Z","tenant":"brand-b","actor":{"id":"assistant-0098","type":"bot","role":"chat-assistant"},"action":"read","store":"orders","resource":{"type":"order","id":"ord-79130954"},"subject_id":"cust-020153","records":2,"bytes":5484,"fields":["order_history"],"purpose":"support","conversation":{"id":"conv-12","subject_id":"cust-020153"},"tool":"lookup_order","result":"allowed","client":{"ip":"10.20.1.193","country":"US","user_agent":"assistant-runtime/2.7 (tool-calls)"}}`)
	for _, fast := range []bool{true, false} {
		for _, pii := range []bool{true, false} {
			name := "reflective"
			if fast {
				name = "fast"
			}
			if pii {
				name += "/pii_check"
			} else {
				name += "/no_pii_check"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(msg)))
				for b.Loop() {
					if _, err := decodeAccess(msg, now, Limits{AllowPII: !pii}, fast); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// parseFuzzBytes reads a corpus line of the form []byte("...").
func parseFuzzBytes(line string) ([]byte, bool) {
	const pre, suf = "[]byte(", ")"
	if !strings.HasPrefix(line, pre) || !strings.HasSuffix(line, suf) {
		return nil, false
	}
	s, err := strconv.Unquote(line[len(pre) : len(line)-len(suf)])
	if err != nil {
		return nil, false
	}
	return []byte(s), true
}

// TestFastKeysDistinctUnderFolding: no two keys of one of the fast path's
// key lists are equal under case folding, which object relies on to look
// for an exact match before comparing under folding.
func TestFastKeysDistinctUnderFolding(t *testing.T) {
	for _, ks := range []*fastKeys{fastTopKeys, fastActorKeys, fastResKeys, fastConvKeys, fastClientKey} {
		known := ks.keys
		for i, a := range known {
			for _, b := range known[i+1:] {
				if strings.EqualFold(a, b) {
					t.Errorf("keys %q and %q are equal under case folding", a, b)
				}
			}
		}
	}
}

// TestFastKeyIndexes: the fast path's key constants index its key lists
// (its members are called with the index of the key read).
func TestFastKeyIndexes(t *testing.T) {
	for _, c := range []struct {
		known *fastKeys
		idx   int
		key   string
	}{
		{fastTopKeys, keySchema, "schema"}, {fastTopKeys, keyEventID, "event_id"}, {fastTopKeys, keyTS, "ts"},
		{fastTopKeys, keyTenant, "tenant"}, {fastTopKeys, keyActor, "actor"}, {fastTopKeys, keyAction, "action"},
		{fastTopKeys, keyStore, "store"}, {fastTopKeys, keyResource, "resource"}, {fastTopKeys, keySubjectID, "subject_id"},
		{fastTopKeys, keyRecords, "records"}, {fastTopKeys, keyBytes, "bytes"}, {fastTopKeys, keyFields, "fields"},
		{fastTopKeys, keyPurpose, "purpose"}, {fastTopKeys, keyConversation, "conversation"}, {fastTopKeys, keyTool, "tool"},
		{fastTopKeys, keyResult, "result"}, {fastTopKeys, keyClient, "client"}, {fastTopKeys, keyDestination, "destination"},
		{fastActorKeys, keyActorID, "id"}, {fastActorKeys, keyActorType, "type"}, {fastActorKeys, keyActorRole, "role"},
		{fastActorKeys, keyActorVendor, "vendor"},
		{fastResKeys, keyResourceType, "type"}, {fastResKeys, keyResourceID, "id"},
		{fastConvKeys, keyConvID, "id"}, {fastConvKeys, keyConvSubjectID, "subject_id"},
		{fastClientKey, keyClientIP, "ip"}, {fastClientKey, keyClientCountry, "country"}, {fastClientKey, keyClientUserAgent, "user_agent"},
	} {
		if c.idx >= len(c.known.keys) || c.known.keys[c.idx] != c.key {
			t.Errorf("key %q: index %d in %q", c.key, c.idx, c.known.keys)
		}
		if got := c.known.index([]byte(c.key)); got != c.idx {
			t.Errorf("key %q: found at index %d, want %d", c.key, got, c.idx)
		}
	}
}

// sameTime checks that parseUTCTime, when it takes s, parses it as
// time.Parse(time.RFC3339Nano) does, in UTC.
func sameTime(t *testing.T, s string) bool {
	t.Helper()
	got, ok := parseUTCTime([]byte(s))
	if !ok {
		return false
	}
	want, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%q: parseUTCTime took %v, time.Parse rejects it: %v", s, got, err)
	}
	if !got.Equal(want) || got != want.UTC() {
		t.Fatalf("%q: parseUTCTime %v, time.Parse %v", s, got, want)
	}
	return true
}

// TestParseUTCTime: the fast path's time parser takes the common form and
// agrees with time.Parse on it; it leaves everything else to time.Parse.
func TestParseUTCTime(t *testing.T) {
	for _, c := range []struct {
		s    string
		fast bool
	}{
		{"2026-10-19T00:00:03.706Z", true}, {"2026-10-19T00:00:03Z", true}, {"2026-10-19T23:59:59.123456789Z", true},
		{"2026-10-19T00:00:03.7Z", true}, {"2024-02-29T12:00:00Z", true}, {"2000-02-29T12:00:00Z", true},
		{"2026-12-31T00:00:00Z", true}, {"2026-04-30T00:00:00Z", true}, {"0001-01-01T00:00:00Z", true},
		{"2026-02-29T12:00:00Z", false}, {"1900-02-29T12:00:00Z", false}, {"2026-04-31T00:00:00Z", false},
		{"2026-13-01T00:00:00Z", false}, {"2026-00-01T00:00:00Z", false}, {"2026-01-00T00:00:00Z", false},
		{"2026-01-01T24:00:00Z", false}, {"2026-01-01T00:60:00Z", false}, {"2026-01-01T00:00:60Z", false},
		{"2026-10-19T00:00:03.1234567891Z", false}, {"2026-10-19T00:00:03.Z", false}, {"2026-10-19T00:00:03,5Z", false},
		{"2026-10-19t00:00:03Z", false}, {"2026-10-19T00:00:03z", false}, {"2026-10-19T00:00:03+00:00", false},
		{"2026-10-19T00:00:03.5+02:00", false}, {"2026-1a-19T00:00:03Z", false}, {"+026-10-19T00:00:03Z", false},
		{"2026-10-19T00:00:03.-1Z", false}, {"2026-10-19 00:00:03Z", false}, {"", false},
	} {
		if got := sameTime(t, c.s); got != c.fast {
			t.Errorf("%q: fast %v, want %v", c.s, got, c.fast)
		}
	}
}

// FuzzParseUTCTime looks for a time the fast path parses differently from
// time.Parse.
func FuzzParseUTCTime(f *testing.F) {
	f.Add("2026-10-19T00:00:03.706Z")
	f.Add("2024-02-29T12:00:00Z")
	f.Fuzz(func(t *testing.T, s string) { sameTime(t, s) })
}

// TestPlainBytes: plainBytes, which looks at eight bytes at a time, stops
// where a byte-by-byte walk stops: at each kind of byte, at each place in
// strings of each length, among plain ASCII and non-ASCII bytes.
func TestPlainBytes(t *testing.T) {
	for _, fill := range []byte{'a', 0x80, 0xff, 0x7f, ' ', '!', '#', '[', ']'} {
		for n := range 24 {
			for at := range n + 1 {
				for _, stop := range []byte{'"', '\\', 0, 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0xa2, 0xdc} {
					body := bytes.Repeat([]byte{fill}, n)
					if at < n {
						body[at] = stop
					}
					msg := append(append([]byte{'"'}, body...), '"')
					p := fastParser{b: msg}
					got, ok := p.plainBytes()
					// the walk a byte at a time
					want, wok := []byte(nil), false
					for j := 1; j < len(msg); j++ {
						if c := msg[j]; c == '"' {
							want, wok = msg[1:j], true
							break
						} else if c == '\\' || c < 0x20 {
							break
						}
					}
					if ok != wok || !bytes.Equal(got, want) {
						t.Fatalf("%q: plainBytes %q %v, want %q %v", msg, got, ok, want, wok)
					}
				}
			}
		}
	}
}
