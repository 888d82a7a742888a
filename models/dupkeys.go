package models

import (
	"encoding/json"
	"reflect"
	"strings"
	"unicode/utf8"
)

// keySet describes the keys of one JSON object the decoder reads: each
// known key's name and, for keys that hold an object the decoder reads too,
// that object's keys.
type keySet map[string]keySet

// keysOf builds the keySet of a wire struct from its json tags: nested
// structs (or pointers to them) become nested key sets.
func keysOf(t reflect.Type) keySet {
	ks := keySet{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[json.Number]() {
			ks[name] = keysOf(ft)
		} else {
			ks[name] = nil
		}
	}
	return ks
}

var (
	accessKeys  = keysOf(reflect.TypeFor[wireAccess]())
	consentKeys = keysOf(reflect.TypeFor[wireConsent]())
)

// checkKeys rejects, in the objects the decoder reads, a known key given
// twice and a key that only differs from a known key in letter case.
//
// encoding/json silently keeps the last of duplicate keys and matches keys
// case-insensitively (also folding "ſ" to "s" and the Kelvin sign to "k"), so
// {"actor":{"id":"a","id":"b"}} or {"store":"crm","STORE":"payments"} would
// mean one thing to a producer's or an auditor's parser and another to
// chatwarden: an ambiguity an attacker could use to hide an access. Unknown
// keys are still ignored, duplicated or not. b must be valid JSON (call it
// after json.Unmarshal succeeded).
func checkKeys(b []byte, known keySet) error {
	s := keyScanner{b: b}
	s.ws()
	return s.object(known, "")
}

type keyScanner struct {
	b []byte
	i int
}

func (s *keyScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str reads the string at s.i (an opening quote) and returns its decoded
// value.
func (s *keyScanner) str() string {
	start := s.i
	s.i++ // opening quote
	escaped := false
	for s.i < len(s.b) {
		c := s.b[s.i]
		s.i++
		if c == '\\' {
			escaped = true
			s.i++ // the escaped character; \uXXXX's hex digits are plain
			continue
		}
		if c == '"' {
			break
		}
	}
	raw := s.b[start:s.i]
	if !escaped {
		return string(raw[1 : len(raw)-1])
	}
	var v string
	_ = json.Unmarshal(raw, &v) // valid JSON: cannot fail
	return v
}

// object walks the object at s.i. known is the key set the decoder reads
// in it (nil: an object the decoder ignores, only skipped).
func (s *keyScanner) object(known keySet, path string) error {
	s.i++ // {
	var seen map[string]bool
	for {
		s.ws()
		if s.i >= len(s.b) {
			return nil
		}
		if s.b[s.i] == '}' {
			s.i++
			return nil
		}
		if s.b[s.i] == ',' {
			s.i++
			s.ws()
		}
		key := s.str()
		s.ws()
		s.i++ // :
		s.ws()
		var child keySet
		isKnown := false
		if known != nil {
			canon, ok := canonical(known, key)
			field := path + canon
			switch {
			case ok && canon != key:
				return verr(ReasonBadJSON, field, "key %q differs from %q only in letter case; use the exact name", key, canon)
			case ok && seen[key]:
				return verr(ReasonBadJSON, field, "key given more than once")
			case ok:
				if seen == nil {
					seen = map[string]bool{}
				}
				seen[key] = true
				child, isKnown = known[key], true
			}
		}
		if err := s.value(child, path+key+".", isKnown && child != nil); err != nil {
			return err
		}
	}
}

// canonical returns the known key that encoding/json would match key to.
func canonical(known keySet, key string) (string, bool) {
	if _, ok := known[key]; ok {
		return key, true
	}
	if !utf8.ValidString(key) {
		return "", false
	}
	for k := range known {
		if strings.EqualFold(k, key) {
			return k, true
		}
	}
	return "", false
}

// value walks the value at s.i; an object is checked against known when
// check is set, otherwise only skipped.
func (s *keyScanner) value(known keySet, path string, check bool) error {
	if s.i >= len(s.b) {
		return nil
	}
	switch s.b[s.i] {
	case '{':
		if !check {
			known = nil
		}
		return s.object(known, path)
	case '[':
		s.i++
		for {
			s.ws()
			if s.i >= len(s.b) {
				return nil
			}
			switch s.b[s.i] {
			case ']':
				s.i++
				return nil
			case ',':
				s.i++
				s.ws()
			}
			if err := s.value(nil, path, false); err != nil {
				return err
			}
		}
	case '"':
		s.str()
	default: // number, true, false, null
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return nil
			}
			s.i++
		}
	}
	return nil
}
