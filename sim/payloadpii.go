package sim

import (
	"strconv"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// Payload PII (Config.PayloadPII): two producers ship a bad release for a
// few minutes. The orders store's access log writes the customer's payment
// card number where the order id belongs (10 minutes, 13:00 UTC on the
// weekday nearest 40% of the span), and the CRM's writes the customer's
// e-mail address as the profile id (5 minutes, 15:00 UTC on the weekday
// nearest 70%). Every event of that store with a resource id in the
// window carries it; ingest rejects them as pii_in_payload (or stores them
// pseudonymized with a finding against the producer). One label of kind
// payload_pii per window and tenant names the producer store as its actor,
// as ingest's finding and metric do. The values are made up: Luhn-valid
// numbers on the 4000 prefix and addresses at example.org.

// KindPayloadPII is the label kind of a payload PII window.
const KindPayloadPII = "payload_pii"

// piiWindow is one producer's bad release: events of store in [from, to)
// (unix milliseconds) carry kind in resource.id.
type piiWindow struct {
	store    string
	kind     models.PIIKind
	from, to int64
}

// planPayloadPII places the two windows and labels them per tenant.
func (g *Generator) planPayloadPII() {
	w := g.w
	span := w.end - w.start
	// at is hour:00 UTC on the weekday nearest to frac% of the span (the
	// first after it, else the last before it; a span too short for any:
	// frac% itself), in unix minutes.
	at := func(frac int64, hour int) int64 {
		t := time.Unix((w.start+span*frac/100)*60, 0).UTC()
		d0 := time.Date(t.Year(), t.Month(), t.Day(), hour, 0, 0, 0, time.UTC)
		for _, step := range []int{1, -1} {
			for d := d0; d.Unix()/60 >= w.start && d.Unix()/60+60 <= w.end; d = d.AddDate(0, 0, step) {
				if wd := d.Weekday(); wd != time.Saturday && wd != time.Sunday && (step < 0 || !d.Before(t)) {
					return d.Unix() / 60
				}
			}
		}
		// no weekday's hour:00 fits (a span of hours): frac% itself
		return t.Unix() / 60
	}
	for _, p := range []struct {
		store string
		kind  models.PIIKind
		from  int64
		mins  int64
	}{{stOrders.store, models.PIICard, at(40, 13), 10}, {stCRM.store, models.PIIEmail, at(70, 15), 5}} {
		if p.from+p.mins > w.end {
			g.skipped = append(g.skipped, KindPayloadPII+": the "+p.store+" window does not fit the span")
			continue
		}
		g.piiWins = append(g.piiWins, piiWindow{store: p.store, kind: p.kind, from: p.from * 60000, to: (p.from + p.mins) * 60000})
		for t := range w.tenants {
			l := label(g, KindPayloadPII, t, p.store, p.from, p.from+p.mins)
			l.ID = "pii-" + strconv.Itoa(len(g.piiWins)) + "-" + strconv.Itoa(t+1)
			g.labels = append(g.labels, l) // after the attacks' (their scenarios index them)
		}
	}
}

// payloadPII returns the window e falls in, if any.
func (g *Generator) payloadPII(e *event) *piiWindow {
	for i := range g.piiWins {
		p := &g.piiWins[i]
		if e.ms >= p.from && e.ms < p.to && e.st.store == p.store {
			return p
		}
	}
	return nil
}

// appendPIIValue appends the personal data the bad release writes in
// place of e's resource id.
func appendPIIValue(b []byte, e *event, p *piiWindow) []byte {
	if p.kind == models.PIIEmail {
		b = append(b, "customer"...)
		b = strconv.AppendInt(b, int64(e.subject)+1, 10)
		return append(b, "@example.org"...)
	}
	// 4000 and 11 digits from the resource id, then the Luhn check digit
	var d [16]byte
	copy(d[:4], "4000")
	n := e.resID
	for i := 14; i >= 4; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	sum := 0
	for i := 14; i >= 0; i-- {
		v := int(d[i] - '0')
		if (14-i)%2 == 0 {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	d[15] = byte('0' + (10-sum%10)%10)
	return append(b, d[:]...)
}
