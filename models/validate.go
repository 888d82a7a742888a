package models

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Reason is a dead-letter reason code: why a message was rejected.
type Reason string

// The reason codes a message can be rejected with. They are stable: they are
// stored with dead letters and used as metric labels.
const (
	ReasonBadJSON      Reason = "bad_json"       // not a JSON object, or a known key given twice
	ReasonBadUTF8      Reason = "bad_utf8"       // bytes that are not UTF-8, or NUL characters
	ReasonMissingField Reason = "missing_field"  // a required field is absent or empty
	ReasonBadType      Reason = "bad_type"       // a field has the wrong JSON type
	ReasonBadEnum      Reason = "bad_enum"       // a value outside its enumeration
	ReasonBadValue     Reason = "bad_value"      // a value of the right type that is out of range or malformed
	ReasonTooLong      Reason = "too_long"       // a string or list over its length limit
	ReasonTSFuture     Reason = "ts_future"      // ts more than the allowed skew in the future
	ReasonTSTooOld     Reason = "ts_too_old"     // ts older than retention
	ReasonTooLarge     Reason = "too_large"      // the whole message is over the size limit
	ReasonBadSchema    Reason = "bad_schema"     // a schema name this decoder does not know
	ReasonPIIInPayload Reason = "pii_in_payload" // a free string field looks like personal data (see pii.go)

	// ReasonKeyTooLarge: the Kafka message key is over ingest's key limit.
	// Ingest checks it before decoding; the decoders never return it, so it
	// is not in Reasons.
	ReasonKeyTooLarge Reason = "key_too_large"
)

// Reasons lists every reason code the decoders return.
var Reasons = []Reason{ReasonBadJSON, ReasonBadUTF8, ReasonMissingField, ReasonBadType, ReasonBadEnum,
	ReasonBadValue, ReasonTooLong, ReasonTSFuture, ReasonTSTooOld, ReasonTooLarge, ReasonBadSchema, ReasonPIIInPayload}

// ValidationError says why an event was rejected: a reason code and the
// field at fault (dotted path; empty for whole-message errors).
type ValidationError struct {
	Code   Reason
	Field  string
	Detail string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.Code, e.Detail)
	}
	return fmt.Sprintf("%s: field %q: %s", e.Code, e.Field, e.Detail)
}

