package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/store"
)

// TestInsertEventsInBlocks: a batch larger than one block is sent as
// several blocks of one INSERT (driver.Batch.Flush). The same 5,500 events
// over three days go into two databases, as 6 blocks of at most 1,000 rows
// and as one block; both must hold the same rows in events and in every
// materialized view's table. On one server ClickHouse squashes the blocks of
// one INSERT before writing, so the blocks must have created exactly the
// parts (per table, with their rows) that the single block did: 6 separate
// INSERTs would have made a part per block and partition in every table.
func TestInsertEventsInBlocks(t *testing.T) {
	t.Parallel() // databases of their own
	ctx := t.Context()
	base := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	evs := benchEvents(1, 5500, base)
	for i := range evs {
		evs[i].TS = base.Add(time.Duration(i) * 40 * time.Second) // 61 hours: three or four daily partitions
	}
	var cfgs [2]store.Config
	for i, blockRows := range []int{1000, len(evs)} {
		cfgs[i] = storetest.Config(t)
		s := storetest.Open(t, cfgs[i])
		if err := store.InsertEventsBlocks(ctx, s, evs, base, blockRows); err != nil {
			t.Fatalf("blocks of %d rows: %v", blockRows, err)
		}
	}
	// Every table of the database that the insert filled, with its rows.
	contents := func(cfg store.Config) map[string]string {
		conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{cfg.Addr}, Auth: clickhouse.Auth{Database: cfg.Database}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		out := map[string]string{}
		for _, q := range []struct{ name, sql string }{
			{"events", "SELECT count(), sum(cityHash64(event_id, toString(ts), tenant, actor_id, subject_id, resource_id, toString(records))) FROM events"},
			{"event_ids", "SELECT count(), sum(cityHash64(event_id)) FROM event_ids"},
			{"events_by_subject", "SELECT count(), sum(cityHash64(event_id, subject_id)) FROM events_by_subject"},
			{"actor_minute", "SELECT count(), sum(n) FROM (SELECT tenant, actor_id, minute, sumMerge(events) AS n FROM actor_minute GROUP BY tenant, actor_id, minute)"},
			{"actor_hour", "SELECT count(), sum(n) FROM (SELECT tenant, actor_id, hour, sumMerge(events) AS n FROM actor_hour GROUP BY tenant, actor_id, hour)"},
			{"events_by_hour", "SELECT count(), sum(cityHash64(event_id)) FROM events_by_hour"},
		} {
			var n, h uint64
			if err := conn.QueryRow(ctx, q.sql).Scan(&n, &h); err != nil {
				t.Fatalf("%s: %v", q.sql, err)
			}
			if n == 0 {
				t.Fatalf("%s: no rows in %s", cfg.Database, q.name)
			}
			out[q.name] = fmt.Sprintf("%d rows, hash %d", n, h)
		}
		if cfg.Cluster == "" {
			rows, err := conn.Query(ctx, "SELECT table, count(), sum(rows) FROM system.parts WHERE database = ? AND level = 0 GROUP BY table", cfg.Database)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var table string
				var parts, n uint64
				if err := rows.Scan(&table, &parts, &n); err != nil {
					t.Fatal(err)
				}
				out["parts of "+table] = fmt.Sprintf("%d parts, %d rows", parts, n)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	blocks, one := contents(cfgs[0]), contents(cfgs[1])
	if cfgs[0].Cluster == "" {
		days := storetest.Count(t, cfgs[1], "SELECT uniqExact(toYYYYMMDD(ts)) FROM "+cfgs[1].Database+".events")
		if want := fmt.Sprintf("%d parts, 5500 rows", days); days < 3 || one["parts of events"] != want {
			t.Fatalf("one block of 5,500 events over %d days: events has %s, want %s", days, one["parts of events"], want)
		}
	}
	for k, v := range one {
		if blocks[k] != v {
			t.Errorf("%s: as blocks of 1,000 rows %q, as one block %q", k, blocks[k], v)
		}
	}
	for k, v := range blocks {
		if _, ok := one[k]; !ok {
			t.Errorf("%s: as blocks of 1,000 rows %q, not in the one-block database", k, v)
		}
	}
}

// TestInsertEventBatches: batches with their own ingested_at, inserted as
// one INSERT, store the rows (ingested_at included) that one InsertEvents
// per batch stores, in events and in every materialized view's table; on
// one server as one set of parts (a part per day in events), where the
// INSERTs per batch made a part per batch and day.
func TestInsertEventBatches(t *testing.T) {
	t.Parallel() // databases of their own
	ctx := t.Context()
	base := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	evs := benchEvents(2, 5500, base)
	for i := range evs {
		evs[i].TS = base.Add(time.Duration(i) * 40 * time.Second) // 61 hours: three or four daily partitions
	}
	// Three batches over the days, and an empty one.
	bs := []store.EventBatch{
		{Events: evs[:1200], IngestedAt: base.Add(14 * time.Hour)},
		{Events: evs[1200:1200], IngestedAt: base.Add(20 * time.Hour)},
		{Events: evs[1200:4000], IngestedAt: base.Add(45 * time.Hour)},
		{Events: evs[4000:], IngestedAt: base.Add(62*time.Hour + 500*time.Millisecond)},
	}
	one, each := storetest.Config(t), storetest.Config(t)
	if err := storetest.Open(t, one).InsertEventBatches(ctx, bs); err != nil {
		t.Fatal(err)
	}
	s := storetest.Open(t, each)
	for _, b := range bs {
		if err := s.InsertEvents(ctx, b.Events, b.IngestedAt); err != nil {
			t.Fatal(err)
		}
	}
	contents := func(cfg store.Config) map[string]string {
		out := map[string]string{}
		for name, q := range map[string]string{
			"events":            "SELECT sum(cityHash64(event_id, toString(ts), tenant, actor_id, subject_id, resource_id, toString(records), toString(ingested_at))) FROM events",
			"ingested_at":       "SELECT sum(cityHash64(toString(at), n)) FROM (SELECT ingested_at AS at, count() AS n FROM events GROUP BY at)",
			"event_ids":         "SELECT sum(cityHash64(event_id)) FROM event_ids",
			"events_by_subject": "SELECT sum(cityHash64(event_id, subject_id)) FROM events_by_subject",
			"actor_minute":      "SELECT sum(cityHash64(tenant, actor_id, toString(minute), n)) FROM (SELECT tenant, actor_id, minute, sumMerge(events) AS n FROM actor_minute GROUP BY tenant, actor_id, minute)",
			"actor_hour":        "SELECT sum(cityHash64(tenant, actor_id, toString(hour), n)) FROM (SELECT tenant, actor_id, hour, sumMerge(events) AS n FROM actor_hour GROUP BY tenant, actor_id, hour)",
			"events_by_hour":    "SELECT sum(cityHash64(event_id)) FROM events_by_hour",
		} {
			out[name] = fmt.Sprint(storetest.Count(t, cfg, q))
		}
		return out
	}
	got, want := contents(one), contents(each)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: one INSERT of the batches %s, an InsertEvents per batch %s", k, got[k], v)
		}
	}
	if n := storetest.Count(t, one, "SELECT count() FROM events"); n != uint64(len(evs)) {
		t.Errorf("events holds %d rows, want %d", n, len(evs))
	}
	if n := storetest.Count(t, one, "SELECT uniqExact(ingested_at) FROM events"); n != 3 {
		t.Errorf("%d distinct ingested_at, want 3 (one per non-empty batch)", n)
	}
	if one.Cluster == "" {
		days := storetest.Count(t, one, "SELECT uniqExact(toYYYYMMDD(ts)) FROM events")
		parts := storetest.Count(t, one, "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'events' AND level = 0")
		perBatch := storetest.Count(t, each, "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'events' AND level = 0")
		if parts != days || perBatch <= days {
			t.Errorf("level-0 parts of events: one INSERT %d, an INSERT per batch %d; want %d (one per day) and more", parts, perBatch, days)
		}
	}
}
