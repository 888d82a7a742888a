package storetest

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

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
	conn := dial(t, cfg)
	defer conn.Close()
	before := mutations(ctx, t, conn, cfg.Database)
	if err := conn.Exec(ctx, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if mutation.MatchString(query) {
		// A replicated table's mutation reaches system.mutations when
		// the replica has read it from ZooKeeper, not at once.
		for mutations(ctx, t, conn, cfg.Database) == before {
			select {
			case <-ctx.Done():
				t.Fatalf("waiting for the mutation %s to appear: %v", query, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	if m := partitionDrop.FindStringSubmatch(query); m != nil && cfg.Cluster != "" {
		// 18.16 runs a replicated table's DROP PARTITION on the
		// leader replica, which waits only for itself: wait for this
		// node's replica to apply it too.
		table := m[1]
		if !strings.Contains(table, ".") {
			table = cfg.Database + "." + table
		}
		if err := conn.Exec(ctx, "SYSTEM SYNC REPLICA "+table); err != nil {
			t.Fatalf("waiting for this replica to apply %s: %v", query, err)
		}
		// SYNC REPLICA can still return before this replica has removed
		// the parts (CI at 74cb8ed read all 4 rows of a dropped partition
		// back): wait until none of the partition's parts is active here.
		db, name, _ := strings.Cut(table, ".")
		partition := strings.Trim(m[3], "'")
		for {
			var n uint64
			if err := conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = ? AND table = ? AND partition = ? AND active",
				db, name, partition).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("waiting for this replica to remove partition %s of %s: %d parts left: %v", partition, table, n, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitMutations(ctx, t, conn, cfg.Database)
}

// partitionDrop matches an ALTER TABLE ... DROP or DETACH PARTITION: the
// table, the verb and the partition (as system.parts.partition shows it,
// once quotes are trimmed).
var partitionDrop = regexp.MustCompile(`(?is)^\s*ALTER\s+TABLE\s+(\S+)\s+(DROP|DETACH)\s+PARTITION\s+(\S+)`)

// mutation matches an ALTER TABLE ... UPDATE or DELETE.
var mutation = regexp.MustCompile(`(?is)^\s*ALTER\s+TABLE\s+\S+(\s+ON\s+CLUSTER\s+\S+)?\s+(UPDATE|DELETE)\b`)

// mutations counts the mutations of db, done or not.
func mutations(ctx context.Context, t testing.TB, conn driver.Conn, db string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ?", db).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// WaitMutations waits until every mutation (ALTER UPDATE/DELETE) of cfg's
// database is done, e.g. the row deletions retention started.
func WaitMutations(t testing.TB, cfg store.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := dial(t, cfg)
	defer conn.Close()
	waitMutations(ctx, t, conn, cfg.Database)
}

// Count runs a SELECT count() (or any one-UInt64 query) on cfg's database
// over a connection of its own (not in the query log the conformance check
// replays).
func Count(t testing.TB, cfg store.Config, query string, args ...any) uint64 {
	t.Helper()
	conn := dial(t, cfg)
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func dial(t testing.TB, cfg store.Config) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{cfg.Addr}, Auth: clickhouse.Auth{Database: cfg.Database}})
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func waitMutations(ctx context.Context, t testing.TB, conn driver.Conn, db string) {
	t.Helper()
	for {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0", db).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for the mutations of %s: %v", db, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
