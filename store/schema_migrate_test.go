package store_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/store"
)

// TestMigrateDetectionSchema: a database migrated with the detection
// schema has every table of the full schema and none of the views it
// leaves out; migrating it again with that schema does nothing, and with
// the full schema fails (its rollups would miss the events stored so far)
// while a full database migrated with the detection schema stays as it is.
func TestMigrateDetectionSchema(t *testing.T) {
	t.Parallel() // databases of their own
	cfg := storetest.Config(t)
	s := storetest.OpenSchema(t, cfg, store.DetectionSchema)
	fullCfg := storetest.Config(t)
	full := storetest.Open(t, fullCfg)
	count := func(cfg store.Config, kind string) uint64 {
		return storetest.Count(t, cfg, "SELECT count() FROM system.tables WHERE database = ? AND engine "+kind, cfg.Database)
	}
	empty, err := store.DetectionSchema.Unfilled()
	if err != nil {
		t.Fatal(err)
	}
	// (each left-out view fills a table of its own)
	tables, views := count(cfg, "!= 'MaterializedView'"), count(cfg, "= 'MaterializedView'")
	fullTables, fullViews := count(fullCfg, "!= 'MaterializedView'"), count(fullCfg, "= 'MaterializedView'")
	if tables != fullTables || views != fullViews-uint64(len(empty)) || views == 0 {
		t.Errorf("detection schema: %d tables, %d views; full schema: %d tables, %d views; want as many tables and %d views fewer",
			tables, views, fullTables, fullViews, len(empty))
	}
	ctx := t.Context()
	if res, err := s.MigrateSchema(ctx, time.Now(), store.DetectionSchema); err != nil || len(res.Applied) != 0 {
		t.Errorf("detection schema again: applied %v, %v; want nothing", res.Applied, err)
	}
	if _, err := s.Migrate(ctx, time.Now()); err == nil || !strings.Contains(err.Error(), "lacks the materialized views event_ids_mv, events_by_subject_mv") {
		t.Errorf("full schema over the detection schema: %v, want an error naming the missing views", err)
	}
	if res, err := full.MigrateSchema(ctx, time.Now(), store.DetectionSchema); err != nil || len(res.Applied) != 0 {
		t.Errorf("detection schema over the full schema: applied %v, %v; want nothing", res.Applied, err)
	}
	if n := count(fullCfg, "= 'MaterializedView'"); n != fullViews {
		t.Errorf("the full database has %d views after the detection schema's migrate, want %d", n, fullViews)
	}
}

