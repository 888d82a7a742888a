package store

import (
	"fmt"
	"regexp"
	"strings"
)

// A ClickHouse cluster (Config.Cluster, docs/scaling.md) keeps two kinds of
// table:
//
//   - Sharded tables hold the event volume: raw events and everything
//     derived from them per actor. Each is a Replicated*MergeTree named
//     <table>_local on every node (one ZooKeeper path per shard, so the
//     replicas of a shard hold the same rows) under a Distributed table
//     named <table> that spreads inserts by cityHash64(tenant, actor_id),
//     so one actor's events, minutes, findings and risk live on one shard.
//     Materialized views run on the local tables of the shard that received
//     the rows. Queries read the Distributed table by its usual name.
//   - Every other table (alerts, suppressions, consents, checkpoints,
//     audit, dead letters, schema versions) is small and is read with FINAL,
//     argMax over versions or IN over itself: it is one Replicated*MergeTree
//     with a single ZooKeeper path that every node of the cluster replicates,
//     so each node reads a whole copy locally and the SQL stays the same.
//
// The single-server migrations are the one source: ClusterStatements
// rewrites each statement into its cluster form, and a statement form it
// does not know is an error (TestClusterStatementsCoverMigrations).

// shardedTables are the tables sharded by (tenant, actor_id); the value says
// whether the table has both columns (a Distributed table without them only
// reads: its rows come from materialized views on the local tables).
var shardedTables = map[string]bool{
	"events":               true,
	"event_ids":            false,
	"events_by_subject":    true,
	"actor_minute":         true,
	"findings":             true,
	"actor_risk":           true,
	"shares":               true,
	"actor_hour":           true,
	"events_by_hour":       true,
	"vendor_hour":          true,
	"vendor_actor_hour":    true,
	"actor_minute_exports": true,
}

// localSuffix names a sharded table's local (per-node) table.
const localSuffix = "_local"

// ShardingKey is the sharding expression of the Distributed tables.
const ShardingKey = "cityHash64(tenant, actor_id)"

