package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one embedded, versioned schema change. Its statements are
// idempotent (IF NOT EXISTS), so re-running a half-applied migration is safe.
type Migration struct {
	Version    int
	Name       string
	Statements []string
	// fullOnly marks the statements (by index) that only the full schema
	// runs: the "-- +schema full" directive (see splitStatements).
	fullOnly map[int]bool
}

// Schema is the set of objects Migrate creates in a database.
type Schema int

const (
	// FullSchema is every table and every materialized view: what serve,
	// ingest, load, migrate and every page and report need.
	FullSchema Schema = iota
	// DetectionSchema is every table, but not the materialized views that
	// fill only the rollups of ingest's dedupe, the investigation pages,
	// the weekly report and data-subject reports (event_ids_mv,
	// events_by_subject_mv, actor_hour_mv, events_by_hour_mv,
	// vendor_hour_mv): chatwarden eval's throw-away database, where the
	// replay and the detectors read none of their tables and each view
	// costs ClickHouse CPU on every INSERT into events (docs/scaling.md,
	// "The eval database holds the detection schema"). Every table exists,
	// so schema_migrations and any reader work; those tables stay empty.
	// It is for a fresh database: Migrate with FullSchema refuses a
	// database that lacks the views (fullSchemaViews).
	DetectionSchema
	// PassThroughSchema is DetectionSchema whose events table is a Null
	// table: each INSERT's rows pass through the detection views
	// (actor_minute, actor_minute_exports, shares) and are not kept, which
	// spares ClickHouse the largest part of an INSERT (writing every
	// column of every row: about a third of the eval replay's INSERT CPU;
	// docs/scaling.md, "The eval database keeps no raw events"). A store
	// migrated with it answers every read of raw events (TopSubjects,
	// SubjectsRead, SubjectsOutsideConversation, SubjectBuckets, the
	// window aggregates of windows that are not whole minutes) with
	// ErrNoRawEvents instead of an empty answer. chatwarden eval uses it
	// when its replay answers those reads itself, and replays again with
	// DetectionSchema when it cannot. One server only: on a cluster the
	// events table is the Distributed one and its shards' local tables.
	PassThroughSchema
)

// ErrNoRawEvents is the error of a read of raw events on a database
// migrated with PassThroughSchema, which keeps none.
var ErrNoRawEvents = errors.New("the database keeps no raw events (migrated with the pass-through schema)")

// String names the schema as the directive and the logs do.
func (sc Schema) String() string {
	switch sc {
	case DetectionSchema:
		return "detection"
	case PassThroughSchema:
		return "pass-through"
	}
	return "full"
}

// passThroughEventsRe matches the statement that creates the events table,
// up to the end of its column list; PassThroughSchema creates it with the
// Null engine instead of the rest (engine, partitioning and order).
var passThroughEventsRe = regexp.MustCompile(`(?s)^(CREATE TABLE IF NOT EXISTS events \(.*?\))\s*ENGINE\s*=.*$`)

// statement returns statement stmt as the schema sc runs it: the events
// table a Null table for PassThroughSchema, every other statement as it is.
func (sc Schema) statement(stmt string) string {
	if sc != PassThroughSchema {
		return stmt
	}
	return passThroughEventsRe.ReplaceAllString(strings.TrimSpace(stmt), "$1 ENGINE = Null")
}

// Runs reports whether the schema sc runs statement i of m.
func (m Migration) Runs(i int, sc Schema) bool {
	return sc == FullSchema || !m.fullOnly[i]
}

// StatementsFor returns the statements of m that the schema sc runs, as it
// runs them (on one server).
func (m Migration) StatementsFor(sc Schema) []string {
	var out []string
	for i, stmt := range m.Statements {
		if m.Runs(i, sc) {
			out = append(out, sc.statement(stmt))
		}
	}
	return out
}

