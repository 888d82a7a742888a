package models

import (
	"encoding/json"
	"fmt"
	"strings"
)

// PIIKind is the kind of personal data a payload value looks like. The kinds
// are stable: they are metric labels (a bounded set).
type PIIKind string

// The kinds of payload PII the decoder recognizes. The boundaries, chosen to
// keep ordinary ids out, are documented in docs/contract.md ("Payload PII").
const (
	PIIEmail PIIKind = "email" // local@domain.tld: at least one dot in the domain, a TLD of 2+ letters
	PIIPhone PIIKind = "phone" // "+" and 8-15 digits, or a separated North-American 3-3-4 number
	PIICard  PIIKind = "card"  // 13-19 digits (single spaces or hyphens between), Luhn-valid, first digit 2-6
	PIISSN   PIIKind = "ssn"   // US SSN written ddd-dd-dddd, outside the never-issued ranges
	PIIIBAN  PIIKind = "iban"  // 2 capital letters, 2 check digits, 11-30 more; mod-97 == 1
)

// PIIKinds lists every PIIKind.
var PIIKinds = []PIIKind{PIIEmail, PIIPhone, PIICard, PIISSN, PIIIBAN}

var piiNames = map[PIIKind]string{
	PIIEmail: "an e-mail address", PIIPhone: "a phone number", PIICard: "a payment card number",
	PIISSN: "a US social security number", PIIIBAN: "an IBAN",
}

// PIIHit is one free string field of an event whose value looks like
// personal data.
type PIIHit struct {
	Field string  `json:"field"` // dotted path, fields[i] for a data category
	Kind  PIIKind `json:"kind"`  // the first kind found in the value
	// Masked is the value as MaskPII shows it (every letter and digit of
	// what looks like personal data replaced by '*'): safe to store and show.
	Masked string `json:"masked"`
}

// piiClean marks free string fields of an event (a bit each, below) whose
// value is known to hold nothing that looks like personal data: the
// decoder learns it from its Interner, which checks each shared value once.
type piiClean uint64

// The bits of piiClean: one per free string field, in the order of
// piiFields (which relies on it), then one per data category (cleanField).
const (
	cleanEventID piiClean = 1 << iota
	cleanTenant
	cleanActorRole
	cleanActorVendor
	cleanStore
	cleanResourceType
	cleanResourceID
	cleanPurpose
	cleanConversationID
	cleanTool
	cleanCountry
	cleanUserAgent
	cleanDestination
	cleanFields0 // fields[0]; fields[i] is cleanFields0 << i
)

// cleanField is the bit of fields[i], 0 (none: always scanned) past the
// bits of a piiClean.
func cleanField(i int) piiClean {
	if i >= 64-13 {
		return 0
	}
	return cleanFields0 << i
}

// piiFields calls fn with the path and a pointer to each free string field
// of e whose bit is not set in skip, in a fixed order (path "fields" with
// idx >= 0 for a data category, idx -1 otherwise). The raw customer and
// actor ids (subject_id, conversation.subject_id, actor.id) are not free
// text: they are ids by contract, pseudonymized (subject ids) or shown as
// the actor, so an e-mail used as an id is not payload PII.
func piiFields(e *Event, skip piiClean, fn func(path string, idx int, v *string)) {
	// the fields in the order of their bits: entry i is bit i, then
	// cleanPurpose+i
	for i, f := range [...]struct {
		path string
		v    *string
	}{
		{"event_id", &e.EventID}, {"tenant", &e.Tenant}, {"actor.role", &e.Actor.Role},
		{"actor.vendor", &e.Actor.Vendor}, {"store", &e.Store}, {"resource.type", &e.Resource.Type},
		{"resource.id", &e.Resource.ID},
	} {
		if skip&(cleanEventID<<i) == 0 {
			fn(f.path, -1, f.v)
		}
	}
	for i := range e.Fields {
		if skip&cleanField(i) == 0 {
			fn("fields", i, &e.Fields[i])
		}
	}
	for i, f := range [...]struct {
		path string
		v    *string
	}{
		{"purpose", &e.Purpose}, {"conversation.id", &e.Conversation.ID}, {"tool", &e.Tool},
		{"client.country", &e.Client.Country}, {"client.user_agent", &e.Client.UserAgent},
		{"destination", &e.Destination},
	} {
		if skip&(cleanPurpose<<i) == 0 {
			fn(f.path, -1, f.v)
		}
	}
}

