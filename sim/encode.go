package sim

import (
	"strconv"
	"time"
)

// The JSON encoding here is hand-written for speed (no reflection); the
// strings it writes come from fixed tables and validated tenant names, none
// of which needs escaping. encode_test.go proves the bytes equal
// encoding/json's output for the same event.

// appendTS appends ms as RFC 3339 with trailing zeros of the fraction
// trimmed, as time.Time's MarshalJSON writes it.
func (g *Generator) appendTS(b []byte, ms int64) []byte {
	m := ms / 60000
	if m != g.tsMinute {
		g.tsMinute = m
		g.tsPrefix = time.Unix(m*60, 0).UTC().AppendFormat(g.tsPrefix[:0], "2006-01-02T15:04:")
	}
	b = append(b, g.tsPrefix...)
	rem := ms - m*60000
	sec, frac := rem/1000, rem%1000
	b = append(b, byte('0'+sec/10), byte('0'+sec%10))
	if frac != 0 {
		d := [3]byte{byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
		n := 3
		for n > 0 && d[n-1] == '0' {
			n--
		}
		b = append(b, '.')
		b = append(b, d[:n]...)
	}
	return append(b, 'Z')
}

// appendCustomer appends a raw customer id: cust- and at least six digits.
func appendCustomer(b []byte, s int32) []byte {
	b = append(b, "cust-"...)
	for d := int32(100000); d > 1 && s < d; d /= 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(s), 10)
}

func (g *Generator) appendAccess(b []byte, e *event) []byte {
	b = append(b, `{"event_id":"`...)
	b = append(b, g.idPrefix...)
	b = strconv.AppendUint(b, g.seq, 10)
	g.seq++
	b = append(b, `","ts":"`...)
	b = g.appendTS(b, e.ms)
	b = append(b, '"')
	b = append(b, e.a.frag...)
	b = append(b, `,"action":"`...)
	b = append(b, e.action...)
	b = append(b, `",`...)
	b = append(b, e.st.frag...)
	if e.resID != 0 {
		b = append(b, `,"id":"`...)
		if p := g.payloadPII(e); p != nil {
			b = appendPIIValue(b, e, p)
		} else {
			b = append(b, e.st.idPrefix...)
			b = strconv.AppendUint(b, e.resID, 10)
		}
		b = append(b, '"')
	}
	b = append(b, '}')
	if e.subject >= 0 {
		b = append(b, `,"subject_id":"`...)
		b = appendCustomer(b, e.subject)
		b = append(b, '"')
	}
	b = append(b, `,"records":`...)
	b = strconv.AppendUint(b, e.records, 10)
	if e.bytes != 0 {
		b = append(b, `,"bytes":`...)
		b = strconv.AppendUint(b, e.bytes, 10)
	}
	b = append(b, e.fields.frag...)
	if e.purpose != "" {
		b = append(b, `,"purpose":"`...)
		b = append(b, e.purpose...)
		b = append(b, '"')
	}
	if e.conv != 0 {
		b = append(b, `,"conversation":{"id":"conv-`...)
		b = strconv.AppendInt(b, e.conv, 10)
		b = append(b, '"')
		if e.convSubject >= 0 {
			b = append(b, `,"subject_id":"`...)
			b = appendCustomer(b, e.convSubject)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	if e.tool != "" {
		b = append(b, `,"tool":"`...)
		b = append(b, e.tool...)
		b = append(b, '"')
	}
	b = append(b, `,"result":"`...)
	b = append(b, e.result...)
	b = append(b, '"')
	b = append(b, e.client.frag...)
	if e.dest != "" {
		b = append(b, `,"destination":"`...)
		b = append(b, e.dest...)
		b = append(b, '"')
	}
	return append(b, '}')
}

func (g *Generator) appendConsent(b []byte, e *event) []byte {
	b = append(b, `{"schema":"consent.v1","event_id":"`...)
	b = append(b, g.idPrefix...)
	b = strconv.AppendUint(b, g.seq, 10)
	g.seq++
	b = append(b, `","ts":"`...)
	b = g.appendTS(b, e.ms)
	b = append(b, `","tenant":"`...)
	b = append(b, g.w.tenants[e.tenant]...)
	b = append(b, `","subject_id":"`...)
	b = appendCustomer(b, e.subject)
	b = append(b, `","purpose":"`...)
	b = append(b, e.purpose...)
	b = append(b, `","granted":`...)
	b = strconv.AppendBool(b, e.granted)
	return append(b, '}')
}
