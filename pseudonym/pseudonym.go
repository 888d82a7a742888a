// Package pseudonym turns raw customer identifiers into keyed HMAC-SHA256
// pseudonyms. Ingest applies it to subject_id, conversation.subject_id and
// resource.id before anything is stored; responders apply the same key to a
// raw id they know to look it up. One key serves all three fields, so a
// conversation's customer and the customer read still compare equal.
//
// A pseudonym is a scheme letter + a one-character key id + 32 hex
// characters (128 bits of HMAC-SHA256). Scheme "t" (HashTenant, what ingest
// writes) hashes the tenant with the id, so the same raw id in two tenants
// (two different people) gives two pseudonyms; scheme "p" (Hash, before
// tenant separation) hashes the id alone and is still searched, within the
// tenant, for rows stored before. The key id lets a rotated deployment keep
// resolving the pseudonyms made under its previous keys (see
// docs/security.md).
package pseudonym

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"strings"
	"sync"
)

// MinKeyBytes is the shortest key accepted.
const MinKeyBytes = 32

// Key is one HMAC key with its one-character id.
type Key struct {
	ID     byte
	Secret []byte
}

// Pseudonymizer hashes raw identifiers with the current key and can also
// produce the pseudonyms of older keys for look-ups across a rotation. It is
// safe for concurrent use.
type Pseudonymizer struct {
	current Key
	old     []Key
	// macs pools keyed HMAC states for the current key (*keyedMAC): Reset
	// restores the keyed state without re-deriving the pads, which ingest
	// does per event.
	macs sync.Pool
}

// keyedMAC is a keyed HMAC state with its scratch: the message is written
// in one piece and the sum read into buffers that live as long as the
// state, so a pseudonym costs one allocation (the string made).
type keyedMAC struct {
	m   hash.Hash
	in  []byte
	sum []byte
}

// New returns a Pseudonymizer that hashes with current and also knows old
// keys for look-ups.
func New(current Key, old ...Key) (*Pseudonymizer, error) {
	ids := map[byte]bool{}
	for _, k := range append([]Key{current}, old...) {
		if len(k.Secret) < MinKeyBytes {
			return nil, fmt.Errorf("pseudonymization key %q: %d bytes, need at least %d", k.ID, len(k.Secret), MinKeyBytes)
		}
		if !isKeyID(k.ID) {
			return nil, fmt.Errorf("pseudonymization key id %q: want one of 0-9 a-z", k.ID)
		}
		// A reused id would make two keys' pseudonyms look alike: a look-up
		// could not tell which key made a pseudonym.
		if ids[k.ID] {
			return nil, fmt.Errorf("pseudonymization key id %q is used by two keys; give each key its own id", k.ID)
		}
		ids[k.ID] = true
	}
	p := &Pseudonymizer{current: current, old: old}
	p.macs.New = func() any {
		return &keyedMAC{m: hmac.New(sha256.New, current.Secret), in: make([]byte, 0, 128), sum: make([]byte, 0, sha256.Size)}
	}
	return p, nil
}

func isKeyID(b byte) bool { return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') }

// Hash returns the pseudonym of raw under the current key; "" stays "".
func (p *Pseudonymizer) Hash(raw string) string {
	if raw == "" {
		return ""
	}
	k := p.macs.Get().(*keyedMAC)
	k.m.Reset()
	k.in = append(k.in[:0], raw...)
	s := k.format('p', p.current.ID)
	p.macs.Put(k)
	return s
}

// HashTenant returns the tenant-scoped pseudonym ("t" scheme) of raw in
// tenant under the current key; "" stays "". The HMAC input is the tenant's
// length (4 bytes, big-endian), the tenant and raw, so that no two
// (tenant, raw) pairs share an input.
func (p *Pseudonymizer) HashTenant(tenant, raw string) string {
	if raw == "" {
		return ""
	}
	k := p.macs.Get().(*keyedMAC)
	k.m.Reset()
	k.in = appendTenantInput(k.in[:0], tenant, raw)
	s := k.format('t', p.current.ID)
	p.macs.Put(k)
	return s
}

// format writes k.in into the keyed mac and renders the pseudonym of its
// sum. A large input's buffer is not kept.
func (k *keyedMAC) format(scheme, id byte) string {
	k.m.Write(k.in)
	k.sum = k.m.Sum(k.sum[:0])
	if cap(k.in) > 1024 {
		k.in = make([]byte, 0, 128)
	}
	var out [34]byte
	out[0], out[1] = scheme, id
	hex.Encode(out[2:], k.sum[:16])
	return string(out[:])
}

// appendTenantInput appends the "t" scheme's HMAC input for raw in tenant
// to b: the tenant's length (4 bytes, big-endian), the tenant and raw.
func appendTenantInput(b []byte, tenant, raw string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(tenant)))
	b = append(b, tenant...)
	return append(b, raw...)
}