func verr(code Reason, field, format string, args ...any) *ValidationError {
	return &ValidationError{Code: code, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reason code of err, or "" if err is not a
// *ValidationError.
func ReasonOf(err error) Reason {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Code
	}
	return ""
}

// Limits bound what the decoder accepts. The zero value takes the defaults.
type Limits struct {
	// MaxMessageBytes is the largest message accepted (default 64 KiB).
	MaxMessageBytes int
	// MaxFuture is how far ahead of now a ts may be (default 24 h).
	MaxFuture time.Duration
	// MaxAge is how far behind now a ts may be, normally the retention
	// (default 90 days).
	MaxAge time.Duration
	// AllowPII skips the payload PII check of access.v1 (pii_in_payload):
	// the caller then pseudonymizes the fields itself (PseudonymizePII).
	AllowPII bool
}

// Default limits.
const (
	DefaultMaxMessageBytes = 64 << 10
	DefaultMaxFuture       = 24 * time.Hour
	DefaultMaxAge          = 90 * 24 * time.Hour
)

// Per-field length limits.
const (
	MaxEventIDLen   = 128
	MaxStringLen    = 256
	MaxUserAgentLen = 1024
	MaxFields       = 64
	maxNesting      = 32
)

func (l Limits) withDefaults() Limits {
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if l.MaxFuture <= 0 {
		l.MaxFuture = DefaultMaxFuture
	}
	if l.MaxAge <= 0 {
		l.MaxAge = DefaultMaxAge
	}
	return l
}

// wire forms: pointers and raw strings so that absence, type and format
// errors can be told apart and named.
type wireActor struct {
	ID     *string `json:"id"`
	Type   *string `json:"type"`
	Role   string  `json:"role"`
	Vendor string  `json:"vendor"`
}

type wireAccess struct {
	Schema       string          `json:"schema"`
	EventID      *string         `json:"event_id"`
	TS           *string         `json:"ts"`
	Tenant       string          `json:"tenant"`
	Actor        *wireActor      `json:"actor"`
	Action       *string         `json:"action"`
	Store        *string         `json:"store"`
	Resource     *Resource       `json:"resource"`
	SubjectID    string          `json:"subject_id"`
	Records      json.RawMessage `json:"records"`
	Bytes        json.RawMessage `json:"bytes"`
	Fields       []string        `json:"fields"`
	Purpose      string          `json:"purpose"`
	Conversation Conversation    `json:"conversation"`
	Tool         string          `json:"tool"`
	Result       string          `json:"result"`
	Client       Client          `json:"client"`
	Destination  string          `json:"destination"`

	// The fast path's storage of EventID and TS (which point here), so
	// that it allocates no pointer for them.
	eventID, ts string
	// clean marks the free string fields the fast path knows to hold no
	// personal data (the payload PII check passes over them).
	clean piiClean
	// tsTime is ts as the fast path parsed it (parseUTCTime) when
	// tsParsed; TS is then nil.
	tsTime   time.Time
	tsParsed bool
	// ipValid: the fast path knows Client.IP to be a valid address.
	ipValid bool
}

type wireConsent struct {
	Schema    string  `json:"schema"`
	EventID   string  `json:"event_id"`
	TS        *string `json:"ts"`
	Tenant    string  `json:"tenant"`
	SubjectID *string `json:"subject_id"`
	Purpose   *string `json:"purpose"`
	Granted   *bool   `json:"granted"`
}

// Schema names.
const (
	SchemaAccess  = "access.v1"
	SchemaConsent = "consent.v1"
)

// SchemaOf returns the value of a top-level "schema" key of a JSON object
// message, or SchemaAccess when there is none. It does not validate.
func SchemaOf(b []byte) string {
	var probe struct {
		Schema string `json:"schema"`
	}
	if json.Unmarshal(b, &probe) != nil || probe.Schema == "" {
		return SchemaAccess
	}
	return probe.Schema
}

// precheck applies the whole-message checks shared by every schema.
func precheck(b []byte, l Limits) error {
	if len(b) > l.MaxMessageBytes {
		return verr(ReasonTooLarge, "", "message is %d bytes, limit %d", len(b), l.MaxMessageBytes)
	}
	if !utf8.Valid(b) {
		return verr(ReasonBadUTF8, "", "message is not valid UTF-8")
	}
	if bytes.IndexByte(b, 0) >= 0 || bytes.Contains(b, []byte(`\u0000`)) {
		return verr(ReasonBadUTF8, "", "message contains a NUL character")
	}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return verr(ReasonBadJSON, "", "message is not a JSON object")
	}
	if mayNestDeeper(trimmed, maxNesting) && depth(trimmed) > maxNesting {
		return verr(ReasonBadJSON, "", "JSON nested deeper than %d levels", maxNesting)
	}
	return nil
}

// mayNestDeeper reports whether depth(b) may exceed limit: b holds more
// opening brackets than limit (depth counts those outside strings, so it
// is never more than all of them). Most messages hold a few: one counting
// scan for each bracket instead of a walk through the strings.
func mayNestDeeper(b []byte, limit int) bool {
	return bytes.Count(b, []byte("{"))+bytes.Count(b, []byte("[")) > limit
}

// depth returns the deepest nesting of objects and arrays in b, ignoring
// brackets inside strings. A string is skipped to its closing quote with
// bytes.IndexByte (most of an event's bytes are string content): a quote
// preceded by an odd run of backslashes is escaped.
func depth(b []byte) int {
	d, deepest := 0, 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for {
				j := bytes.IndexByte(b[i+1:], '"')
				if j < 0 {
					return deepest // an unterminated string: no bracket after it counts
				}
				i += 1 + j
				bs := 0
				for k := i - 1; b[k] == '\\'; k-- {
					bs++
				}
				if bs%2 == 0 {
					break
				}
			}
		case '{', '[':
			d++
			deepest = max(deepest, d)
		case '}', ']':
			d--
		}
	}
	return deepest
}

