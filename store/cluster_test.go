package store_test

import (
	"strings"
	"testing"

	"github.com/chatwarden/chatwarden/store"
)

// Every statement of every migration has a cluster form, so a new
// migration cannot leave the cluster schema behind.
func TestClusterStatementsCoverMigrations(t *testing.T) {
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{store.SchemaMigrationsDDL}
	for _, m := range ms {
		stmts = append(stmts, m.Statements...)
	}
	for _, stmt := range stmts {
		out, err := store.ClusterStatements(stmt, "c1", "db1")
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		for _, o := range out {
			if (strings.HasPrefix(o, "CREATE") || strings.HasPrefix(o, "DROP")) && !strings.Contains(o, " ON CLUSTER c1") {
				t.Errorf("no ON CLUSTER: %s", o)
			}
			if strings.Contains(o, "ENGINE = MergeTree") || strings.Contains(o, "ENGINE = ReplacingMergeTree") ||
				strings.Contains(o, "ENGINE = AggregatingMergeTree") {
				t.Errorf("a table that is not replicated: %s", o)
			}
		}
	}
}

func TestClusterStatements(t *testing.T) {
	for _, tc := range []struct {
		name, stmt string
		want       []string
		err        string
	}{
		{
			name: "sharded table",
			stmt: "CREATE TABLE IF NOT EXISTS events (\n    tenant String,\n    actor_id String,\n    ts DateTime\n) ENGINE = MergeTree()\nPARTITION BY toYYYYMMDD(ts)\nORDER BY (tenant, actor_id, ts)",
			want: []string{
				"CREATE TABLE IF NOT EXISTS db1.events_local ON CLUSTER c1 (\n    tenant String,\n    actor_id String,\n    ts DateTime\n) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db1/events_local', '{replica}')\nPARTITION BY toYYYYMMDD(ts)\nORDER BY (tenant, actor_id, ts)",
				"CREATE TABLE IF NOT EXISTS db1.events ON CLUSTER c1 AS db1.events_local ENGINE = Distributed(c1, db1, events_local, cityHash64(tenant, actor_id))",
			},
		},
		{
			name: "sharded by its view, no key",
			stmt: "CREATE TABLE IF NOT EXISTS event_ids (event_id String) ENGINE = MergeTree() ORDER BY event_id",
			want: []string{
				"CREATE TABLE IF NOT EXISTS db1.event_ids_local ON CLUSTER c1 (event_id String) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db1/event_ids_local', '{replica}') ORDER BY event_id",
				"CREATE TABLE IF NOT EXISTS db1.event_ids ON CLUSTER c1 AS db1.event_ids_local ENGINE = Distributed(c1, db1, event_ids_local)",
			},
		},
		{
			name: "replicated everywhere, with a version column",
			stmt: "CREATE TABLE IF NOT EXISTS alerts (id String, version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY id",
			want: []string{
				"CREATE TABLE IF NOT EXISTS db1.alerts ON CLUSTER c1 (id String, version UInt64) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/db1/alerts', '{replica}', version) ORDER BY id",
			},
		},
		{
			name: "view on the local tables",
			stmt: "CREATE MATERIALIZED VIEW IF NOT EXISTS event_ids_mv TO event_ids AS\nSELECT event_id, tenant, ts FROM events",
			want: []string{
				"CREATE MATERIALIZED VIEW IF NOT EXISTS db1.event_ids_mv ON CLUSTER c1 TO db1.event_ids_local AS SELECT event_id, tenant, ts FROM db1.events_local",
			},
		},
		{
			name: "column of a sharded table",
			stmt: "ALTER TABLE findings ADD COLUMN note String",
			want: []string{
				"ALTER TABLE db1.findings_local ON CLUSTER c1 ADD COLUMN note String",
				"DROP TABLE IF EXISTS db1.findings ON CLUSTER c1",
				"CREATE TABLE IF NOT EXISTS db1.findings ON CLUSTER c1 AS db1.findings_local ENGINE = Distributed(c1, db1, findings_local, cityHash64(tenant, actor_id))",
			},
		},
		{
			name: "column of a replicated table",
			stmt: "ALTER TABLE audit_log ADD COLUMN hash String",
			want: []string{"ALTER TABLE db1.audit_log ADD COLUMN hash String"},
		},
		{
			name: "dropped column of a sharded table",
			stmt: "ALTER TABLE vendor_hour DROP COLUMN subjects",
			want: []string{
				"ALTER TABLE db1.vendor_hour_local ON CLUSTER c1 DROP COLUMN subjects",
				"DROP TABLE IF EXISTS db1.vendor_hour ON CLUSTER c1",
				"CREATE TABLE IF NOT EXISTS db1.vendor_hour ON CLUSTER c1 AS db1.vendor_hour_local ENGINE = Distributed(c1, db1, vendor_hour_local, cityHash64(tenant, actor_id))",
			},
		},
		{
			name: "view dropped to be created anew",
			stmt: "DROP TABLE IF EXISTS vendor_hour_mv",
			want: []string{"DROP TABLE IF EXISTS db1.vendor_hour_mv ON CLUSTER c1"},
		},
		{name: "unknown form", stmt: "DROP TABLE events", err: "no cluster form"},
		{
			name: "sharded table dropped",
			stmt: "DROP TABLE IF EXISTS vendor_hour",
			want: []string{
				"DROP TABLE IF EXISTS db1.vendor_hour ON CLUSTER c1",
				"DROP TABLE IF EXISTS db1.vendor_hour_local ON CLUSTER c1",
			},
		},
		{name: "replicated table dropped", stmt: "DROP TABLE IF EXISTS alerts", err: "not sharded"},
		{name: "view over a replicated table", stmt: "CREATE MATERIALIZED VIEW IF NOT EXISTS v TO events AS SELECT * FROM alerts", err: "not sharded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := store.ClusterStatements(tc.stmt, "c1", "db1")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n;\n") != strings.Join(tc.want, "\n;\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n;\n"), strings.Join(tc.want, "\n;\n"))
			}
		})
	}
}
