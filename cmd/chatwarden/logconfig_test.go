package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatwarden/chatwarden/internal/storetest"
)

// TestLogConfigApplied: log.level, log.format and CHATWARDEN_LOG_LEVEL set
// the logger of a command run through run (before, every command logged
// text at info whatever they said).
func TestLogConfigApplied(t *testing.T) {
	t.Setenv("CHATWARDEN_CLICKHOUSE_DATABASE", "")
	ch := storetest.Config(t)
	storetest.Open(t, ch)
	dir := t.TempDir()
	migrate := func(t *testing.T, logYAML string) string {
		t.Helper()
		cfg := filepath.Join(dir, "c.yaml")
		y := fmt.Sprintf("clickhouse:\n  addr: %s\n  database: %s\nlog:\n%s", ch.Addr, ch.Database, logYAML)
		if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		if code := run(t.Context(), []string{"migrate", "-config", cfg}, &out, &errb); code != 0 {
			t.Fatalf("migrate: exit %d\n%s", code, errb.String())
		}
		return errb.String()
	}
	const msg = "connected to clickhouse"
	t.Run("json", func(t *testing.T) {
		t.Setenv("CHATWARDEN_LOG_LEVEL", "")
		logs := migrate(t, "  format: json\n")
		var line map[string]any
		for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
			if strings.Contains(l, msg) {
				if err := json.Unmarshal([]byte(l), &line); err != nil {
					t.Fatalf("log line is not JSON: %q", l)
				}
			}
		}
		if line["msg"] != msg || line["level"] != "INFO" {
			t.Fatalf("no JSON line %q at INFO in:\n%s", msg, logs)
		}
	})
	t.Run("level from the file", func(t *testing.T) {
		t.Setenv("CHATWARDEN_LOG_LEVEL", "")
		if logs := migrate(t, "  level: warn\n"); strings.Contains(logs, msg) {
			t.Fatalf("info line logged at level warn:\n%s", logs)
		}
	})
	t.Run("level from the environment wins", func(t *testing.T) {
		t.Setenv("CHATWARDEN_LOG_LEVEL", "error")
		if logs := migrate(t, "  level: info\n"); strings.Contains(logs, msg) {
			t.Fatalf("info line logged with CHATWARDEN_LOG_LEVEL=error:\n%s", logs)
		}
	})
	t.Run("default text at info", func(t *testing.T) {
		t.Setenv("CHATWARDEN_LOG_LEVEL", "")
		if logs := migrate(t, "  format: text\n"); !strings.Contains(logs, "level=INFO msg=\""+msg+"\"") {
			t.Fatalf("no text info line:\n%s", logs)
		}
	})
}