func piiPath(path string, idx int) string {
	if idx < 0 {
		return path
	}
	return fmt.Sprintf("%s[%d]", path, idx)
}

// FindPII returns the first free string field of e whose value looks like
// personal data, in the order of piiFields.
func FindPII(e *Event) (PIIHit, bool) { return findPII(e, 0) }

// FindPII is FindPII of e, which DecodeAccessTo has just decoded through
// in (and nothing has changed since): the fields whose value the Interner
// knows to hold no personal data are not scanned again. For any other
// event it is FindPII.
func (in *Interner) FindPII(e *Event) (PIIHit, bool) {
	if e != in.cleanOf {
		return FindPII(e)
	}
	return findPII(e, in.clean)
}

// findPII is FindPII passing over the fields marked in clean.
func findPII(e *Event, clean piiClean) (PIIHit, bool) {
	var (
		hit   PIIHit
		found bool
	)
	piiFields(e, clean, func(path string, idx int, v *string) {
		if found {
			return
		}
		if k, ok := PIIIn(*v); ok {
			hit, found = PIIHit{Field: piiPath(path, idx), Kind: k, Masked: MaskPII(*v)}, true
		}
	})
	return hit, found
}

// PseudonymizePII replaces each free string field of e that looks like
// personal data with hash(field, value) and returns the fields it found. The
// tenant is never replaced (it keys the pseudonyms): a tenant that looks
// like personal data is returned with Field "tenant" and left as it is; the
// caller dead-letters such an event.
func PseudonymizePII(e *Event, hash func(field, v string) string) []PIIHit {
	var hits []PIIHit
	piiFields(e, 0, func(path string, idx int, v *string) {
		k, ok := PIIIn(*v)
		if !ok {
			return
		}
		h := PIIHit{Field: piiPath(path, idx), Kind: k, Masked: MaskPII(*v)}
		hits = append(hits, h)
		if path != "tenant" {
			*v = hash(h.Field, *v)
		}
	})
	return hits
}

// PIIError is the pii_in_payload rejection of h. Its detail names the kind,
// never the value.
func PIIError(h PIIHit) *ValidationError {
	return verr(ReasonPIIInPayload, h.Field, "value looks like %s (%s); events carry data categories, never data", piiNames[h.Kind], h.Kind)
}

// PIIIn reports whether s contains something that looks like personal data,
// and the first kind found. It is cheap on ordinary ids: a string with no
// '@' and fewer than 8 digits is passed over in one loop.
func PIIIn(s string) (PIIKind, bool) {
	var kind PIIKind
	found := false
	scanPII(s, func(k PIIKind, _, _ int) bool {
		kind, found = k, true
		return false
	})
	return kind, found
}

// MaskPII returns s with the letters and digits of every span that looks
// like personal data replaced by '*' (separators and length kept). It masks
// until nothing is found: masking one span can set a neighbour apart (a
// number glued to an e-mail's domain).
func MaskPII(s string) string {
	for {
		m := maskOnce(s)
		if m == s {
			return m
		}
		s = m
	}
}

func maskOnce(s string) string {
	var b []byte
	scanPII(s, func(_ PIIKind, lo, hi int) bool {
		if b == nil {
			b = []byte(s)
		}
		for i := lo; i < hi; i++ {
			if isAlnum(b[i]) {
				b[i] = '*'
			}
		}
		return true
	})
	if b == nil {
		return s
	}
	return string(b)
}

