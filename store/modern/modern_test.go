//go:build conformance

package modern_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chdb-io/chdb-go/chdb"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/store"
)

var (
	stringLit = regexp.MustCompile(`'(?:[^'\\]|\\.)*'`)
	numberLit = regexp.MustCompile(`\b\d+(\.\d+)?\b`)
	spaces    = regexp.MustCompile(`\s+`)
	tupleLit  = regexp.MustCompile(`\(\?(?:,\s*\?)*\)`)
)

// shape reduces a query to its form, so that one sample of each is replayed.
func shape(q string) string {
	q = stringLit.ReplaceAllString(q, "?")
	q = numberLit.ReplaceAllString(q, "?")
	q = spaces.ReplaceAllString(q, " ")
	return tupleLit.ReplaceAllString(q, "(?)")
}

// recordedQueries returns one sample of every distinct SELECT (and ALTER)
// that test databases ran on the 18.16 server since the given time.
func recordedQueries(t *testing.T, since time.Time) []string {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, store.Config{Addr: storetest.Addr(), Database: "default"}, nil)
	if err != nil {
		t.Fatalf("clickhouse 18.16 test server is required: %v", err)
	}
	defer s.Close()
	qs, err := s.RecordedQueries(ctx, since, "clickhouse-go%")
	if err != nil {
		t.Fatal(err)
	}
	// Migration statements ran in step 1; replayed again, an ALTER TABLE
	// ... ADD COLUMN would fail for the column it already added.
	migration := map[string]bool{}
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		for _, stmt := range m.Statements {
			migration[spaces.ReplaceAllString(strings.TrimSpace(stmt), " ")] = true
		}
	}
	seen := map[string]string{}
	for _, q := range qs {
		trim := strings.TrimSpace(q)
		if migration[spaces.ReplaceAllString(trim, " ")] {
			continue
		}
		upper := strings.ToUpper(trim)
		if !strings.HasPrefix(upper, "SELECT") && !strings.HasPrefix(upper, "WITH") && !strings.HasPrefix(upper, "ALTER") {
			continue
		}
		if strings.Contains(upper, "SYSTEM.") || upper == "SELECT 1" || strings.HasPrefix(upper, "SELECT VERSION()") {
			continue
		}
		k := shape(trim)
		if _, ok := seen[k]; !ok || len(trim) < len(seen[k]) {
			seen[k] = trim
		}
	}
	out := make([]string, 0, len(seen))
	for _, q := range seen {
		out = append(out, q)
	}
	sort.Strings(out)
	return out
}

