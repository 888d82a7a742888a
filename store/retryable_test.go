package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// TestIsRetryable: a server that is away, overloaded or whose disk is full
// or read-only is worth retrying; a schema or syntax error is not.
func TestIsRetryable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", errors.New("dial tcp 127.0.0.1:9000: connect: connection refused"), true},
		{"disk full", &clickhouse.Exception{Code: 75, Message: "Cannot write to file, errno: 28, strerror: No space left on device"}, true},
		{"cannot open file (EROFS)", &clickhouse.Exception{Code: 76, Message: "Cannot open file, errno: 30, strerror: Read-only file system"}, true},
		{"18.16 read-only file", &clickhouse.Exception{Code: 1000, Message: "File is read-only: /x"}, true},
		{"not enough space", &clickhouse.Exception{Code: 243}, true},
		{"table read-only", &clickhouse.Exception{Code: 242}, true},
		{"cluster node died mid-insert", &clickhouse.Exception{Code: 32, Message: "Attempt to read after eof: while receiving packet from 127.0.0.1:29003"}, true},
		{"no replica of a shard reachable", &clickhouse.Exception{Code: 279, Message: "All connection tries failed"}, true},
		{"unknown table", &clickhouse.Exception{Code: 60}, false},
		{"syntax error", &clickhouse.Exception{Code: 62}, false},
		{"cancelled", context.Canceled, false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsRetryable(tc.err); got != tc.want {
				t.Fatalf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// TestShardUnreachable: only ClickHouse's "all connection tries failed"
// (279), wrapped or not, makes a cluster insert fall back to the
// Distributed table's queue; a node dying mid-insert, a network error of
// our own connection or another exception does not.
func TestShardUnreachable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"no replica of a shard reachable", &clickhouse.Exception{Code: 279, Message: "All connection tries failed"}, true},
		{"wrapped", fmt.Errorf("inserting 500 events: %w", &clickhouse.Exception{Code: 279}), true},
		{"node died mid-insert", &clickhouse.Exception{Code: 32}, false},
		{"our connection refused", errors.New("dial tcp 127.0.0.1:29001: connect: connection refused"), false},
		{"table read-only", &clickhouse.Exception{Code: 242}, false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ShardUnreachable(tc.err); got != tc.want {
				t.Fatalf("ShardUnreachable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// TestLocalAlterOncePerShard: the cluster form of a sharded table's ADD
// COLUMN alters its local table, which migrations run once per shard
// without ON CLUSTER (localAlterRe); the Distributed table's re-creation
// and a replicated-everywhere table's ALTER keep their form.
func TestLocalAlterOncePerShard(t *testing.T) {
	stmts, err := ClusterStatements("ALTER TABLE events ADD COLUMN destination String", "chatwarden", "db")
	if err != nil {
		t.Fatal(err)
	}
	var matched []string
	for _, st := range stmts {
		if m := localAlterRe.FindStringSubmatch(st); m != nil {
			matched = append(matched, m[1]+" | "+m[2])
		}
	}
	if len(matched) != 1 || matched[0] != "events_local | ADD COLUMN destination String" {
		t.Errorf("statements run once per shard: %q, want the ALTER of events_local only (of %q)", matched, stmts)
	}
	other, err := ClusterStatements("ALTER TABLE alerts ADD COLUMN x String", "chatwarden", "db")
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range other {
		if localAlterRe.MatchString(st) {
			t.Errorf("%q (a table every node replicates) matched", st)
		}
	}
}

// TestDropPartitionOncePerShard: on a cluster, retention drops a sharded
// table's partition from its local table once per shard without ON
// CLUSTER (the DDLWorker race of TestLocalAlterOncePerShard's ALTERs); a
// table every node replicates, and every table on one server, keep the
// plain statement run on the connected node.
func TestDropPartitionOncePerShard(t *testing.T) {
	for _, c := range []struct {
		cluster, table string
		want           string
		perShard       bool
	}{
		{"chatwarden", "events", "ALTER TABLE db.events_local DROP PARTITION 20260101", true},
		{"chatwarden", "alerts", "ALTER TABLE alerts DROP PARTITION 20260101", false},
		{"", "events", "ALTER TABLE events DROP PARTITION 20260101", false},
	} {
		stmt, perShard := dropPartitionSQL(c.cluster, "db", c.table, "20260101")
		if stmt != c.want || perShard != c.perShard {
			t.Errorf("cluster %q, table %s: %q (once per shard: %v), want %q (%v)", c.cluster, c.table, stmt, perShard, c.want, c.perShard)
		}
		if strings.Contains(stmt, "ON CLUSTER") {
			t.Errorf("cluster %q, table %s: %q runs ON CLUSTER", c.cluster, c.table, stmt)
		}
	}
	if _, sharded := shardedTables["events"]; !sharded {
		t.Fatal("events is no longer a sharded table: pick another one for this test")
	}
	if _, sharded := shardedTables["alerts"]; sharded {
		t.Fatal("alerts is a sharded table: pick a table every node replicates for this test")
	}
}
