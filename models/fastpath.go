package models

import (
	"bytes"
	"strings"
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
}

// Interner shares one copy of each repeated string value among the events
// it decodes (DecodeAccessInterned): tenants, stores, actions, actor ids,
// roles and types, purposes, tools, user agents, data categories repeat
// from event to event, so a batch holds each once instead of once per
// event. It keeps at most maxInterned strings of at most maxInternLen
// bytes; others are copied as usual. Not safe for concurrent use: one per
// decoding goroutine, for example one per batch and worker.
type Interner struct {
	m map[string]*string
	// last holds, per field (a slot), the interned value that field had
	// in the latest message: most fields repeat from one event to the
	// next, and comparing with one string is cheaper than a map look-up.
	last [numSlots]*string
	// The decoding scratch of DecodeAccessTo and DecodeAccessInterned: the
	// wire form of the message being decoded, reused from message to
	// message.
	w     wireAccess
	actor wireActor
	res   Resource
	ev    Event // DecodeAccessInterned's event while it is filled
}

// Bounds of an Interner.
const (
	maxInterned  = 4096
	maxInternLen = 128
)

// The Interner's slots: one per field whose value it shares (its last
// value there is tried before the map).
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
	slotField // the first data category; the next ones each their own slot, the fifth on sharing one
	numSlots  = slotField + 5
)

// NewInterner returns an empty Interner.
func NewInterner() *Interner { return &Interner{m: make(map[string]*string, 64)} }

// bytes returns b as a string, shared with earlier equal ones.
func (in *Interner) bytes(slot int, b []byte) string {
	if in == nil {
		return string(b)
	}
	return *in.ptr(slot, b)
}

// ptr returns a pointer to b as a string, both shared with earlier equal
// ones (the decoder's optional fields are pointers; nothing writes
// through them).
// The value is first compared with the slot's last one (the same field's
// in the previous message); the slot only ever holds a value the map holds.
func (in *Interner) ptr(slot int, b []byte) *string {
	if in == nil {
		s := string(b)
		return &s
	}
	if p := in.last[slot]; p != nil && *p == string(b) {
		return p
	}
	if p, ok := in.m[string(b)]; ok {
		in.last[slot] = p
		return p
	}
	s := string(b)
	p := &s
	if len(in.m) < maxInterned && len(b) <= maxInternLen {
		in.m[s] = p
		in.last[slot] = p
	}
	return p
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
// copy is shared through p.in.
func (p *fastParser) internString(slot int) (string, bool) {
	b, ok := p.plainBytes()
	if !ok {
		return "", false
	}
	return p.in.bytes(slot, b), true
}

// plainBytes reads a string token with no escapes and no control
// characters and returns its content, not copied.
func (p *fastParser) plainBytes() ([]byte, bool) {
	if p.peek() != '"' {
		return nil, false
	}
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		c := p.b[j]
		if c == '"' {
			p.i = j + 1
			return p.b[start:j], true
		}
		if c == '\\' || c < 0x20 {
			return nil, false
		}
	}
	return nil, false
}

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

// object walks an object, calling member with the index in known of each
// known key. member returns false
// to give up. A key seen twice, or an unknown key that case-folds to a known
// one, gives up too; unknown keys are validated and skipped.
func (p *fastParser) object(known []string, member func(k int) bool) bool {
	if !p.eat('{') {
		return false
	}
	if p.eat('}') {
		return true
	}
	var seen uint32 // bit i: known[i] was given
	for {
		k, ok := p.key()
		if !ok {
			return false
		}
		// An exact match first: no two known keys are equal under case
		// folding, so a key equal to one is equal under folding to no other.
		// Only a key that is none of them is compared under folding.
		idx := -1
		for i, kk := range known {
			if kk == string(k) {
				idx = i
				break
			}
		}
		if idx < 0 {
			for _, kk := range known {
				if bytes.EqualFold([]byte(kk), k) {
					return false
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

// istr stores a plain string value that repeats across events (interned).
func (p *fastParser) istr(slot int, dst *string) bool {
	s, ok := p.internString(slot)
	*dst = s
	return ok
}

// istrp stores a repeating plain string value behind a pointer, shared
// through p.in.
func (p *fastParser) istrp(slot int, dst **string) bool {
	b, ok := p.plainBytes()
	if ok {
		*dst = p.in.ptr(slot, b)
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
	fastTopKeys   = []string{"schema", "event_id", "ts", "tenant", "actor", "action", "store", "resource", "subject_id", "records", "bytes", "fields", "purpose", "conversation", "tool", "result", "client", "destination"}
	fastActorKeys = []string{"id", "type", "role", "vendor"}
	fastResKeys   = []string{"type", "id"}
	fastConvKeys  = []string{"id", "subject_id"}
	fastClientKey = []string{"ip", "country", "user_agent"}
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
			return p.istr(slotSchema, &w.Schema)
		case keyEventID:
			return p.strIn(&w.eventID, &w.EventID)
		case keyTS:
			return p.strIn(&w.ts, &w.TS)
		case keyTenant:
			return p.istr(slotTenant, &w.Tenant)
		case keyAction:
			return p.istrp(slotAction, &w.Action)
		case keyStore:
			return p.istrp(slotStore, &w.Store)
		case keySubjectID:
			return p.str(&w.SubjectID)
		case keyPurpose:
			return p.istr(slotPurpose, &w.Purpose)
		case keyTool:
			return p.istr(slotTool, &w.Tool)
		case keyResult:
			return p.istr(slotResult, &w.Result)
		case keyDestination:
			return p.istr(slotDestination, &w.Destination)
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
					return p.istrp(slotActorID, &a.ID)
				case keyActorType:
					return p.istrp(slotActorType, &a.Type)
				case keyActorRole:
					return p.istr(slotActorRole, &a.Role)
				default:
					return p.istr(slotActorVendor, &a.Vendor)
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
					return p.istr(slotResourceType, &r.Type)
				}
				return p.str(&r.ID)
			})
		case keyConversation:
			c := &w.Conversation
			return p.object(fastConvKeys, func(k int) bool {
				if k == keyConvID {
					return p.str(&c.ID)
				}
				return p.str(&c.SubjectID)
			})
		default: // client
			c := &w.Client
			return p.object(fastClientKey, func(k int) bool {
				switch k {
				case keyClientIP:
					return p.str(&c.IP)
				case keyClientCountry:
					return p.istr(slotCountry, &c.Country)
				default:
					return p.istr(slotUserAgent, &c.UserAgent)
				}
			})
		}
	})
	return ok && p.peek() == 0
}

// strings reads an array of plain strings; an empty array is an empty,
// non-nil slice, as encoding/json makes it.
func (p *fastParser) strings(dst *[]string) bool {
	if !p.eat('[') {
		return false
	}
	out := []string{}
	if !p.eat(']') {
		for {
			s, ok := p.internString(slotField + min(len(out), 4))
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
	*dst = out
	return true
}
