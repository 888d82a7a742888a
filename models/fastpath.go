package models

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// The fast path parses the common, well-formed access.v1 message in one pass
// without reflection. It accepts only messages for which encoding/json and
// checkKeys would produce exactly the wireAccess it builds and no error:
// plain strings (no escapes), canonical known keys given once, values of the
// expected JSON type, unknown keys that no known key matches under case
// folding. On anything else it gives up (ok false) and DecodeAccess takes the
// reflective path, which produces the error or the unusual value. A test and
// a fuzz target check that both paths agree on every input.

type fastParser struct {
	b  []byte
	i  int
	in *Interner // nil: every string is its own copy
	// clean marks the free string fields read so far whose value the
	// Interner knows to hold no personal data.
	clean piiClean
}

// Interner shares one copy of each repeated string value among the events
// it decodes (DecodeAccessInterned): tenants, stores, actions, actor ids,
// roles and types, purposes, tools, user agents, data categories repeat
// from event to event, so a batch holds each once instead of once per
// event. It keeps at most maxInterned strings of at most maxInternLen
// bytes; others are copied as usual. It also remembers whether each value
// it holds looks like personal data (PIIIn), so that the payload PII check
// scans a repeated value once, not once per event. Not safe for concurrent
// use: one per decoding goroutine, for example one per batch and worker.
type Interner struct {
	m map[string]*interned
	// recent holds, per field (a slot), the interned values that field
	// had lately, by recentIndex of the value: most fields take a few
	// values, and comparing with one string is cheaper than a map
	// look-up. It only ever holds values the map holds.
	recent [numSlots][recentSize]*interned
	// The decoding scratch of DecodeAccessTo and DecodeAccessInterned: the
	// wire form of the message being decoded, reused from message to
	// message.
	w     wireAccess
	actor wireActor
	res   Resource
	ev    Event // DecodeAccessInterned's event while it is filled
	// clean is the PII-free mask of the event DecodeAccessTo last
	// decoded into cleanOf (see FindPII).
	clean   piiClean
	cleanOf *Event
}

// interned is one shared value.
type interned struct {
	s     string
	clean bool // PIIIn(s) finds nothing
	ip    bool // validIP(s); only looked at for a value first seen as client.ip (false: not known)
}

// Bounds of an Interner.
const (
	maxInterned  = 4096
	maxInternLen = 128
	recentSize   = 16 // a power of two
)

// recentIndex spreads a slot's values over its recent entries: by length
// and last two bytes, where ids and names of one field differ (actor ids
// "assistant-0099", "assistant-0100").
func recentIndex(b []byte) int {
	n := len(b)
	if n < 2 {
		return n
	}
	return (n + int(b[n-1]) + 5*int(b[n-2])) & (recentSize - 1)
}

// The Interner's slots: one per field whose value it shares (its recent
// values there are tried before the map).
const (
	slotSchema = iota
	slotTenant
	slotAction
	slotStore
	slotPurpose
	slotTool
	slotResult
	slotDestination
	slotActorID
	slotActorType
	slotActorRole
	slotActorVendor
	slotResourceType
	slotCountry
	slotUserAgent
	slotClientIP
	slotField // the first data category; the next ones each their own slot, the fifth on sharing one
	numSlots  = slotField + 5
)

// NewInterner returns an empty Interner.
func NewInterner() *Interner { return &Interner{m: make(map[string]*interned, 64)} }

// get returns the shared value equal to b, or nil when it holds none and
// may hold no more (too long, or the Interner is full).
// The value is first compared with the slot's recent one at b's index.
func (in *Interner) get(slot int, b []byte) *interned {
	r := &in.recent[slot][recentIndex(b)]
	if v := *r; v != nil && v.s == string(b) {
		return v
	}
	if v, ok := in.m[string(b)]; ok {
		*r = v
		return v
	}
	if len(in.m) >= maxInterned || len(b) > maxInternLen {
		return nil
	}
	s := string(b)
	_, pii := PIIIn(s)
	v := &interned{s: s, clean: !pii, ip: slot == slotClientIP && validIP(s)}
	in.m[s] = v
	*r = v
	return v
}