func TestSQLRunsOnModernClickHouse(t *testing.T) {
	// chdb-go loads the library when the test binary starts, from
	// $CHDB_LIB_PATH (the Makefile points it at the copy under .stack/chdb).
	session, err := chdb.NewSession(t.TempDir())
	if err != nil {
		t.Fatalf("starting embedded ClickHouse: %v", err)
	}
	defer session.Close()
	run := func(q string) error {
		_, err := session.Query(q, "TabSeparated")
		return err
	}
	res, err := session.Query("SELECT version()", "TabSeparated")
	if err != nil {
		t.Fatal(err)
	}
	ver, err := store.ParseVersion(strings.TrimSpace(res.String()))
	if err != nil || !ver.AtLeast(24, 0) {
		t.Fatalf("embedded engine version %q (%v): want 24.x or newer", res.String(), err)
	}
	t.Logf("embedded ClickHouse %s", ver.Raw)

	// 1. Every migration, statement by statement, with this version's settings.
	if err := run("CREATE DATABASE IF NOT EXISTS cw"); err != nil {
		t.Fatal(err)
	}
	if err := run("USE cw"); err != nil {
		t.Fatal(err)
	}
	settings := settingsClause(store.QuerySettings(ver))
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if err := run(store.SchemaMigrationsDDL); err != nil {
		t.Fatal(err)
	}
	tables := map[string]bool{}
	createRe := regexp.MustCompile(`(?i)CREATE TABLE IF NOT EXISTS (\w+)`)
	for _, m := range ms {
		for i, stmt := range m.Statements {
			if err := run(stmt); err != nil {
				t.Errorf("migration %04d_%s statement %d fails on ClickHouse %s: %v\n%s", m.Version, m.Name, i+1, ver.Raw, err, stmt)
			}
			if mm := createRe.FindStringSubmatch(stmt); mm != nil {
				tables[mm[1]] = true
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	gone, err := store.Dropped()
	if err != nil {
		t.Fatal(err)
	}
	for tbl := range gone {
		delete(tables, tbl) // a later migration drops it
	}

	// Queries that read client-sent external tables find a stand-in here.
	for name, cols := range store.ExternalTables {
		if err := run(fmt.Sprintf("CREATE TABLE %s (%s) ENGINE = Memory", name, cols)); err != nil {
			t.Fatalf("creating stand-in for external table %s: %v", name, err)
		}
	}

	// 2. Every distinct query the suite ran on 18.16 also runs here.
	since := time.Now().Add(-6 * time.Hour)
	if v := os.Getenv("CHATWARDEN_CONFORMANCE_SINCE"); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("CHATWARDEN_CONFORMANCE_SINCE=%q: want unix seconds", v)
		}
		since = time.Unix(sec, 0)
	}
	queries := recordedQueries(t, since)
	if len(queries) < 10 {
		t.Fatalf("only %d distinct queries were recorded since %s: run the rest of the test suite first (make test does)", len(queries), since.Format(time.RFC3339))
	}
	read := map[string]bool{}
	failed := 0
	for _, q := range queries {
		if err := run(q + settings); err != nil {
			failed++
			t.Errorf("query fails on ClickHouse %s: %v\n%s", ver.Raw, err, q)
			continue
		}
		for tbl := range tables {
			if regexp.MustCompile(`\b` + tbl + `\b`).MatchString(q) {
				read[tbl] = true
			}
		}
	}
	var unread []string
	for tbl := range tables {
		if !read[tbl] {
			unread = append(unread, tbl)
		}
	}
	sort.Strings(unread)
	t.Logf("replayed %d distinct queries on ClickHouse %s (%d failed); tables no replayed query touched: %v", len(queries), ver.Raw, failed, unread)
	for _, core := range []string{"events", "event_ids", "consents", "dead_letters", "suppressions"} {
		if !read[core] {
			t.Errorf("no recorded query read table %s: the suite lost coverage of it", core)
		}
	}
}

// TestPassThroughSchemaOnModernClickHouse: chatwarden eval's pass-through
// schema (store.PassThroughSchema: events a Null table, the detection
// views on it) migrates on ClickHouse 26.x too, the ALTER of the Null
// events table included, and a row inserted into events reaches the views
// while events keeps none.
func TestPassThroughSchemaOnModernClickHouse(t *testing.T) {
	session, err := chdb.NewSession(t.TempDir())
	if err != nil {
		t.Fatalf("starting embedded ClickHouse: %v", err)
	}
	defer session.Close()
	query := func(q string) string {
		res, err := session.Query(q, "TabSeparated")
		if err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
		return strings.TrimSpace(res.String())
	}
	query("CREATE DATABASE IF NOT EXISTS cwpass")
	query("USE cwpass")
	query(store.SchemaMigrationsDDL)
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		for _, stmt := range m.StatementsFor(store.PassThroughSchema) {
			query(stmt)
		}
	}
	if got := query("SELECT engine FROM system.tables WHERE database = 'cwpass' AND name = 'events'"); got != "Null" {
		t.Fatalf("events engine %q, want Null", got)
	}
	query(`INSERT INTO events (event_id, ts, tenant, actor_id, action, store, subject_id, records, result, destination)
VALUES ('e1', '2026-03-02 10:00:00', 't1', 'a1', 'share', 'crm', 's1', 3, 'allowed', 'partner.example')`)
	for q, want := range map[string]string{
		"SELECT count() FROM events":                                            "0",
		"SELECT count() FROM actor_minute":                                      "1",
		"SELECT sumMerge(records_sum) FROM actor_minute":                        "3",
		"SELECT count() FROM shares WHERE destination = 'partner.example'":      "1",
		"SELECT sumMerge(events) FROM actor_minute_exports WHERE tenant = 't1'": "0",
	} {
		if got := query(q); got != want {
			t.Errorf("%s = %s, want %s", q, got, want)
		}
	}
}

// settingsClause renders settings as a SETTINGS clause.
func settingsClause(s map[string]any) string {
	if len(s) == 0 {
		return ""
	}
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s = %v", k, s[k])
	}
	return " SETTINGS " + strings.Join(parts, ", ")
}

// TestClusterSQLParsesOnModernClickHouse: the cluster schema
// (clickhouse.cluster) is the migrations rewritten by
// store.ClusterStatements; make test-cluster runs it on the 18.16 cluster.
// The embedded engine has no ZooKeeper and no remote_servers, so it cannot
// create replicated or Distributed tables: here every cluster statement,
// retention's cluster statements and the detection queries as shard-local
// reads run them (over the _local tables) must parse on ClickHouse 26.x
// (EXPLAIN AST), and the settings a cluster adds must be known to it.
func TestClusterSQLParsesOnModernClickHouse(t *testing.T) {
	session, err := chdb.NewSession(t.TempDir())
	if err != nil {
		t.Fatalf("starting embedded ClickHouse: %v", err)
	}
	defer session.Close()
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{}
	for _, stmt := range append([]string{store.SchemaMigrationsDDL}, flatten(ms)...) {
		out, err := store.ClusterStatements(stmt, "chatwarden", "cw")
		if err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, out...)
	}
	for _, q := range store.ClusterMaintenanceSQL("chatwarden", "cw") {
		stmts = append(stmts, strings.ReplaceAll(q, "?", "'cw'")) // the database, bound client-side
	}
	for _, q := range store.ShardLocalSQL() {
		if !strings.Contains(q, "_local") {
			t.Errorf("a shard-local query reads no local table:\n%s", q)
		}
		stmts = append(stmts, strings.ReplaceAll(q, "?", "1")) // bound client-side
	}
	for _, stmt := range stmts {
		if _, err := session.Query("EXPLAIN AST "+stmt, "TabSeparated"); err != nil {
			t.Errorf("does not parse on ClickHouse 26.x: %v\n%s", err, stmt)
		}
	}
	if _, err := session.Query("SELECT 1"+settingsClause(store.ClusterQuerySettings()), "TabSeparated"); err != nil {
		t.Errorf("a cluster setting is unknown to ClickHouse 26.x: %v", err)
	}
	t.Logf("%d cluster statements parse", len(stmts))
}

func flatten(ms []store.Migration) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Statements...)
	}
	return out
}