// Migrations returns the embedded migrations in version order. File names are
// NNNN_name.sql; statements are separated by a line ending in ";".
func Migrations() ([]Migration, error) {
	entries, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	seen := map[int]string{}
	for _, path := range entries {
		base := strings.TrimSuffix(strings.TrimPrefix(path, "migrations/"), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql", path)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migration %s: version %d already used by %s", path, v, other)
		}
		seen[v] = path
		b, err := migrationFS.ReadFile(path)
		if err != nil {
			return nil, err
		}
		stmts, fullOnly, err := splitStatements(string(b))
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", path, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, Statements: stmts, fullOnly: fullOnly})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// fullSchemaDirective, a comment line of its own before a statement (or
// inside it), marks the statement as the full schema's only: the
// DetectionSchema skips it. Only a CREATE MATERIALIZED VIEW may carry it,
// so that every schema has every table.
const fullSchemaDirective = "-- +schema full"

// splitStatements splits SQL text into statements at lines that end in ";",
// dropping "--" comment lines, and returns the indexes of the statements
// marked with fullSchemaDirective. A comment line starting with "-- +" is
// a directive: an unknown one is an error (a typo would otherwise put a
// view in every schema, or a statement in none).
func splitStatements(sql string) ([]string, map[int]bool, error) {
	var out []string
	fullOnly := map[int]bool{}
	var cur strings.Builder
	marked := false
	add := func(stmt string) error {
		if marked {
			if clusterViewRe.FindStringSubmatch(stmt) == nil {
				return fmt.Errorf("%q marks %q: only a CREATE MATERIALIZED VIEW IF NOT EXISTS ... TO may be left out of a schema",
					fullSchemaDirective, firstLine(stmt))
			}
			fullOnly[len(out)] = true
		}
		out = append(out, stmt)
		marked = false
		return nil
	}
	for _, line := range strings.Split(sql, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "-- +") {
			if t != fullSchemaDirective {
				return nil, nil, fmt.Errorf("unknown directive %q (the one known: %q)", t, fullSchemaDirective)
			}
			marked = true
			continue
		}
		if strings.HasPrefix(t, "--") || (t == "" && cur.Len() == 0) {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			if err := add(strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")); err != nil {
				return nil, nil, err
			}
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		if err := add(s); err != nil {
			return nil, nil, err
		}
	}
	if marked {
		return nil, nil, fmt.Errorf("%q marks no statement", fullSchemaDirective)
	}
	return out, fullOnly, nil
}

// createRe matches a migration's CREATE TABLE or CREATE MATERIALIZED VIEW
// IF NOT EXISTS (its DROP TABLE IF EXISTS: clusterDropRe).
var createRe = regexp.MustCompile(`^CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS ([A-Za-z_][A-Za-z0-9_]*)\b`)

// dropped returns the tables and views of the migrations ms that one of
// them drops and no later statement creates again: a migrated database
// lacks them (vendor_hour and vendor_hour_mv, replaced by
// vendor_actor_hour in 0018), so the lists read from the migrations
// (views of the full schema, unfilled tables, views a partial insert
// completes, tables a copy reads) leave them out.
func dropped(ms []Migration) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		for _, stmt := range m.Statements {
			stmt = strings.TrimSpace(stmt)
			if d := clusterDropRe.FindStringSubmatch(stmt); d != nil {
				out[d[1]] = true
			} else if c := createRe.FindStringSubmatch(stmt); c != nil {
				delete(out, c[1])
			}
		}
	}
	return out
}

// Dropped returns the tables and views that a migration drops and no
// later one creates again (see dropped).
func Dropped() (map[string]bool, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	return dropped(ms), nil
}

// fullSchemaViews returns the materialized views that only the full schema
// creates, in migration order, but those a later migration drops.
func fullSchemaViews() ([]string, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	gone := dropped(ms)
	var views []string
	for _, m := range ms {
		for i, stmt := range m.Statements {
			if m.Runs(i, DetectionSchema) {
				continue
			}
			// splitStatements let only a view be marked
			if v := clusterViewRe.FindStringSubmatch(strings.TrimSpace(stmt)); !gone[v[1]] && !slices.Contains(views, v[1]) {
				views = append(views, v[1])
			}
		}
	}
	return views, nil
}