// ptr returns a pointer to b as a string, both shared with earlier equal
// ones (the decoder's optional fields are pointers; nothing writes
// through them), and whether the value is known to hold no personal data.
func (in *Interner) ptr(slot int, b []byte) (*string, bool) {
	if in != nil {
		if v := in.get(slot, b); v != nil {
			return &v.s, v.clean
		}
	}
	s := string(b)
	return &s, false
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, or 0 at the end.
func (p *fastParser) peek() byte {
	// Messages seldom hold white space between tokens: a byte above ' '
	// is none, and is returned without the loop.
	if p.i < len(p.b) && p.b[p.i] > ' ' {
		return p.b[p.i]
	}
	p.ws()
	if p.i >= len(p.b) {
		return 0
	}
	return p.b[p.i]
}

func (p *fastParser) eat(c byte) bool {
	if p.peek() != c {
		return false
	}
	p.i++
	return true
}

// plainString reads a string token with no escapes and no control
// characters and returns its content (a copy, so events do not pin the
// message buffer).
func (p *fastParser) plainString() (string, bool) {
	b, ok := p.plainBytes()
	return string(b), ok
}

// internString is plainString for a value that repeats across events: the
// copy is shared through p.in. The value's bit in p.clean is set when the
// Interner knows it to hold no personal data.
func (p *fastParser) internString(slot int, bit piiClean) (string, bool) {
	b, ok := p.plainBytes()
	if !ok {
		return "", false
	}
	if p.in == nil {
		return string(b), true
	}
	v, clean := p.in.ptr(slot, b)
	if clean {
		p.clean |= bit
	}
	return *v, true
}

// plainBytes reads a string token with no escapes and no control
// characters and returns its content, not copied.
func (p *fastParser) plainBytes() ([]byte, bool) {
	if p.peek() != '"' {
		return nil, false
	}
	start := p.i + 1
	j := start
	// eight bytes at a time while none of them stops the walk
	for ; j+8 <= len(p.b) && !stopIn8(binary.LittleEndian.Uint64(p.b[j:])); j += 8 {
	}
	for ; j < len(p.b); j++ {
		if c := p.b[j]; stringStop[c] {
			if c == '"' {
				p.i = j + 1
				return p.b[start:j], true
			}
			return nil, false
		}
	}
	return nil, false
}

// stopIn8 reports whether one of the eight bytes in x is '"', '\\' or a
// control character (below 0x20): the exact "has a zero byte" test
// (v-0x01..)&^v&0x80.. on x^'"' and x^'\\', and its "has a byte below n"
// form (n <= 0x80) on x.
func stopIn8(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q, bs := x^(lo*'"'), x^(lo*'\\')
	return ((q-lo)&^q|(bs-lo)&^bs|(x-lo*0x20)&^x)&hi != 0
}

// stringStop marks the bytes that end plainBytes' walk through a string:
// its closing quote, or what it gives up on (an escape, a control
// character). One look-up per byte instead of three comparisons.
var stringStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// key reads an object key without copying it: plain, ASCII only (a
// non-ASCII key could match a known key under encoding/json's Unicode case
// folding).
func (p *fastParser) key() ([]byte, bool) {
	if p.peek() != '"' {
		return nil, false
	}
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		c := p.b[j]
		if c == '"' {
			p.i = j + 1
			if !p.eat(':') {
				return nil, false
			}
			return p.b[start:j], true
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return nil, false
		}
	}
	return nil, false
}

// number reads a JSON number token and returns its bytes (not copied: the
// caller parses them before the message goes).
func (p *fastParser) number() ([]byte, bool) {
	p.ws()
	b, i := p.b, p.i
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	p.i = i
	return b[start:i:i], true
}

// skip validates and skips any JSON value (of an unknown key).
func (p *fastParser) skip(depth int) bool {
	if depth > maxNesting {
		return false
	}
	switch p.peek() {
	case '"':
		return p.skipString()
	case '{':
		p.i++
		if p.eat('}') {
			return true
		}
		for {
			if p.peek() != '"' || !p.skipString() || !p.eat(':') || !p.skip(depth+1) {
				return false
			}
			if p.eat('}') {
				return true
			}
			if !p.eat(',') {
				return false
			}
		}
	case '[':
		p.i++
		if p.eat(']') {
			return true
		}
		for {
			if !p.skip(depth + 1) {
				return false
			}
			if p.eat(']') {
				return true
			}
			if !p.eat(',') {
				return false
			}
		}
	case 't':
		return p.literal("true")
	case 'f':
		return p.literal("false")
	case 'n':
		return p.literal("null")
	default:
		_, ok := p.number()
		return ok
	}
}

