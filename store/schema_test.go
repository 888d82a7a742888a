package store

import (
	"slices"
	"strings"
	"testing"
)

// TestSplitStatementsSchemaDirective: "-- +schema full" marks the next
// statement, which must be a materialized view; any other "-- +" line is
// an error, so that a typo cannot put a view in every schema unnoticed.
func TestSplitStatementsSchemaDirective(t *testing.T) {
	const view = "CREATE MATERIALIZED VIEW IF NOT EXISTS b_mv TO b AS\nSELECT x FROM a;\n"
	for _, tc := range []struct {
		name     string
		sql      string
		stmts    int
		fullOnly []int
		err      string
	}{
		{name: "none", sql: "CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = MergeTree() ORDER BY x;\n" + view, stmts: 2},
		{name: "the view", sql: "CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = MergeTree() ORDER BY x;\n\n-- why\n-- +schema full\n" + view,
			stmts: 2, fullOnly: []int{1}},
		{name: "inside the statement", sql: "CREATE MATERIALIZED VIEW IF NOT EXISTS b_mv TO b AS\n-- +schema full\nSELECT x FROM a;\n" + view,
			stmts: 2, fullOnly: []int{0}},
		{name: "a table", sql: "-- +schema full\nCREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = MergeTree() ORDER BY x;\n", err: "only a CREATE MATERIALIZED VIEW"},
		{name: "a drop", sql: "-- +schema full\nDROP TABLE IF EXISTS b_mv;\n", err: "only a CREATE MATERIALIZED VIEW"},
		{name: "typo", sql: "-- +schema ful\n" + view, err: "unknown directive"},
		{name: "at the end", sql: view + "-- +schema full\n", err: "marks no statement"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stmts, fullOnly, err := splitStatements(tc.sql)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var marked []int
			for i := range stmts {
				if fullOnly[i] {
					marked = append(marked, i)
				}
			}
			if len(stmts) != tc.stmts || !slices.Equal(marked, tc.fullOnly) {
				t.Fatalf("%d statements, full schema only %v; want %d, %v", len(stmts), marked, tc.stmts, tc.fullOnly)
			}
		})
	}
}

// TestDetectionSchema: the detection schema leaves out the views of the
// rollups that only ingest's dedupe, the pages and the reports read, and
// nothing else: every table of the full schema, and every view that fills
// what detection reads (actor_minute, actor_minute_exports, shares).
// (detect/eval's TestReplayReadsNoUnfilledTable checks on the server that
// a replay reads none of the tables it leaves empty.)
func TestDetectionSchema(t *testing.T) {
	views, err := fullSchemaViews()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"event_ids_mv", "events_by_subject_mv", "actor_hour_mv", "events_by_hour_mv", "vendor_actor_hour_mv"}; !slices.Equal(views, want) {
		t.Errorf("views of the full schema only: %v, want %v", views, want)
	}
	empty, err := DetectionSchema.Unfilled()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"event_ids", "events_by_subject", "actor_hour", "events_by_hour", "vendor_actor_hour"}; !slices.Equal(empty, want) {
		t.Errorf("tables the detection schema leaves empty: %v, want %v", empty, want)
	}
	if pass, err := PassThroughSchema.Unfilled(); err != nil || !slices.Equal(pass, append([]string{"events"}, empty...)) {
		t.Errorf("tables the pass-through schema leaves empty: %v (%v), want events and %v", pass, err, empty)
	}
	if full, err := FullSchema.Unfilled(); err != nil || len(full) != 0 {
		t.Errorf("tables the full schema leaves empty: %v (%v), want none", full, err)
	}
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		for i, stmt := range m.Statements {
			if !m.Runs(i, DetectionSchema) && clusterViewRe.FindStringSubmatch(strings.TrimSpace(stmt)) == nil {
				t.Errorf("migration %04d statement %d is left out of the detection schema and is no view:\n%s", m.Version, i+1, stmt)
			}
		}
	}
}