// Unfilled returns the tables that no materialized view of the schema sc
// fills, in migration order: the tables a database migrated with sc keeps
// empty unless written directly (none for FullSchema); for
// PassThroughSchema events first, which keeps nothing written to it.
func (sc Schema) Unfilled() ([]string, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	var skipped []string
	if sc == PassThroughSchema {
		skipped = append(skipped, "events")
	}
	filled := map[string]bool{}
	gone := dropped(ms)
	for _, m := range ms {
		for i, stmt := range m.Statements {
			v := clusterViewRe.FindStringSubmatch(strings.TrimSpace(stmt))
			switch {
			case v == nil, gone[v[1]], gone[v[2]]:
			case m.Runs(i, sc):
				filled[v[2]] = true
			case !slices.Contains(skipped, v[2]):
				skipped = append(skipped, v[2])
			}
		}
	}
	out := skipped[:0]
	for _, t := range skipped {
		if !filled[t] {
			out = append(out, t)
		}
	}
	return out, nil
}

// columnChangeRe matches a migration statement that adds or drops one
// column. ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS (nor DROP
// COLUMN IF EXISTS), so Migrate checks system.columns itself: a migration
// that stopped half-way re-runs without an error. (On a cluster the table
// is qualified with its database and may have an ON CLUSTER clause; a
// comma outside the type's parentheses would be a second change.)
var columnChangeRe = regexp.MustCompile(`^(?i:ALTER\s+TABLE)\s+(?:[A-Za-z_][A-Za-z0-9_]*\.)?([A-Za-z_][A-Za-z0-9_]*)(?:\s+(?i:ON\s+CLUSTER)\s+[A-Za-z_][A-Za-z0-9_]*)?\s+(?i:(ADD|DROP)\s+COLUMN)\s+([A-Za-z_][A-Za-z0-9_]*)(?:\s+(?:[^,()]|\((?:[^()]|\([^()]*\))*\))+)?$`)

// columnChangeDone reports whether stmt adds one column that the table
// already has, or drops one it does not have, asking the server conn.
func (s *Store) columnChangeDone(ctx context.Context, conn driver.Conn, stmt string) (bool, error) {
	m := columnChangeRe.FindStringSubmatch(strings.TrimSpace(stmt))
	if m == nil {
		return false, nil
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
		s.cfg.Database, m[1], m[3]).Scan(&n); err != nil {
		return false, fmt.Errorf("reading the columns of %s: %w", m[1], err)
	}
	if strings.EqualFold(m[2], "DROP") {
		return n == 0, nil
	}
	return n > 0, nil
}

// statements returns stmt as it runs on this store: itself on one server,
// its cluster form on a cluster.
func (s *Store) statements(stmt string) ([]string, error) {
	if s.cfg.Cluster == "" {
		return []string{stmt}, nil
	}
	return ClusterStatements(stmt, s.cfg.Cluster, s.cfg.Database)
}

