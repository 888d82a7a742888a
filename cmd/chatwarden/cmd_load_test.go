package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatwarden/chatwarden/internal/storetest"
)

// TestLoadCommand: `chatwarden load` stores a history (here eval's small
// scenario) in the configured database without Kafka, and a second load of
// the same file stores no event twice.
func TestLoadCommand(t *testing.T) {
	cfg := storetest.Config(t)
	st := storetest.Open(t, cfg) // migrated, dropped at the end
	t.Setenv("CHATWARDEN_CLICKHOUSE_ADDR", cfg.Addr)
	t.Setenv("CHATWARDEN_CLICKHOUSE_DATABASE", cfg.Database)
	dir := t.TempDir()
	key := filepath.Join(dir, "pseudonym.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHATWARDEN_PSEUDONYM_KEY_FILE", key)
	t.Setenv("CHATWARDEN_PSEUDONYM_KEY", "")
	events, _ := evalScenario(t, dir) // 542 access events and one consent
	for i, want := range []string{"loaded 542 events and 1 consents", "loaded 0 events and 1 consents"} {
		var stdout, stderr bytes.Buffer
		if code := run(t.Context(), []string{"load", "-events", events}, &stdout, &stderr); code != 0 {
			t.Fatalf("load %d exited %d: %s", i+1, code, stderr.String())
		}
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("load %d: %q, want %q", i+1, stdout.String(), want)
		}
	}
	sum, err := st.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != 542 {
		t.Errorf("stored %d events, want 542", sum.Events)
	}
}
