package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestTokenNew: `chatwarden token new` prints a token and a config entry
// that the strict config loader accepts; an old bcrypt token entry is
// refused with an error naming dashboards.tokens[0].hash (issue 10 item 4).
func TestTokenNew(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"token", "new", "-name", "ci", "-role", "secops"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	tok := regexp.MustCompile(`(?m)^cw_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$`).FindString(out.String())
	entry := regexp.MustCompile(`(?m)^    - \{name: .*\}$`).FindString(out.String())
	if tok == "" || entry == "" {
		t.Fatalf("output:\n%s", out.String())
	}
	var c Config
	if err := decodeStrict([]byte("dashboards:\n  tokens:\n"+entry+"\n"), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("minted entry does not validate: %v", err)
	}
	if got := c.Dashboards.Tokens[0]; got.Name != "ci" || got.Role != "secops" || !strings.Contains(tok, got.ID) {
		t.Fatalf("entry %+v for token %s", got, tok)
	}
	if code := run(context.Background(), []string{"token", "new", "-name", "ci", "-role", "root"}, &out, &errb); code == 0 {
		t.Fatal("role root accepted")
	}

	h, err := bcrypt.GenerateFromPassword([]byte("old-token"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var old Config
	if err := decodeStrict([]byte("dashboards:\n  tokens:\n    - {name: old, role: admin, hash: \""+string(h)+"\"}\n"), &old); err != nil {
		t.Fatal(err)
	}
	err = old.Validate()
	if err == nil || !strings.Contains(err.Error(), "dashboards.tokens[0].hash") || !strings.Contains(err.Error(), "chatwarden token new") {
		t.Fatalf("bcrypt token config: %v", err)
	}
	checkConfigError(t, err)
}