// TestMigratePassThroughSchema: a database migrated with the pass-through
// schema has the detection schema's tables and views but an events table
// that keeps nothing (the Null engine); the rows of an INSERT reach the
// detection views all the same, so that its window aggregates and shares
// are those of a detection database given the same events, and every read
// of raw events fails with ErrNoRawEvents instead of answering from an
// empty table.
func TestMigratePassThroughSchema(t *testing.T) {
	t.Parallel() // databases of their own
	ctx := t.Context()
	cfg := storetest.Config(t)
	if cfg.Cluster != "" {
		// On a cluster events is the Distributed table over the shards'
		// local ones: MigrateSchema refuses the schema before any DDL.
		s, err := store.Open(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = s.DropDatabase(context.Background())
			s.Close()
		})
		if _, err := s.MigrateSchema(ctx, time.Now(), store.PassThroughSchema); err == nil || !strings.Contains(err.Error(), "one server") {
			t.Fatalf("the pass-through schema on a cluster: %v, want a refusal", err)
		}
		return
	}
	pass := storetest.OpenSchema(t, cfg, store.PassThroughSchema)
	detCfg := storetest.Config(t)
	det := storetest.OpenSchema(t, detCfg, store.DetectionSchema)
	count := func(cfg store.Config, kind string) uint64 {
		return storetest.Count(t, cfg, "SELECT count() FROM system.tables WHERE database = ? AND engine "+kind, cfg.Database)
	}
	if got, want := count(cfg, "!= ''"), count(detCfg, "!= ''"); got != want || got == 0 {
		t.Errorf("pass-through schema: %d tables and views, detection schema %d", got, want)
	}
	if n := storetest.Count(t, cfg, "SELECT count() FROM system.tables WHERE database = ? AND name = 'events' AND engine = 'Null'", cfg.Database); n != 1 {
		t.Fatalf("events is not a Null table in the pass-through database")
	}
	from := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	to := from.Add(24 * time.Hour)
	evs := storetest.MixedEvents(from, to)
	for _, s := range []*store.Store{pass, det} {
		if err := s.InsertEvents(ctx, evs, to); err != nil {
			t.Fatal(err)
		}
	}
	if n := storetest.Count(t, cfg, "SELECT count() FROM events"); n != 0 {
		t.Errorf("the pass-through events table holds %d rows", n)
	}
	if n := storetest.Count(t, cfg, "SELECT count() FROM actor_minute"); n == 0 {
		t.Error("actor_minute is empty: the rows did not pass through the views")
	}
	for _, w := range []time.Duration{time.Minute, 10 * time.Minute} {
		got, err := pass.WindowAggregates(ctx, from, to, w, store.Shard{})
		if err != nil {
			t.Fatal(err)
		}
		want, err := det.WindowAggregates(ctx, from, to, w, store.Shard{})
		if err != nil {
			t.Fatal(err)
		}
		sortSets(got)
		sortSets(want)
		if len(got) == 0 || !reflect.DeepEqual(got, want) {
			t.Errorf("%s windows: %d rows, want the detection database's %d (equal: %v)", w, len(got), len(want), reflect.DeepEqual(got, want))
		}
		gotD, err := pass.DestinationWindows(ctx, from, to, w, store.Shard{})
		if err != nil {
			t.Fatal(err)
		}
		wantD, err := det.DestinationWindows(ctx, from, to, w, store.Shard{})
		if err != nil {
			t.Fatal(err)
		}
		if len(gotD) == 0 || !reflect.DeepEqual(gotD, wantD) {
			t.Errorf("%s destination windows: %d rows, want the detection database's %d", w, len(gotD), len(wantD))
		}
	}
	// every read of raw events refuses
	e := evs[10]
	reads := map[string]error{}
	_, reads["TopSubjects"] = pass.TopSubjects(ctx, e.Tenant, e.Actor.ID, from, to, 5)
	_, reads["SubjectsRead"] = pass.SubjectsRead(ctx, e.Tenant, e.Actor.ID, from, to)
	_, reads["SubjectsOutsideConversation"] = pass.SubjectsOutsideConversation(ctx, e.Tenant, e.Actor.ID, from, to)
	_, reads["SubjectBuckets"] = pass.SubjectBuckets(ctx, from, to, 10*time.Minute, store.Shard{})
	_, reads["WindowAggregates 30s"] = pass.WindowAggregates(ctx, from, to, 30*time.Second, store.Shard{})
	for name, err := range reads {
		if !errors.Is(err, store.ErrNoRawEvents) {
			t.Errorf("%s on the pass-through database: %v, want ErrNoRawEvents", name, err)
		}
	}
	// and the detection database's do not
	if subs, err := det.TopSubjects(ctx, e.Tenant, e.Actor.ID, from, to, 5); err != nil || len(subs) == 0 {
		t.Errorf("TopSubjects on the detection database: %v, %v", subs, err)
	}
	// Migrated again with the detection schema, a pass-through database
	// stays one: events keeps nothing, as the server says.
	if _, err := pass.MigrateSchema(ctx, time.Now(), store.DetectionSchema); err != nil {
		t.Fatal(err)
	}
	if _, err := pass.TopSubjects(ctx, e.Tenant, e.Actor.ID, from, to, 5); !errors.Is(err, store.ErrNoRawEvents) {
		t.Errorf("TopSubjects after a second migrate: %v, want ErrNoRawEvents", err)
	}
	if _, err := pass.Migrate(ctx, time.Now()); err == nil {
		t.Error("the full schema over the pass-through schema: no error")
	}
}