// AllTenant returns what a look-up of raw in tenant must search for, within
// that tenant: its "t" pseudonyms under the current and every old key, then
// its "p" (pre-tenant) pseudonyms under them. A query must also filter on
// the tenant, or "p" rows of another tenant's customer would match.
func (p *Pseudonymizer) AllTenant(tenant, raw string) []string {
	if raw == "" {
		return nil
	}
	out := []string{encodeTenant(p.current.ID, hmac.New(sha256.New, p.current.Secret), tenant, raw)}
	for _, k := range p.old {
		out = append(out, encodeTenant(k.ID, hmac.New(sha256.New, k.Secret), tenant, raw))
	}
	return append(out, p.All(raw)...)
}

// All returns the pre-tenant ("p") pseudonyms of raw under the current and
// every old key, current first.
func (p *Pseudonymizer) All(raw string) []string {
	if raw == "" {
		return nil
	}
	out := []string{hashWith(p.current, raw)}
	for _, k := range p.old {
		out = append(out, hashWith(k, raw))
	}
	return out
}

// IsPseudonym reports whether s has the form of a pseudonym.
func IsPseudonym(s string) bool {
	if len(s) != 34 || (s[0] != 'p' && s[0] != 't') || !isKeyID(s[1]) {
		return false
	}
	_, err := hex.DecodeString(s[2:])
	return err == nil
}

func hashWith(k Key, raw string) string {
	return encode(k.ID, hmac.New(sha256.New, k.Secret), raw)
}

// encodeTenant writes len(tenant), tenant and raw into the keyed mac m and
// formats the "t" pseudonym.
func encodeTenant(id byte, m hash.Hash, tenant, raw string) string {
	m.Write(appendTenantInput(nil, tenant, raw))
	return format('t', id, m)
}

// format renders the pseudonym of the sum of m.
func format(scheme, id byte, m hash.Hash) string {
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	var out [34]byte
	out[0], out[1] = scheme, id
	hex.Encode(out[2:], sum[:16])
	return string(out[:])
}

// encode writes raw into the keyed mac m and formats the "p" pseudonym.
func encode(id byte, m hash.Hash, raw string) string {
	var in [64]byte
	if len(raw) <= len(in) {
		m.Write(append(in[:0], raw...))
	} else {
		m.Write([]byte(raw))
	}
	return format('p', id, m)
}

// LoadKey reads a key, hex-encoded or else taken as raw bytes (surrounding
// white space trimmed), from a file (file wins) or from the value of an
// environment variable, and gives it id. The secret is never logged, and
// no error message holds it.
func LoadKey(file, env string, id byte) (Key, error) {
	var raw string
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return Key{}, fmt.Errorf("reading pseudonymization key file: %w", err)
		}
		raw = strings.TrimSpace(string(b))
	case env != "":
		raw = strings.TrimSpace(os.Getenv(env))
		if raw == "" {
			return Key{}, fmt.Errorf("pseudonymization key: environment variable %s is empty", env)
		}
	default:
		return Key{}, errors.New("pseudonymization key: neither key_file nor key_env is set")
	}
	secret, err := hex.DecodeString(raw)
	if err != nil {
		secret = []byte(raw)
	}
	return Key{ID: id, Secret: secret}, nil
}
