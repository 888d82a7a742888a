package dashboards

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// API tokens look like cw_<id>_<secret>: a 16-hex-digit id, which names the
// configured token, and 32 random bytes (base64url). The configuration keeps
// the id and the SHA-256 of the whole token, never the token. A token has
// 256 bits of entropy, so a fast hash is enough (a slow one only helps the
// guesser who sends many requests, see docs/security.md item 4).
const (
	tokenPrefix    = "cw_"
	tokenIDLen     = 16 // hex digits
	tokenSecretLen = 43 // base64url digits of 32 bytes
)

// NewToken mints an API token for name with role: raw is what the script
// sends ("Authorization: Bearer <raw>", shown once), t is what goes into
// dashboards.tokens.
func NewToken(name string, role Role) (raw string, t Token, err error) {
	if name == "" {
		return "", Token{}, fmt.Errorf("token name: required")
	}
	if !validRole(role) {
		return "", Token{}, fmt.Errorf("token role: %q is not one of %v", role, Roles)
	}
	id := make([]byte, tokenIDLen/2)
	secret := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return "", Token{}, err
	}
	if _, err := rand.Read(secret); err != nil {
		return "", Token{}, err
	}
	raw = tokenPrefix + hex.EncodeToString(id) + "_" + base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(raw))
	return raw, Token{Name: name, Role: role, ID: hex.EncodeToString(id), SHA256: hex.EncodeToString(sum[:])}, nil
}

// TokenHash returns the hex SHA-256 of a raw token, as dashboards.tokens[].sha256
// holds it.
func TokenHash(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

// tokenID returns the id of a raw token of the cw_<id>_<secret> shape.
func tokenID(raw string) (string, bool) {
	rest, ok := strings.CutPrefix(raw, tokenPrefix)
	if !ok || len(rest) != tokenIDLen+1+tokenSecretLen || rest[tokenIDLen] != '_' || !isLowerHex(rest[:tokenIDLen]) {
		return "", false
	}
	return rest[:tokenIDLen], true
}

func isLowerHex(s string) bool {
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

// tokenTable finds a configured token by its id and checks the rest in
// constant time: one SHA-256 per request, whatever the number of tokens.
type tokenTable struct {
	byID map[string]tokenEntry
}

type tokenEntry struct {
	t   Token
	sum [32]byte
}

func newTokenTable(ts []Token) *tokenTable {
	tt := &tokenTable{byID: map[string]tokenEntry{}}
	for _, t := range ts {
		var e tokenEntry
		e.t = t
		if b, err := hex.DecodeString(t.SHA256); err == nil && len(b) == 32 { // Validate ran before
			copy(e.sum[:], b)
			tt.byID[t.ID] = e
		}
	}
	return tt
}

// lookup returns the configured token that raw is.
func (tt *tokenTable) lookup(raw string) (Token, bool) {
	id, ok := tokenID(raw)
	if !ok {
		return Token{}, false
	}
	sum := sha256.Sum256([]byte(raw))
	e, found := tt.byID[id]
	// Compare even when the id is unknown, so both cost the same.
	eq := subtle.ConstantTimeCompare(sum[:], e.sum[:]) == 1
	return e.t, found && eq
}
