package eval

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/chatwarden/chatwarden/models"
)

// decodeLineConsentFirst is decodeLine as it was: the consent test first,
// then the access decoder. The reference decodeLine must match.
func decodeLineConsentFirst(b []byte) (item, error) {
	if bytes.Contains(b, []byte("consent")) && models.SchemaOf(b) == models.SchemaConsent {
		return decodeConsentLine(b)
	}
	e, err := models.DecodeAccessInterned(b, replayNow, replayLimits, nil)
	if err != nil {
		return item{}, err
	}
	if err := checkStorable(e.TS); err != nil {
		return item{}, err
	}
	return item{ev: e, ts: e.TS}, nil
}

// TestDecodeLineMatchesConsentFirst: decoding a line as an access event
// first gives, on access and consent lines and on lines that mix the two
// schemas' keys or spell "schema" otherwise, the item or the error the
// consent-first order gave.
func TestDecodeLineMatchesConsentFirst(t *testing.T) {
	const access = `{"event_id":"e1","ts":"2026-10-19T00:00:03.706Z","tenant":"brand-b","actor":{"id":"assistant-0100","type":"bot","role":"chat-assistant"},"action":"read","store":"crm","resource":{"type":"customer_profile","id":"prof-1"},"subject_id":"cust-1","records":1,"fields":["name"],"purpose":"support","conversation":{"id":"conv-11","subject_id":"cust-1"},"tool":"get_profile","result":"allowed"}`
	const consent = `{"schema":"consent.v1","event_id":"c-1","ts":"2026-10-19T00:00:04Z","tenant":"default","subject_id":"cust-1","purpose":"marketing","granted":false}`
	lines := []string{
		access,
		consent,
		strings.Replace(access, `"support"`, `"consent_management"`, 1),
		strings.Replace(access, `{"event_id"`, `{"schema":"access.v1","event_id"`, 1),
		strings.Replace(access, `{"event_id"`, `{"schema":"consent.v1","event_id"`, 1),
		strings.Replace(access, `{"event_id"`, `{"SCHEMA":"consent.v1","event_id"`, 1),
		strings.Replace(access, `{"event_id"`, `{"schema":"access.v1","Schema":"consent.v1","event_id"`, 1),
		strings.Replace(access, `{"event_id"`, `{"schema":"consent.v1","schema":"access.v1","event_id"`, 1),
		strings.Replace(access, `{"event_id"`, `{"sch\u0065ma":"consent.v1","event_id"`, 1),
		strings.Replace(access, `{"event_id"`, `{"schema":"\u0063onsent.v1","event_id"`, 1),
		strings.Replace(access, `{"event_id"`, `{"schema":null,"event_id"`, 1),
		strings.Replace(access, `"records":1`, `"records":1,"granted":true`, 1),
		strings.Replace(consent, `"consent.v1"`, `"access.v1"`, 1),
		strings.Replace(consent, `"granted":false`, `"granted":"no"`, 1),
		strings.Replace(consent, `"granted":false`, `"granted":true,"note":"access.v1"`, 1),
		strings.Replace(consent, `{"schema"`, `{"Schema"`, 1),
		strings.Replace(consent, `"2026-10-19T00:00:04Z"`, `"1960-01-01T00:00:00Z"`, 1),
		strings.Replace(access, `"2026-10-19T00:00:03.706Z"`, `"1960-01-01T00:00:00Z"`, 1),
		strings.Replace(access, `"name"`, `"consent"`, 1),
		`{"schema":"consent.v1"}`,
		`{"consent":1}`,
		`not json consent`,
		``,
	}
	consents, accesses := 0, 0
	for i, line := range lines {
		b := []byte(line + "\n")
		want, werr := decodeLineConsentFirst(b)
		if werr == nil && want.consent != nil {
			consents++
		} else if werr == nil {
			accesses++
		}
		for _, in := range []*models.Interner{nil, models.NewInterner()} {
			got, gerr := decodeLine(b, in)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("line %d: err %v, consent first %v\n%s", i, gerr, werr, line)
			}
			if werr != nil {
				var wv, gv *models.ValidationError
				if errors.As(werr, &wv) != errors.As(gerr, &gv) || (wv != nil && *wv != *gv) || werr.Error() != gerr.Error() {
					t.Fatalf("line %d: err %v, consent first %v\n%s", i, gerr, werr, line)
				}
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("line %d: item %+v, consent first %+v\n%s", i, got, want, line)
			}
		}
	}
	if consents < 2 || accesses < 3 {
		t.Fatalf("%d consent and %d access lines decoded: the cases do not exercise both", consents, accesses)
	}
}
