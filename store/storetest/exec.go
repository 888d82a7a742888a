package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/chatwarden/chatwarden/store"
)

// Exec runs a statement on cfg's database over a connection of its own and
// waits until every mutation (ALTER UPDATE/DELETE) of the database is done:
// for tests that tamper with tables the way someone holding the service
// user's password could.
func Exec(t testing.TB, cfg store.Config, query string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{cfg.Addr}, Auth: clickhouse.Auth{Database: cfg.Database}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Exec(ctx, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	for {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0", cfg.Database).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for the mutations of %s: %v", query, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