// unmarshal decodes b into v and turns decoder errors into validation errors.
func unmarshal(b []byte, v any) error {
	err := json.Unmarshal(b, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			return verr(ReasonBadJSON, "", "message is not a JSON object")
		}
		return verr(ReasonBadType, field, "want %s, got JSON %s", te.Type, te.Value)
	}
	return verr(ReasonBadJSON, "", "%v", err)
}

func parseTS(s *string, field string, now time.Time, l Limits) (time.Time, error) {
	if s == nil || *s == "" {
		return time.Time{}, verr(ReasonMissingField, field, "required")
	}
	ts, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return time.Time{}, verr(ReasonBadValue, field, "not an RFC 3339 time")
	}
	return checkTS(ts.UTC(), field, now, l)
}

// checkTS checks a parsed UTC time against now and l.
func checkTS(ts time.Time, field string, now time.Time, l Limits) (time.Time, error) {
	if ts.After(now.Add(l.MaxFuture)) {
		return time.Time{}, verr(ReasonTSFuture, field, "%s is more than %s after now", ts.Format(time.RFC3339), l.MaxFuture)
	}
	if ts.Before(now.Add(-l.MaxAge)) {
		return time.Time{}, verr(ReasonTSTooOld, field, "%s is older than retention %s", ts.Format(time.RFC3339), l.MaxAge)
	}
	return ts, nil
}

func required(s *string, field string, maxLen int) (string, error) {
	if s == nil || strings.TrimSpace(*s) == "" {
		return "", verr(ReasonMissingField, field, "required")
	}
	return *s, checkLen(*s, field, maxLen)
}

func checkLen(s, field string, maxLen int) error {
	if len(s) > maxLen {
		return verr(ReasonTooLong, field, "%d bytes, limit %d", len(s), maxLen)
	}
	return nil
}

func enum[T ~string](s *string, field string, valid []T) (T, error) {
	if s == nil || *s == "" {
		return "", verr(ReasonMissingField, field, "required")
	}
	if !slices.Contains(valid, T(*s)) {
		return "", verr(ReasonBadEnum, field, "%q is not one of %v", *s, valid)
	}
	return T(*s), nil
}

// count reads a non-negative integer. A JSON string, even one holding
// digits, is a wrong type: encoding/json would accept "5" for a json.Number.
func count(raw json.RawMessage, field string, def uint64) (uint64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return def, nil
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return 0, verr(ReasonBadType, field, "want an integer, got JSON %s", jsonKind(c))
	}
	i, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, verr(ReasonBadValue, field, "%q is not an integer", raw)
	}
	if i < 0 {
		return 0, verr(ReasonBadValue, field, "%d is negative", i)
	}
	return uint64(i), nil
}

// jsonKind names the JSON type of a value by its first byte.
func jsonKind(c byte) string {
	switch c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	}
	return "value"
}

// DecodeAccess decodes and validates one access.v1 message. now is the clock
// that ts is checked against. Unknown fields are ignored. The error, when not
// nil, is a *ValidationError.
func DecodeAccess(b []byte, now time.Time, l Limits) (Event, error) {
	return decodeAccess(b, now, l, true)
}

// DecodeAccessInterned is DecodeAccess sharing the copies of repeated
// values (tenant, store, action, actor, purpose, categories, ...) through
// in, so that the events of a batch hold each once. The event is the same
// as DecodeAccess returns.
func DecodeAccessInterned(b []byte, now time.Time, l Limits, in *Interner) (Event, error) {
	return decodeAccessIn(b, now, l, true, in)
}

// decodeAccess decodes with the one-pass fast path when fast is set and the
// message allows it (see fastpath.go), else with encoding/json and checkKeys.
func decodeAccess(b []byte, now time.Time, l Limits, fast bool) (Event, error) {
	return decodeAccessIn(b, now, l, fast, nil)
}

