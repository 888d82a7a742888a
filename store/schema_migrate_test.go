package store_test

import (
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