// MaskPIIJSON returns the JSON message b with every string token (keys and
// values, known fields or not, ids included) that looks like personal data
// masked as MaskPII does, so that a dead-letter copy holds no such data. A
// token with escapes is decoded, masked and encoded again. It does not
// validate b; bytes outside string tokens are copied as they are.
func MaskPIIJSON(b []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		j, escaped := i+1, false
		for j < len(b) && b[j] != '"' {
			if b[j] == '\\' {
				escaped = true
				j++
			}
			j++
		}
		if j >= len(b) {
			break
		}
		tok := b[i : j+1]
		var s string
		if escaped {
			if json.Unmarshal(tok, &s) != nil {
				i = j
				continue
			}
		} else {
			s = string(tok[1 : len(tok)-1])
		}
		if m := MaskPII(s); m != s {
			if out == nil {
				out = make([]byte, 0, len(b))
			}
			out = append(out, b[last:i]...)
			enc, _ := json.Marshal(m) // a valid string always encodes
			out = append(out, enc...)
			last = j + 1
		}
		i = j
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool {
	return isDigit(c) || isUpper(c) || (c >= 'a' && c <= 'z')
}

// scanPII calls fn with each span [lo, hi) of s that looks like personal
// data, until fn returns false.
func scanPII(s string, fn func(k PIIKind, lo, hi int) bool) {
	digits, at := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '@':
			at = true
		}
	}
	if !at && digits < 8 { // the least any kind below needs (an e-mail aside)
		return
	}
	if at && !scanEmails(s, fn) {
		return
	}
	if digits < 8 {
		return
	}
	for i := 0; i < len(s); {
		c := s[i]
		if i > 0 && isAlnum(s[i-1]) {
			i++
			continue
		}
		if isUpper(c) {
			if hi, ok := iban(s, i); ok {
				if !fn(PIIIBAN, i, hi) {
					return
				}
				i = hi
				continue
			}
		}
		if isDigit(c) || c == '+' || c == '(' {
			hi, k, ok := number(s, i)
			if ok {
				if !fn(k, i, hi) {
					return
				}
			}
			i = max(hi, i+1)
			continue
		}
		i++
	}
}

func isLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isDomain(c byte) bool { return isAlnum(c) || c == '-' || c == '.' }

// scanEmails reports e-mail addresses around each '@'; false if fn stopped.
func scanEmails(s string, fn func(k PIIKind, lo, hi int) bool) bool {
	for at := strings.IndexByte(s, '@'); at >= 0; {
		lo := at
		for lo > 0 && isLocal(s[lo-1]) {
			lo--
		}
		hi := at + 1
		for hi < len(s) && isDomain(s[hi]) {
			hi++
		}
		for hi > at+1 && s[hi-1] == '.' { // a sentence's full stop
			hi--
		}
		if lo < at && validDomain(s[at+1:hi]) {
			if !fn(PIIEmail, lo, hi) {
				return false
			}
		}
		next := strings.IndexByte(s[at+1:], '@')
		if next < 0 {
			break
		}
		at += 1 + next
	}
	return true
}