// DecodeAccessTo is DecodeAccessInterned writing the event into *dst,
// which it overwrites (with the zero Event on an error): the event is
// built in place, not copied, and the message's wire form is decoded into
// in's scratch. in must not be nil.
func DecodeAccessTo(dst *Event, b []byte, now time.Time, l Limits, in *Interner) error {
	*dst = Event{}
	l = l.withDefaults()
	if err := precheck(b, l); err != nil {
		return err
	}
	w := &in.w
	*w = wireAccess{}
	in.cleanOf = nil
	err := decodeWire(b, w, in, true)
	if err == nil {
		err = w.fill(dst, now, l)
	}
	if err == nil {
		in.clean, in.cleanOf = w.clean, dst
	}
	*w = wireAccess{} // drop the references to this message's values
	if err != nil {
		*dst = Event{}
	}
	return err
}

// decodeAccessIn is decodeAccess sharing repeated values through in (nil:
// none).
func decodeAccessIn(b []byte, now time.Time, l Limits, fast bool, in *Interner) (Event, error) {
	l = l.withDefaults()
	if err := precheck(b, l); err != nil {
		return Event{}, err
	}
	// the wire form: the Interner's scratch when there is one (no
	// allocation per message), emptied of this message's values after
	// and the event is filled in the Interner's too (the validation takes
	// its address, which would move a local to the heap), then copied out
	var w *wireAccess
	var e *Event
	if in != nil {
		w, e = &in.w, &in.ev
	} else {
		w, e = &wireAccess{}, &Event{}
	}
	err := decodeWire(b, w, in, fast)
	if err == nil {
		err = w.fill(e, now, l)
	}
	out := *e
	*w, *e = wireAccess{}, Event{}
	if err != nil {
		return Event{}, err
	}
	return out, nil
}

// decodeWire decodes b into the zero *w with the one-pass fast path when
// fast is set and the message allows it (see fastpath.go), else with
// encoding/json and checkKeys, and checks the schema.
func decodeWire(b []byte, w *wireAccess, in *Interner, fast bool) error {
	if !fast || !fastAccessIn(b, w, in) {
		*w = wireAccess{}
		if err := unmarshal(b, w); err != nil {
			return err
		}
		if err := checkKeys(b, accessKeys); err != nil {
			return err
		}
	}
	if w.Schema != "" && w.Schema != SchemaAccess {
		return verr(ReasonBadSchema, "schema", "%q is not %s", w.Schema, SchemaAccess)
	}
	return nil
}