func (p *fastParser) literal(s string) bool {
	if !strings.HasPrefix(string(p.b[p.i:min(len(p.b), p.i+len(s))]), s) {
		return false
	}
	p.i += len(s)
	return true
}

// skipString validates a string token, escapes included.
func (p *fastParser) skipString() bool {
	b := p.b
	for j := p.i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			p.i = j + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			j++
			if j >= len(b) {
				return false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return false
				}
				for _, h := range b[j+1 : j+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				j += 4
			default:
				return false
			}
		}
	}
	return false
}

// fastKeys is a list of known keys with a table to find a key's index by
// its length and end bytes (keyHash) and one comparison, instead of a
// comparison with each key in turn.
type fastKeys struct {
	keys   []string
	quoted []string         // each key as a message gives it when its value follows at once: "key":
	tab    [keyTabSize]int8 // by keyHash: 1 + the index in keys of the one key there, 0 for none
}

// keyTabSize is the size of a fastKeys's table (a power of two).
const keyTabSize = 64

// keyHash places a non-empty key in a fastKeys's table.
func keyHash(k []byte) int {
	n := len(k)
	return (n + 4*int(k[0]) + 3*int(k[n-1])) & (keyTabSize - 1)
}

// newFastKeys returns the fastKeys of keys, which must be non-empty, distinct
// and have distinct keyHash values (fewer than 32 of them: object keeps a
// bit per key).
func newFastKeys(keys ...string) *fastKeys {
	if len(keys) >= 32 {
		panic("models: too many keys in a key set")
	}
	ks := &fastKeys{keys: keys}
	for i, k := range keys {
		ks.quoted = append(ks.quoted, `"`+k+`":`)
		h := keyHash([]byte(k))
		if ks.tab[h] != 0 {
			panic(fmt.Sprintf("models: keys %q and %q share a keyHash", keys[ks.tab[h]-1], k))
		}
		ks.tab[h] = int8(i + 1)
	}
	return ks
}

// index returns the index of k in ks.keys, or -1.
func (ks *fastKeys) index(k []byte) int {
	if len(k) == 0 {
		return -1
	}
	i := int(ks.tab[keyHash(k)]) - 1
	if i < 0 || ks.keys[i] != string(k) {
		return -1
	}
	return i
}