// validDomain: labels separated by single dots, at least two, the last
// (the TLD) of 2+ letters.
func validDomain(d string) bool {
	dot := strings.LastIndexByte(d, '.')
	if dot <= 0 || strings.Contains(d, "..") || d[0] == '.' || d[0] == '-' {
		return false
	}
	tld := d[dot+1:]
	if len(tld) < 2 {
		return false
	}
	for i := 0; i < len(tld); i++ {
		if c := tld[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// number reads a number-like run at s[i:] (digits with single separators
// ' ', '-', '.', and a leading '+' or area code in parentheses) and reports
// whether it is a card, an SSN or a phone number. hi is the end of the run.
func number(s string, i int) (hi int, kind PIIKind, ok bool) {
	var (
		d      [24]byte // the digits
		nd     int
		groups [8]int // digits per group
		ng     int
		seps   string // the separators seen, in order (at most a few kept)
		plus   bool
		paren  bool
	)
	j := i
	if s[j] == '+' {
		plus = true
		j++
	} else if s[j] == '(' {
		paren = true
		j++
	}
	if j >= len(s) || !isDigit(s[j]) {
		return i + 1, "", false
	}
	end := j
	for j < len(s) {
		c := s[j]
		if isDigit(c) {
			if nd < len(d) {
				d[nd] = c
			}
			nd++
			if ng == 0 {
				ng = 1
			}
			if ng <= len(groups) {
				groups[ng-1]++
			}
			j++
			end = j
			continue
		}
		sep := c == ' ' || c == '-' || c == '.' || (c == ')' && paren && ng == 1 && len(seps) == 0)
		if !sep || j+1 >= len(s) {
			break
		}
		nx := s[j+1]
		if c == ')' && nx == ' ' && j+2 < len(s) && isDigit(s[j+2]) {
			j++ // "(212) 555-0100"
		} else if !isDigit(nx) {
			break
		}
		if len(seps) < 8 {
			seps += string(c)
		}
		ng++
		j++
	}
	hi = end
	if hi < len(s) && isAlnum(s[hi]) { // part of a longer token
		return hi, "", false
	}
	if nd > len(d) {
		return hi, "", false
	}
	digits := d[:nd]
	if nd >= 13 && nd <= 19 && !plus && !paren && uniform(seps, " -") && luhn(digits) && digits[0] >= '2' && digits[0] <= '6' {
		return hi, PIICard, true
	}
	if nd == 9 && seps == "--" && groups[0] == 3 && groups[1] == 2 && groups[2] == 4 && !plus && !paren && ssnValid(digits) {
		return hi, PIISSN, true
	}
	if plus && nd >= 8 && nd <= 15 && uniform(seps, " -.") {
		return hi, PIIPhone, true
	}
	if nd == 10 && ng == 3 && groups[0] == 3 && groups[1] == 3 && groups[2] == 4 && !plus &&
		(paren || (len(seps) == 2 && seps[0] == seps[1])) {
		return hi, PIIPhone, true
	}
	return hi, "", false
}

// uniform: every separator in seps is one of allowed and all are the same.
func uniform(seps, allowed string) bool {
	for i := 0; i < len(seps); i++ {
		if !strings.ContainsRune(allowed, rune(seps[i])) || seps[i] != seps[0] {
			return false
		}
	}
	return true
}

func luhn(d []byte) bool {
	sum := 0
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if (len(d)-1-i)%2 == 1 {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return sum%10 == 0
}

// ssnValid: not area 000, 666 or 9xx, group 00 or serial 0000.
func ssnValid(d []byte) bool {
	area, group, serial := string(d[:3]), string(d[3:5]), string(d[5:9])
	return area != "000" && area != "666" && d[0] != '9' && group != "00" && serial != "0000"
}

// iban reads an IBAN at s[i:] (country letters, check digits, then capital
// letters and digits, optionally in space-separated groups of 4) and checks
// its mod-97.
func iban(s string, i int) (int, bool) {
	if i+4 > len(s) || !isUpper(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) {
		return 0, false
	}
	var buf [34]byte
	n, j, end := 0, i, i
	for j < len(s) && n <= len(buf) {
		c := s[j]
		if isDigit(c) || isUpper(c) {
			if n < len(buf) {
				buf[n] = c
			}
			n++
			j++
			end = j
			continue
		}
		if c == ' ' && j+1 < len(s) && (isDigit(s[j+1]) || isUpper(s[j+1])) && n%4 == 0 {
			j++
			continue
		}
		break
	}
	if n < 15 || n > 34 || (end < len(s) && isAlnum(s[end])) {
		return 0, false
	}
	// mod-97 of the rearranged number, letters as 10..35, digit by digit.
	rem := 0
	for k := 0; k < n; k++ {
		c := buf[(k+4)%n]
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			rem = (rem*100 + int(c-'A'+10)) % 97
		}
	}
	return end, rem == 1
}
