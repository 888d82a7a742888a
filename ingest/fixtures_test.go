package ingest

import (
	"fmt"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// accessJSON is a valid access.v1 message.
func accessJSON(id string, ts time.Time, actor string) string {
	return fmt.Sprintf(`{"event_id":%q,"ts":%q,"tenant":"acme","actor":{"id":%q,"type":"human","role":"agent"},"action":"read","store":"crm","resource":{"type":"customer_profile","id":"rec-%s"},"subject_id":"cust-%s","fields":["email","phone"],"purpose":"support","conversation":{"id":"conv-1","subject_id":"cust-%s"},"client":{"ip":"10.0.0.1","country":"DE"}}`,
		id, ts.UTC().Format(time.RFC3339Nano), actor, id, id, id)
}

// consentJSON is a valid consent.v1 message.
func consentJSON(subject string, ts time.Time, granted bool) string {
	return fmt.Sprintf(`{"schema":"consent.v1","event_id":"c-%s","ts":%q,"tenant":"acme","subject_id":%q,"purpose":"marketing","granted":%t}`,
		subject, ts.UTC().Format(time.RFC3339), subject, granted)
}

// badMessage is one malformed access message and the reason it must get.
type badMessage struct {
	reason models.Reason
	field  string
	value  string
	masked string // the dead-letter copy's value when it differs from value (PII masked)
}

// dlqValue is what the dead-letter copy of b must hold.
func (b badMessage) dlqValue() string {
	if b.masked != "" {
		return b.masked
	}
	return b.value
}

// badMessages returns one malformed message for every reason code, checked
// against now.
func badMessages(now time.Time) []badMessage {
	good := accessJSON("bad-base", now.Add(-time.Minute), "agent-x")
	var out []badMessage
	for _, r := range models.Reasons {
		var b badMessage
		switch r {
		case models.ReasonBadJSON:
			b = badMessage{r, "", good[:40], ""}
		case models.ReasonBadUTF8:
			b = badMessage{r, "", strings.Replace(good, `"crm"`, "\"cr\xff\"", 1), ""}
		case models.ReasonMissingField:
			b = badMessage{r, "store", strings.Replace(good, `"store":"crm",`, "", 1), ""}
		case models.ReasonBadType:
			b = badMessage{r, "actor", strings.Replace(good, `{"id":"agent-x","type":"human","role":"agent"}`, `"agent-x"`, 1), ""}
		case models.ReasonBadEnum:
			b = badMessage{r, "action", strings.Replace(good, `"read"`, `"steal"`, 1), ""}
		case models.ReasonBadValue:
			b = badMessage{r, "records", strings.Replace(good, `"store"`, `"records":-1,"store"`, 1), ""}
		case models.ReasonTooLong:
			b = badMessage{r, "event_id", strings.Replace(good, `"bad-base"`, `"`+strings.Repeat("e", 200)+`"`, 1), ""}
		case models.ReasonTSFuture:
			b = badMessage{r, "ts", accessJSON("bad-future", now.Add(72*time.Hour), "agent-x"), ""}
		case models.ReasonTSTooOld:
			b = badMessage{r, "ts", accessJSON("bad-old", now.Add(-200*24*time.Hour), "agent-x"), ""}
		case models.ReasonTooLarge:
			b = badMessage{r, "", strings.Replace(good, `"purpose"`, `"padding":"`+strings.Repeat("x", 70<<10)+`","purpose"`, 1), ""}
		case models.ReasonBadSchema:
			b = badMessage{r, "schema", strings.Replace(good, `{"event_id"`, `{"schema":"access.v9","event_id"`, 1), ""}
		case models.ReasonPIIInPayload:
			v := strings.Replace(good, `"rec-`, `"4111111111111111-`, 1)
			b = badMessage{r, "resource.id", v, strings.Replace(v, "4111111111111111", "****************", 1)}
		default:
			panic("no fixture for reason " + string(r))
		}
		out = append(out, b)
	}
	return out
}
