// Package storetest gives tests a real, migrated ClickHouse database of their
// own on the server that scripts/stack.sh started. A server that cannot be
// reached fails the test; it never skips.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/store"
)

// Addr returns the ClickHouse native address tests use:
// $CHATWARDEN_CLICKHOUSE_ADDR, or 127.0.0.1:9000.
func Addr() string {
	if a := os.Getenv("CHATWARDEN_CLICKHOUSE_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:9000"
}

// Cluster returns the ClickHouse cluster tests create their databases on:
// $CHATWARDEN_TEST_CLUSTER (make test-cluster sets it, with
// CHATWARDEN_CLICKHOUSE_ADDR pointing at a node of the local cluster), or ""
// for one server.
func Cluster() string { return os.Getenv("CHATWARDEN_TEST_CLUSTER") }

// Config returns a store config for a fresh database with a unique name.
func Config(t testing.TB) store.Config {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	// Every test query is logged so that the conformance check
	// (store/modern) can replay it on ClickHouse 26.x.
	return store.Config{Addr: Addr(), Database: "test_" + hex.EncodeToString(b), LogQueries: true, Cluster: Cluster()}
}

// New opens a fresh, migrated database and drops it when the test ends.
func New(t testing.TB) *store.Store {
	t.Helper()
	return Open(t, Config(t))
}

// Open opens and migrates the database of cfg and drops it when the test ends.
func Open(t testing.TB, cfg store.Config) *store.Store {
	t.Helper()
	return OpenSchema(t, cfg, store.FullSchema)
}

// OpenSchema opens the database of cfg, migrates it with the schema sc
// (chatwarden eval's: store.DetectionSchema) and drops it when the test ends.
func OpenSchema(t testing.TB, cfg store.Config, sc store.Schema) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := store.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("clickhouse at %s is required (start it with `make stack`): %v", cfg.Addr, err)
	}
	// Dropped also when the migration fails: on a cluster a database left
	// behind keeps its tables' ZooKeeper paths and replication queues.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := s.DropDatabase(ctx); err != nil {
			t.Logf("dropping %s: %v", cfg.Database, err)
		}
		s.Close()
	})
	if _, err := s.MigrateSchema(ctx, time.Now(), sc); err != nil {
		t.Fatalf("migrating %s: %v", cfg.Database, err)
	}
	return s
}
