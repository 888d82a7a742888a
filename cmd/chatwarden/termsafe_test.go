package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
)

// TestHistoryEscapesControlCharacters: terminal control sequences, bidi
// overrides and line breaks that a producer put into an event reach
// `chatwarden history`'s table as visible escapes, never as raw bytes.
func TestHistoryEscapesControlCharacters(t *testing.T) {
	t.Setenv("CHATWARDEN_CLICKHOUSE_DATABASE", "")
	ch := storetest.Config(t)
	s := storetest.Open(t, ch)
	ev := models.Event{EventID: "cc1", TS: time.Now().UTC().Add(-time.Minute), Tenant: "t",
		Actor: models.Actor{ID: "agent-7", Type: models.ActorHuman}, Action: models.ActionRead,
		Store: "crm\x1b]0;pwned\x07", Resource: models.Resource{Type: "profile\x1b[2J\x1b[H"}, Records: 1,
		Fields: []string{"email\x9b31m"}, Purpose: "support\u202eevil", Conversation: models.Conversation{ID: "c\r\nFAKE ROW\t1"},
		Result: models.ResultAllowed}
	if err := s.InsertEvents(t.Context(), []models.Event{ev}, time.Now()); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("clickhouse:\n  addr: %s\n  database: %s\n", ch.Addr, ch.Database)), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"history", "-actor", "agent-7", "-as", "t", "-config", cfg}, &out, &errb); code != 0 {
		t.Fatalf("history: exit %d\n%s", code, errb.String())
	}
	text := out.String()
	for i, r := range text {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x202e {
			t.Fatalf("raw control character %U at byte %d of the output:\n%q", r, i, text)
		}
	}
	if lines := strings.Count(strings.TrimSpace(text), "\n"); lines != 1 {
		t.Fatalf("%d lines after the header, want 1 (a line break in a field made a row):\n%s", lines, text)
	}
	for _, want := range []string{`crm\x1b]0;pwned\x07`, `profile\x1b[2J\x1b[H`, `email\x9b31m`, `support\u202eevil`, `c\x0d\x0aFAKE ROW\x091`} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks the escaped %s:\n%s", want, text)
		}
	}
}

func TestTermSafe(t *testing.T) {
	for in, want := range map[string]string{
		"plain ascii":      "plain ascii",
		"Müller ✓":         "Müller ✓",
		"a\\x1b":           `a\\x1b`,
		"\x1b[31mred":      `\x1b[31mred`,
		"bad\xffutf8":      `bad\xffutf8`,
		"\u2066isolate":    `\u2066isolate`,
		"tab\tnew\nline\r": `tab\x09new\x0aline\x0d`,
	} {
		if got := termSafe(in); got != want {
			t.Errorf("termSafe(%q) = %q, want %q", in, got, want)
		}
	}
}