var (
	clusterCreateRe = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS ([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)\s*ENGINE\s*=\s*([A-Za-z]*)MergeTree\(([^)]*)\)(.*)$`)
	clusterViewRe   = regexp.MustCompile(`(?s)^CREATE MATERIALIZED VIEW IF NOT EXISTS ([A-Za-z_][A-Za-z0-9_]*) TO ([A-Za-z_][A-Za-z0-9_]*)\s+AS\s+(.*)$`)
	clusterFromRe   = regexp.MustCompile(`(?i)\bFROM\s+([A-Za-z_][A-Za-z0-9_]*)\b`)
	clusterAlterRe  = regexp.MustCompile(`(?s)^ALTER TABLE ([A-Za-z_][A-Za-z0-9_]*) ((?:ADD|DROP) COLUMN .*)$`)
	clusterDropRe   = regexp.MustCompile(`^DROP TABLE IF EXISTS ([A-Za-z_][A-Za-z0-9_]*)$`)
	clusterFillRe   = regexp.MustCompile(`(?s)^INSERT INTO ([A-Za-z_][A-Za-z0-9_]*) (\([^)]*\))\s+(SELECT\s.*)$`)
)

// ClusterStatements returns the statements that apply one single-server
// migration statement to the cluster named cluster, for database db (both
// plain identifiers). The forms it knows are the ones the migrations use:
// CREATE TABLE IF NOT EXISTS ... ENGINE = *MergeTree(...), CREATE
// MATERIALIZED VIEW IF NOT EXISTS ... TO ... AS SELECT over a sharded table,
// ALTER TABLE ... ADD COLUMN or DROP COLUMN, DROP TABLE IF EXISTS of a
// materialized view (a name ending in _mv) or of a sharded table, and a
// view's back-fill INSERT INTO ... (...) SELECT ... FROM from one sharded
// table into another.
func ClusterStatements(stmt, cluster, db string) ([]string, error) {
	if !identRe.MatchString(cluster) || !identRe.MatchString(db) {
		return nil, fmt.Errorf("cluster %q and database %q must be plain identifiers", cluster, db)
	}
	stmt = strings.TrimSpace(stmt)
	if m := clusterCreateRe.FindStringSubmatch(stmt); m != nil {
		table, cols, variant, args, rest := m[1], m[2], m[3], strings.TrimSpace(m[4]), m[5]
		shard, sharded := "all", false
		if _, ok := shardedTables[table]; ok {
			shard, sharded = "{shard}", true
		}
		local := table
		if sharded {
			local = table + localSuffix
		}
		engineArgs := fmt.Sprintf("'/clickhouse/tables/%s/%s/%s', '{replica}'", shard, db, local)
		if args != "" {
			engineArgs += ", " + args
		}
		out := []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s ON CLUSTER %s (%s) ENGINE = Replicated%sMergeTree(%s)%s",
			db, local, cluster, cols, variant, engineArgs, rest)}
		if sharded {
			out = append(out, distributedDDL(table, cluster, db))
		}
		return out, nil
	}
	if m := clusterViewRe.FindStringSubmatch(stmt); m != nil {
		view, to, sel := m[1], m[2], m[3]
		if _, ok := shardedTables[to]; !ok {
			return nil, fmt.Errorf("materialized view %s: its table %s is not sharded", view, to)
		}
		var bad error
		sel = clusterFromRe.ReplaceAllStringFunc(sel, func(from string) string {
			src := clusterFromRe.FindStringSubmatch(from)[1]
			if _, ok := shardedTables[src]; !ok {
				bad = fmt.Errorf("materialized view %s: reads %s, which is not sharded", view, src)
				return from
			}
			return "FROM " + db + "." + src + localSuffix
		})
		if bad != nil {
			return nil, bad
		}
		return []string{fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s.%s ON CLUSTER %s TO %s.%s%s AS %s",
			db, view, cluster, db, to, localSuffix, sel)}, nil
	}
	if m := clusterFillRe.FindStringSubmatch(stmt); m != nil {
		// A back-fill runs once, on the connected node, through the
		// Distributed tables: it reads every shard and each row goes to
		// its actor's shard (not ON CLUSTER: every shard would insert
		// the whole cluster's rows again).
		to, cols, sel := m[1], m[2], m[3]
		if !shardedTables[to] {
			return nil, fmt.Errorf("back-fill of %s: not a sharded table with tenant and actor_id", to)
		}
		var bad error
		sel = clusterFromRe.ReplaceAllStringFunc(sel, func(from string) string {
			src := clusterFromRe.FindStringSubmatch(from)[1]
			if _, ok := shardedTables[src]; !ok {
				bad = fmt.Errorf("back-fill of %s: reads %s, which is not sharded", to, src)
				return from
			}
			return "FROM " + db + "." + src
		})
		if bad != nil {
			return nil, bad
		}
		return []string{fmt.Sprintf("INSERT INTO %s.%s %s %s", db, to, cols, sel)}, nil
	}
	if m := clusterDropRe.FindStringSubmatch(stmt); m != nil {
		name := m[1]
		if strings.HasSuffix(name, "_mv") {
			// The views are created ON CLUSTER over the local tables.
			return []string{fmt.Sprintf("DROP TABLE IF EXISTS %s.%s ON CLUSTER %s", db, name, cluster)}, nil
		}
		if _, ok := shardedTables[name]; !ok {
			return nil, fmt.Errorf("drop of %s: no cluster form for a table that is not sharded", name)
		}
		// The Distributed table first (no insert reaches the local
		// tables through it after), then the local tables. A dropped
		// replicated table's ZooKeeper path stays: a migration never
		// creates a dropped table again under its old name (0018).
		return []string{
			fmt.Sprintf("DROP TABLE IF EXISTS %s.%s ON CLUSTER %s", db, name, cluster),
			fmt.Sprintf("DROP TABLE IF EXISTS %s.%s%s ON CLUSTER %s", db, name, localSuffix, cluster),
		}, nil
	}
	if m := clusterAlterRe.FindStringSubmatch(stmt); m != nil {
		table, change := m[1], m[2]
		if _, ok := shardedTables[table]; ok {
			// The local tables first (ON CLUSTER runs it on one
			// replica of each shard; ZooKeeper brings it to the
			// others), then the Distributed table anew over them:
			// 18.16 refuses an ALTER ON CLUSTER of a table that is
			// not replicated on a cluster whose shards are, and a
			// Distributed table holds no rows (inserts are
			// synchronous), so dropping it loses nothing; an insert
			// in between fails and is retried. The exception: blocks
			// queued for a shard that was wholly down (InsertEvents)
			// until they are sent, so migrate with every shard up and
			// the queue empty (docs/scaling.md, "A whole shard down").
			return append([]string{
				fmt.Sprintf("ALTER TABLE %s.%s%s ON CLUSTER %s %s", db, table, localSuffix, cluster, change),
				fmt.Sprintf("DROP TABLE IF EXISTS %s.%s ON CLUSTER %s", db, table, cluster),
			}, distributedDDL(table, cluster, db)), nil
		}
		// A table that every node replicates: ZooKeeper carries the
		// change to the other replicas (ON CLUSTER would run it once per
		// shard on the same replicated table).
		return []string{fmt.Sprintf("ALTER TABLE %s.%s %s", db, table, change)}, nil
	}
	return nil, fmt.Errorf("no cluster form for the statement %q", firstLine(stmt))
}

// distributedDDL creates the Distributed table of the sharded table over
// its local tables.
func distributedDDL(table, cluster, db string) string {
	key := ""
	if shardedTables[table] {
		key = ", " + ShardingKey
	}
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s ON CLUSTER %s AS %s.%s%s ENGINE = Distributed(%s, %s, %s%s%s)",
		db, table, cluster, db, table, localSuffix, cluster, db, table, localSuffix, key)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// onCluster returns " ON CLUSTER name" on a cluster and "" on one server.
func (s *Store) onCluster() string {
	if s.cfg.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + s.cfg.Cluster
}

// Cluster returns the configured cluster name ("" for one server).
func (s *Store) Cluster() string { return s.cfg.Cluster }