// object walks an object, calling member with the index in known of each
// known key. member returns false
// to give up. A key seen twice, or an unknown key that case-folds to a known
// one, gives up too; unknown keys are validated and skipped.
func (p *fastParser) object(known *fastKeys, member func(k int) bool) bool {
	if !p.eat('{') {
		return false
	}
	if p.eat('}') {
		return true
	}
	var seen uint32 // bit i: known[i] was given
	idx := -1
	for {
		// Messages mostly give the known keys in the order of the list
		// (most producers write one struct): the key after the previous
		// one is tried first, as the bytes "key": right here, which are
		// that key token and its colon and nothing else.
		if next := idx + 1; next < len(known.quoted) && bytes.HasPrefix(p.b[p.i:], []byte(known.quoted[next])) {
			p.i += len(known.quoted[next])
			idx = next
		} else {
			k, ok := p.key()
			if !ok {
				return false
			}
			// An exact match first: no two known keys are equal under case
			// folding, so a key equal to one is equal under folding to no
			// other. Only a key that is none of them is compared under
			// folding.
			idx = known.index(k)
			if idx < 0 {
				for _, kk := range known.keys {
					if bytes.EqualFold([]byte(kk), k) {
						return false
					}
				}
			}
		}
		if idx >= 0 {
			if seen&(1<<idx) != 0 || !member(idx) {
				return false
			}
			seen |= 1 << idx
		} else if !p.skip(1) {
			return false
		}
		if p.eat('}') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
}

// str stores a plain string value.
func (p *fastParser) str(dst *string) bool {
	s, ok := p.plainString()
	*dst = s
	return ok
}

// istr stores a plain string value that repeats across events (interned);
// bit is the value's field in p.clean (0: a field the PII check skips).
func (p *fastParser) istr(slot int, bit piiClean, dst *string) bool {
	s, ok := p.internString(slot, bit)
	*dst = s
	return ok
}

// istrp stores a repeating plain string value behind a pointer, shared
// through p.in; bit is as for istr.
func (p *fastParser) istrp(slot int, bit piiClean, dst **string) bool {
	b, ok := p.plainBytes()
	if ok {
		var clean bool
		*dst, clean = p.in.ptr(slot, b)
		if clean {
			p.clean |= bit
		}
	}
	return ok
}

// strIn stores a plain string value in *s and points *dst at it (the
// wire form's own storage: no pointer allocated per value).
func (p *fastParser) strIn(s *string, dst **string) bool {
	v, ok := p.plainString()
	if ok {
		*s = v
		*dst = s
	}
	return ok
}

// The key lists of the fast path; the constants below are indexes into
// them (TestFastKeyIndexes checks that they agree).
var (
	fastTopKeys   = newFastKeys("schema", "event_id", "ts", "tenant", "actor", "action", "store", "resource", "subject_id", "records", "bytes", "fields", "purpose", "conversation", "tool", "result", "client", "destination")
	fastActorKeys = newFastKeys("id", "type", "role", "vendor")
	fastResKeys   = newFastKeys("type", "id")
	fastConvKeys  = newFastKeys("id", "subject_id")
	fastClientKey = newFastKeys("ip", "country", "user_agent")
)

// Indexes of the keys in fastTopKeys, fastActorKeys, fastResKeys,
// fastConvKeys and fastClientKey.
const (
	keySchema = iota
	keyEventID
	keyTS
	keyTenant
	keyActor
	keyAction
	keyStore
	keyResource
	keySubjectID
	keyRecords
	keyBytes
	keyFields
	keyPurpose
	keyConversation
	keyTool
	keyResult
	keyClient
	keyDestination
)

const (
	keyActorID = iota
	keyActorType
	keyActorRole
	keyActorVendor
)

const (
	keyResourceType = iota
	keyResourceID
)

const (
	keyConvID = iota
	keyConvSubjectID
)

const (
	keyClientIP = iota
	keyClientCountry
	keyClientUserAgent
)

// fastAccess parses b into w; ok false means "use the reflective path".
func fastAccess(b []byte, w *wireAccess) bool { return fastAccessIn(b, w, nil) }

// fastAccessIn is fastAccess sharing the values that repeat across events
// through in (nil: none are).
func fastAccessIn(b []byte, w *wireAccess, in *Interner) bool {
	p := fastParser{b: b, in: in}
	ok := p.object(fastTopKeys, func(k int) bool {
		switch k {
		case keySchema:
			return p.istr(slotSchema, 0, &w.Schema)
		case keyEventID:
			return p.strIn(&w.eventID, &w.EventID)
		case keyTS:
			return p.ts(w)
		case keyTenant:
			return p.istr(slotTenant, cleanTenant, &w.Tenant)
		case keyAction:
			return p.istrp(slotAction, 0, &w.Action)
		case keyStore:
			return p.istrp(slotStore, cleanStore, &w.Store)
		case keySubjectID:
			return p.str(&w.SubjectID)
		case keyPurpose:
			return p.istr(slotPurpose, cleanPurpose, &w.Purpose)
		case keyTool:
			return p.istr(slotTool, cleanTool, &w.Tool)
		case keyResult:
			return p.istr(slotResult, 0, &w.Result)
		case keyDestination:
			return p.istr(slotDestination, cleanDestination, &w.Destination)
		case keyRecords:
			n, ok := p.number()
			w.Records = n
			return ok
		case keyBytes:
			n, ok := p.number()
			w.Bytes = n
			return ok
		case keyFields:
			return p.strings(&w.Fields)
		case keyActor:
			var a *wireActor // the Interner's scratch, else a new one
			if in != nil {
				in.actor = wireActor{}
				a = &in.actor
			} else {
				a = &wireActor{}
			}
			w.Actor = a
			return p.object(fastActorKeys, func(k int) bool {
				switch k {
				case keyActorID:
					return p.istrp(slotActorID, 0, &a.ID)
				case keyActorType:
					return p.istrp(slotActorType, 0, &a.Type)
				case keyActorRole:
					return p.istr(slotActorRole, cleanActorRole, &a.Role)
				default:
					return p.istr(slotActorVendor, cleanActorVendor, &a.Vendor)
				}
			})
		case keyResource:
			var r *Resource // the Interner's scratch, else a new one
			if in != nil {
				in.res = Resource{}
				r = &in.res
			} else {
				r = &Resource{}
			}
			w.Resource = r
			return p.object(fastResKeys, func(k int) bool {
				if k == keyResourceType {
					return p.istr(slotResourceType, cleanResourceType, &r.Type)
				}
				return p.str(&r.ID)
			})
		case keyConversation:
			c := &w.Conversation
			return p.object(fastConvKeys, func(k int) bool {
				if k == keyConvID {
					return p.str(&c.ID)
				}
				return p.strLike(w.SubjectID, &c.SubjectID)
			})
		default: // client
			c := &w.Client
			return p.object(fastClientKey, func(k int) bool {
				switch k {
				case keyClientIP:
					return p.ip(&c.IP, &w.ipValid)
				case keyClientCountry:
					return p.istr(slotCountry, cleanCountry, &c.Country)
				default:
					return p.istr(slotUserAgent, cleanUserAgent, &c.UserAgent)
				}
			})
		}
	})
	if !ok || p.peek() != 0 {
		return false
	}
	w.clean = p.clean
	return true
}

// ts stores the plain string value of ts: parsed into w.tsTime when it has
// the common form (parseUTCTime), else copied for time.Parse (w.TS).
func (p *fastParser) ts(w *wireAccess) bool {
	b, ok := p.plainBytes()
	if !ok {
		return false
	}
	if t, ok := parseUTCTime(b); ok {
		w.tsTime, w.tsParsed = t, true
		return true
	}
	w.ts = string(b)
	w.TS = &w.ts
	return true
}

// strLike stores a plain string value, sharing like's copy when it is
// equal (a conversation's subject is mostly the event's).
func (p *fastParser) strLike(like string, dst *string) bool {
	b, ok := p.plainBytes()
	switch {
	case !ok:
	case like != "" && string(b) == like:
		*dst = like
	default:
		*dst = string(b)
	}
	return ok
}

// ip stores the plain string value of client.ip, shared through p.in
// (addresses repeat), and sets *valid when the Interner knows it to be a
// valid address.
func (p *fastParser) ip(dst *string, valid *bool) bool {
	b, ok := p.plainBytes()
	if !ok {
		return false
	}
	if p.in != nil {
		if v := p.in.get(slotClientIP, b); v != nil {
			*dst, *valid = v.s, v.ip
			return true
		}
	}
	*dst = string(b)
	return true
}

// strings reads an array of plain strings; an empty array is an empty,
// non-nil slice, as encoding/json makes it. The values are gathered in a
// small array first, so that the slice is allocated once, at its length.
func (p *fastParser) strings(dst *[]string) bool {
	if !p.eat('[') {
		return false
	}
	var buf [8]string
	out := buf[:0]
	if !p.eat(']') {
		for {
			i := len(out)
			s, ok := p.internString(slotField+min(i, 4), cleanField(i))
			if !ok {
				return false
			}
			out = append(out, s)
			if p.eat(']') {
				break
			}
			if !p.eat(',') {
				return false
			}
		}
	}
	*dst = append(make([]string, 0, len(out)), out...)
	return true
}

// parseUTCTime parses the common form of an event time,
// 2006-01-02T15:04:05Z with an optional fraction of 1 to 9 digits, as
// time.Parse(time.RFC3339Nano) would, without a string to copy. ok false
// means "not that form": time.Parse decides (and names the error).
func parseUTCTime(b []byte) (t time.Time, ok bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return time.Time{}, false
	}
	num := func(lo, hi int) int {
		n := 0
		for _, c := range b[lo:hi] {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(0, 4), num(5, 7), num(8, 10)
	hour, minute, sec := num(11, 13), num(14, 16), num(17, 19)
	if year < 0 || month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		if len(frac) < 2 || len(frac) > 10 || frac[0] != '.' {
			return time.Time{}, false
		}
		if nsec = num(20, len(b)-1); nsec < 0 {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			nsec *= 10
		}
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

// daysIn is the number of days in month of year (Gregorian, as time uses).
func daysIn(month time.Month, year int) int {
	if month == time.February {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	return 30 + int((month+month/8)%2)
}
