package main

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/chatwarden/chatwarden/store"
)

// TestStatusPrintsPIIPerStore: status shows the pii_in_payload dead letters
// and the events stored pseudonymized (ingest.pii: pseudonymize) per
// producer store, and no such line when there are none.
func TestStatusPrintsPIIPerStore(t *testing.T) {
	var out bytes.Buffer
	e := &env{stdout: &out, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	sum := store.Summary{DeadLetters: map[string]uint64{"pii_in_payload": 3}, PIIByStore: map[string]uint64{"orders": 1, "crm": 2},
		PIIStoredByStore: map[string]uint64{"tickets": 4}}
	printStatus(e, statusReport{ClickHouse: &sum})
	if !strings.Contains(out.String(), "payload pii  dead-lettered per producer store") || !strings.Contains(out.String(), "crm=2  orders=1") ||
		!strings.Contains(out.String(), "payload pii  stored pseudonymized per producer store") || !strings.Contains(out.String(), "tickets=4") {
		t.Fatalf("status output:\n%s", out.String())
	}
	out.Reset()
	printStatus(e, statusReport{ClickHouse: &store.Summary{DeadLetters: map[string]uint64{}}})
	if strings.Contains(out.String(), "payload pii") {
		t.Fatalf("a pii line without pii dead letters:\n%s", out.String())
	}
}

// TestStatusEscapesControlCharacters (issue 10 item 12): the producer
// strings status prints (store names of dead letters, tenants and vendors
// without a contract) reach the terminal escaped, like history's (failed
// before: the escape sequences were printed as they came).
func TestStatusEscapesControlCharacters(t *testing.T) {
	var out bytes.Buffer
	e := &env{stdout: &out, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}
	sum := store.Summary{DeadLetters: map[string]uint64{"pii_in_payload": 1},
		PIIByStore: map[string]uint64{"crm\x1b]0;owned\x07\x1b[2J": 1}}
	printStatus(e, statusReport{ClickHouse: &sum, NoContract: []string{"retail/acme\u202egnp.exe"}})
	got := out.String()
	if strings.ContainsAny(got, "\x1b\x07\u202e") {
		t.Fatalf("status printed control characters:\n%q", got)
	}
	if !strings.Contains(got, `crm\x1b]0;owned\x07\x1b[2J=1`) || !strings.Contains(got, `retail/acme\u202egnp.exe`) {
		t.Fatalf("status output is not the escaped strings:\n%s", got)
	}
}
