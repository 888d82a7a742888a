package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/store"
)

// TestAuditVerifyCommand: CLI queries are audited with the OS account next
// to the -as name, every audit entry is copied to a Kafka topic (the real
// broker), and `chatwarden audit verify` finds an edited row from the chain
// alone and a wholly erased row (which no chain can show) by comparing with
// the Kafka copy.
func TestAuditVerifyCommand(t *testing.T) {
	t.Setenv("CHATWARDEN_CLICKHOUSE_DATABASE", "")
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	brokers := []string{"127.0.0.1:9092"}
	if v := os.Getenv("CHATWARDEN_KAFKA_BROKERS"); v != "" {
		brokers = strings.Split(v, ",")
	}
	ic := ingest.Config{Brokers: brokers}
	topic := "test-" + hex.EncodeToString(b) + "-audit"
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := ingest.CreateTopics(ctx, ic, ingest.TopicSpec{Name: topic, Partitions: 2}); err != nil {
		t.Fatalf("kafka at %v is required (start it with `make stack`): %v", brokers, err)
	}
	t.Cleanup(func() { _ = ingest.DeleteTopics(context.Background(), ic, topic) })
	ch := storetest.Config(t)
	s := storetest.Open(t, ch)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	y := fmt.Sprintf("clickhouse:\n  addr: %s\n  database: %s\ningest:\n  brokers: [%s]\naudit:\n  kafka_topic: %s\n",
		ch.Addr, ch.Database, strings.Join(brokers, ", "), topic)
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(t.Context(), append(args, "-config", cfg), &out, &errb); code != want {
			t.Fatalf("chatwarden %v: exit %d, want %d\n%s%s", args, code, want, out.String(), errb.String())
		}
		return out.String()
	}
	for _, a := range []string{"a1", "a2", "a3"} {
		cli(0, "history", "-actor", a, "-as", "alice")
	}
	entries, err := s.AuditLog(t.Context(), store.AuditFilter{From: time.Now().Add(-time.Hour), To: time.Now().Add(time.Hour)})
	if err != nil || len(entries) != 3 {
		t.Fatalf("audit entries = %v, %v", entries, err)
	}
	for _, e := range entries {
		if e.User != "alice" || e.OSUser == "" || e.OSUser != osUser() || e.OSUser == "alice" || e.Seq != 1 || e.Hash == "" {
			t.Fatalf("audit entry %+v: want user alice, os_user %q, seq 1, a hash", e, osUser())
		}
	}
	if out := cli(0, "audit", "verify", "-kafka"); !strings.Contains(out, "3 entries in the Kafka copy: OK") {
		t.Fatalf("intact trail: %s", out)
	}

	// Erase one whole entry: its chain is gone with it, so only the copy
	// shows it.
	storetest.Exec(t, ch, "ALTER TABLE audit_log DELETE WHERE detail LIKE '%actor=a2 %'")
	if out := cli(0, "audit", "verify"); !strings.Contains(out, "2 rows") {
		t.Fatalf("after erasing one entry, the chains alone: %s", out)
	}
	if out := cli(1, "audit", "verify", "-kafka"); !strings.Contains(out, "erased") || !strings.Contains(out, "1 problems") {
		t.Fatalf("an erased entry was not found through the Kafka copy: %s", out)
	}

	// Edit the name in another: the chain itself shows it.
	storetest.Exec(t, ch, "ALTER TABLE audit_log UPDATE user = 'bob' WHERE detail LIKE '%actor=a3 %'")
	if out := cli(1, "audit", "verify"); !strings.Contains(out, "edited") {
		t.Fatalf("an edited entry was not found: %s", out)
	}
}
