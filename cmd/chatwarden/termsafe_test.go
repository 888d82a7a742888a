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
	"github.com/chatwarden/chatwarden/report"
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

// TestReportEscapesControlCharacters (issue 10 item 12): `chatwarden report
// weekly` prints producer strings (an actor id, a finding summary) to the
// terminal as Markdown by default: their control characters and bidi
// overrides are escaped there, as in history; the JSON output keeps them
// (failed before: the Markdown held the raw escape sequence).
func TestReportEscapesControlCharacters(t *testing.T) {
	rd, err := report.NewRenderer()
	if err != nil {
		t.Fatal(err)
	}
	evil := "agent\x1b]0;pwned\x07\x1b[2J\u202eexe"
	sum := &report.Summary{Week: "2026-W48", Paragraph: "The riskiest actor was " + evil + ".",
		TopActors: []report.ActorRisk{{Tenant: "retail", ActorID: evil, Score: 9, ScoreSource: report.ScoreRisk, Worst: "high", Detectors: []string{"x"}}}}
	for _, f := range []report.Format{report.FormatMarkdown, report.FormatHTML} {
		var b bytes.Buffer
		if err := renderReport(&b, rd, sum, f); err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(b.String(), "\x1b\x07\u202e") || !strings.Contains(b.String(), `agent\x1b]0;pwned\x07\x1b[2J\u202eexe`) {
			t.Errorf("%s output holds control characters or not their escapes:\n%.400q", f, b.String())
		}
		if !strings.Contains(b.String(), "\n") {
			t.Errorf("%s output lost its newlines", f)
		}
	}
	var j bytes.Buffer
	if err := renderReport(&j, rd, sum, report.FormatJSON); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(j.String(), `agent\u001b]0;pwned\u0007`) {
		t.Errorf("JSON output changed: %.300s", j.String())
	}
}