// migrateStatement runs one migration statement (each of its cluster forms
// on a cluster), skipping a column that is already there; a back-fill
// (INSERT INTO ... SELECT ... FROM events) runs hour by hour (backFill).
func (s *Store) migrateStatement(ctx context.Context, stmt string) error {
	if m := clusterFillRe.FindStringSubmatch(strings.TrimSpace(stmt)); m != nil {
		return s.backFill(ctx, m[1], strings.TrimSpace(stmt))
	}
	stmts, err := s.statements(stmt)
	if err != nil {
		return err
	}
	for _, st := range stmts {
		if done, err := s.columnChangeDone(ctx, s.conn, st); err != nil {
			return err
		} else if done {
			continue
		}
		if m := localAlterRe.FindStringSubmatch(st); m != nil && s.cfg.Cluster != "" {
			if err := s.alterOncePerShard(ctx, m[1], m[2]); err != nil {
				return err
			}
			continue
		}
		if err := s.exec(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

// localAlterRe matches the cluster form of an ALTER of a sharded table's
// replicated local table (ClusterStatements): its table and change.
var localAlterRe = regexp.MustCompile(`(?s)^ALTER TABLE [A-Za-z_][A-Za-z0-9_]*\.([A-Za-z_][A-Za-z0-9_]*` + localSuffix + `) ON CLUSTER [A-Za-z_][A-Za-z0-9_]* (.*)$`)

// alterOncePerShard runs ALTER TABLE table change (a replicated local
// table) without ON CLUSTER on one live replica of each shard of the
// cluster (system.clusters), skipping a shard whose table already has an
// added column; ZooKeeper carries the change to the shard's other
// replicas. ClickHouse 18.16's DDLWorker can run an ALTER ON CLUSTER of a
// replicated table on both replicas of a shard, and the second one then
// stops that node's DDLWorker ("Node exists ... /executed", every later ON
// CLUSTER statement waits for it: docs/scaling.md).
func (s *Store) alterOncePerShard(ctx context.Context, table, change string) error {
	stmt := "ALTER TABLE " + s.cfg.Database + "." + table + " " + change // identifiers and a migration's text: no user input
	return s.oncePerShard(ctx, table, stmt)
}

// oncePerShard runs stmt, an ALTER of table (a sharded table's replicated
// local table, named with its database), without ON CLUSTER on the first
// live replica of each shard of the cluster (system.clusters), in shard
// order; the shard's other replicas follow through ZooKeeper. Migrations'
// ALTERs and retention's DROP PARTITION of a sharded table go this way
// instead of ON CLUSTER (see alterOncePerShard).
func (s *Store) oncePerShard(ctx context.Context, table, stmt string) error {
	rows, err := s.conn.Query(ctx, "SELECT shard_num, host_address, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", s.cfg.Cluster)
	if err != nil {
		return fmt.Errorf("reading the nodes of cluster %s: %w", s.cfg.Cluster, err)
	}
	var shards [][]string // node addresses by shard, in replica order
	last := uint32(0)
	for rows.Next() {
		var (
			shard uint32
			host  string
			port  uint16
		)
		if err := rows.Scan(&shard, &host, &port); err != nil {
			rows.Close()
			return err
		}
		if shard != last || len(shards) == 0 {
			shards = append(shards, nil)
			last = shard
		}
		shards[len(shards)-1] = append(shards[len(shards)-1], net.JoinHostPort(host, strconv.Itoa(int(port))))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(shards) == 0 {
		return fmt.Errorf("cluster %s: system.clusters lists no node", s.cfg.Cluster)
	}
	for i, nodes := range shards {
		var errs []error
		done := false
		for _, addr := range nodes {
			if err := s.alterOn(ctx, addr, stmt); err != nil {
				errs = append(errs, fmt.Errorf("node %s: %w", addr, err))
				continue
			}
			done = true
			break
		}
		if !done {
			return fmt.Errorf("altering %s on shard %d: %w", table, i+1, errors.Join(errs...))
		}
	}
	return nil
}

// alterOn runs stmt on the node at addr unless the column it adds is
// there already (or the column it drops is gone).
func (s *Store) alterOn(ctx context.Context, addr, stmt string) error {
	conn, err := s.node(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if done, err := s.columnChangeDone(ctx, conn, stmt); err != nil || done {
		return err
	}
	return conn.Exec(ctx, stmt)
}

// SchemaMigrationsDDL creates the table that records applied migrations.
const SchemaMigrationsDDL = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = MergeTree() ORDER BY version`

// MigrationResult says what Migrate did.
type MigrationResult struct {
	Applied []int // versions applied by this call
	Current int   // the schema version after the call
}

// Migrate applies every embedded migration not yet recorded in
// schema_migrations, with the full schema (MigrateSchema). It is
// idempotent and safe to run at every start-up.
func (s *Store) Migrate(ctx context.Context, now time.Time) (MigrationResult, error) {
	return s.MigrateSchema(ctx, now, FullSchema)
}

// MigrateSchema applies every embedded migration not yet recorded in
// schema_migrations, skipping the statements that the schema sc leaves out
// (DetectionSchema: the views of the investigation and report rollups).
// A migration is recorded as applied either way, so sc must be chosen when
// the database is created: with FullSchema it fails on a database that
// lacks a view of the full schema (one migrated with DetectionSchema),
// whose rollups would silently miss the events stored before.
//
// On a cluster (Config.Cluster) each statement runs in its cluster form
// (ClusterStatements): ON CLUSTER, replicated, sharded event tables.
func (s *Store) MigrateSchema(ctx context.Context, now time.Time, sc Schema) (MigrationResult, error) {
	if sc == PassThroughSchema && s.cfg.Cluster != "" {
		return MigrationResult{}, fmt.Errorf("the %s schema is for one server, not a cluster (clickhouse.cluster %s)", sc, s.cfg.Cluster)
	}
	ddl, err := s.statements(SchemaMigrationsDDL)
	if err != nil {
		return MigrationResult{}, err
	}
	for _, stmt := range ddl {
		if err := s.exec(ctx, stmt); err != nil {
			return MigrationResult{}, fmt.Errorf("creating schema_migrations: %w", err)
		}
	}
	applied := map[int]bool{}
	rows, err := s.conn.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return MigrationResult{}, fmt.Errorf("reading schema_migrations: %w", err)
	}
	newest := 0
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return MigrationResult{}, err
		}
		applied[int(v)] = true
		newest = max(newest, int(v))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return MigrationResult{}, err
	}
	ms, err := Migrations()
	if err != nil {
		return MigrationResult{}, err
	}
	var res MigrationResult
	for _, m := range ms {
		if applied[m.Version] {
			res.Current = m.Version
			continue
		}
		for i, stmt := range m.Statements {
			if !m.Runs(i, sc) {
				continue
			}
			if err := s.migrateStatement(ctx, sc.statement(stmt)); err != nil {
				return res, fmt.Errorf("migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if err := s.insertRow(ctx, "INSERT INTO schema_migrations (version, name, applied_at)",
			uint32(m.Version), m.Name, now.UTC()); err != nil {
			return res, fmt.Errorf("recording migration %04d: %w", m.Version, err)
		}
		s.log.Info("applied migration", "version", m.Version, "name", m.Name, "schema", sc)
		res.Applied = append(res.Applied, m.Version)
		res.Current = m.Version
	}
	// A newer binary's schema is not this one's to judge: a later
	// migration may have dropped a view on purpose.
	if sc == FullSchema && newest <= res.Current {
		if err := s.checkFullSchemaViews(ctx); err != nil {
			return res, err
		}
	}
	// Whatever schema was asked for, the server says whether events keeps
	// its rows (a database migrated before with another schema keeps its
	// own).
	engine, err := s.stringsOf(ctx, "reading the engine of events",
		"SELECT engine FROM system.tables WHERE database = ? AND name = 'events'", s.cfg.Database)
	if err != nil {
		return res, err
	}
	s.passThrough.Store(slices.Equal(engine, []string{"Null"}))
	return res, nil
}

// KeepsRawEvents reports whether the database keeps the rows inserted into
// events: false once MigrateSchema found it a Null table
// (PassThroughSchema).
func (s *Store) KeepsRawEvents() bool { return !s.passThrough.Load() }

// rawEvents returns ErrNoRawEvents, wrapped in what, if the database keeps
// no raw events (PassThroughSchema); nil otherwise.
func (s *Store) rawEvents(what string) error {
	if s.passThrough.Load() {
		return fmt.Errorf("%s: %w", what, ErrNoRawEvents)
	}
	return nil
}

// checkFullSchemaViews fails when the database lacks a view that only the
// full schema creates: it was migrated with DetectionSchema (chatwarden
// eval's, normally dropped when the replay ends) or a view was dropped by
// hand, and the tables of those views lack the events stored since.
func (s *Store) checkFullSchemaViews(ctx context.Context) error {
	views, err := fullSchemaViews()
	if err != nil || len(views) == 0 {
		return err
	}
	have, err := s.stringsOf(ctx, "reading the views of the database",
		"SELECT name FROM system.tables WHERE database = ? AND name IN ?", s.cfg.Database, InList(views))
	if err != nil {
		return err
	}
	var missing []string
	for _, v := range views {
		if !slices.Contains(have, v) {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("database %s lacks the materialized views %s of the full schema (it was migrated with the %s schema, as chatwarden eval's databases are, or they were dropped): the tables they fill miss events; use a fresh database",
			s.cfg.Database, strings.Join(missing, ", "), DetectionSchema)
	}
	return nil
}