// fill validates w and sets *e, whose fields it overwrites one by one (the
// caller starts from the zero Event and discards it on an error).
func (w *wireAccess) fill(e *Event, now time.Time, l Limits) error {
	var err error
	if e.EventID, err = required(w.EventID, "event_id", MaxEventIDLen); err != nil {
		return err
	}
	if w.tsParsed {
		e.TS, err = checkTS(w.tsTime, "ts", now, l)
	} else {
		e.TS, err = parseTS(w.TS, "ts", now, l)
	}
	if err != nil {
		return err
	}
	e.Tenant = w.Tenant
	if e.Tenant == "" {
		e.Tenant = DefaultTenant
	}
	if w.Actor == nil {
		return verr(ReasonMissingField, "actor", "required")
	}
	if e.Actor.ID, err = required(w.Actor.ID, "actor.id", MaxStringLen); err != nil {
		return err
	}
	if e.Actor.Type, err = enum(w.Actor.Type, "actor.type", ActorTypes); err != nil {
		return err
	}
	e.Actor.Role, e.Actor.Vendor = w.Actor.Role, w.Actor.Vendor
	if e.Action, err = enum(w.Action, "action", Actions); err != nil {
		return err
	}
	if e.Store, err = required(w.Store, "store", MaxStringLen); err != nil {
		return err
	}
	if w.Resource == nil {
		return verr(ReasonMissingField, "resource", "required")
	}
	if e.Resource.Type, err = required(&w.Resource.Type, "resource.type", MaxStringLen); err != nil {
		return err
	}
	e.Resource.ID = w.Resource.ID
	e.SubjectID = w.SubjectID
	if e.Records, err = count(w.Records, "records", 1); err != nil {
		return err
	}
	if e.Bytes, err = count(w.Bytes, "bytes", 0); err != nil {
		return err
	}
	if len(w.Fields) > MaxFields {
		return verr(ReasonTooLong, "fields", "%d categories, limit %d", len(w.Fields), MaxFields)
	}
	for _, f := range w.Fields {
		if f == "" {
			return verr(ReasonBadValue, "fields", "empty data category")
		}
		if err := checkLen(f, "fields", MaxStringLen); err != nil {
			return err
		}
	}
	e.Fields = w.Fields
	e.Purpose, e.Conversation, e.Tool, e.Client = w.Purpose, w.Conversation, w.Tool, w.Client
	e.Result = ResultAllowed
	if w.Result != "" {
		if e.Result, err = enum(&w.Result, "result", Results); err != nil {
			return err
		}
	}
	if e.Client.IP != "" && !w.ipValid && !validIP(e.Client.IP) {
		return verr(ReasonBadValue, "client.ip", "not an IP address")
	}
	for _, f := range [...]struct{ name, value string }{
		{"tenant", e.Tenant}, {"actor.role", e.Actor.Role}, {"actor.vendor", e.Actor.Vendor},
		{"resource.id", e.Resource.ID}, {"subject_id", e.SubjectID}, {"purpose", e.Purpose},
		{"conversation.id", e.Conversation.ID}, {"conversation.subject_id", e.Conversation.SubjectID},
		{"tool", e.Tool}, {"client.country", e.Client.Country}, {"destination", w.Destination},
	} { // in a fixed order, so that the field named is stable
		if err := checkLen(f.value, f.name, MaxStringLen); err != nil {
			return err
		}
	}
	if err := checkLen(e.Client.UserAgent, "client.user_agent", MaxUserAgentLen); err != nil {
		return err
	}
	if w.Destination != "" {
		if strings.TrimSpace(w.Destination) == "" {
			return verr(ReasonBadValue, "destination", "blank")
		}
		if e.Action != ActionShare && e.Action != ActionExport {
			return verr(ReasonBadValue, "destination", "only share and export send data to a destination, not %s", e.Action)
		}
		e.Destination = w.Destination
	}
	if !l.AllowPII {
		if h, ok := findPII(e, w.clean); ok {
			return PIIError(h)
		}
	}
	return nil
}

// DecodeConsent decodes and validates one consent.v1 message.
func DecodeConsent(b []byte, now time.Time, l Limits) (Consent, error) {
	l = l.withDefaults()
	if err := precheck(b, l); err != nil {
		return Consent{}, err
	}
	var w wireConsent
	if err := unmarshal(b, &w); err != nil {
		return Consent{}, err
	}
	if err := checkKeys(b, consentKeys); err != nil {
		return Consent{}, err
	}
	if w.Schema != "" && w.Schema != SchemaConsent {
		return Consent{}, verr(ReasonBadSchema, "schema", "%q is not %s", w.Schema, SchemaConsent)
	}
	var (
		c   Consent
		err error
	)
	c.EventID = w.EventID
	if err := checkLen(c.EventID, "event_id", MaxEventIDLen); err != nil {
		return Consent{}, err
	}
	if c.TS, err = parseTS(w.TS, "ts", now, l); err != nil {
		return Consent{}, err
	}
	c.Tenant = w.Tenant
	if c.Tenant == "" {
		c.Tenant = DefaultTenant
	}
	if c.SubjectID, err = required(w.SubjectID, "subject_id", MaxStringLen); err != nil {
		return Consent{}, err
	}
	if c.Purpose, err = required(w.Purpose, "purpose", MaxStringLen); err != nil {
		return Consent{}, err
	}
	if w.Granted == nil {
		return Consent{}, verr(ReasonMissingField, "granted", "required")
	}
	c.Granted = *w.Granted
	return c, nil
}
