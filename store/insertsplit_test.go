package store_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestSplitEvents: the groups of a split insert hold every row of every
// batch exactly once; rows of several days go to the groups by whole UTC
// days (no day in two groups) when that leaves each group at least a
// quarter of the rows, else (one day, or one day with nearly all rows) in
// two halves in order.
func TestSplitEvents(t *testing.T) {
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	mk := func(n int, step time.Duration) []models.Event {
		evs := make([]models.Event, n)
		for i := range evs {
			evs[i].EventID = fmt.Sprint(i)
			evs[i].TS = base.Add(time.Duration(i) * step)
		}
		return evs
	}
	check := func(t *testing.T, bs []store.EventBatch, byDay bool) {
		t.Helper()
		groups := store.SplitEvents(bs)
		if len(groups) != 2 {
			t.Fatalf("%d groups, want 2", len(groups))
		}
		n := 0
		for _, b := range bs {
			n += len(b.Events)
		}
		seen := map[[2]int]int{}
		dayGroup := map[int64]int{}
		for g, rows := range groups {
			if len(rows) != len(bs) {
				t.Fatalf("group %d has rows of %d batches, want %d", g, len(rows), len(bs))
			}
			size := 0
			for i, js := range rows {
				size += len(js)
				for _, j := range js {
					seen[[2]int{i, int(j)}]++
					d := bs[i].Events[j].TS.Unix() / 86400
					if h, ok := dayGroup[d]; ok && h != g && byDay {
						t.Errorf("day %d in groups %d and %d", d, h, g)
					}
					dayGroup[d] = g
				}
			}
			if size < n/4 {
				t.Errorf("group %d has %d of %d rows, under a quarter", g, size, n)
			}
		}
		for i, b := range bs {
			for j := range b.Events {
				if seen[[2]int{i, j}] != 1 {
					t.Errorf("batch %d row %d in %d groups, want 1", i, j, seen[[2]int{i, j}])
				}
			}
		}
		if len(seen) != n {
			t.Errorf("%d rows in the groups, want %d", len(seen), n)
		}
	}
	t.Run("days", func(t *testing.T) {
		evs := mk(5500, 40*time.Second) // 61 hours: three days
		check(t, []store.EventBatch{{Events: evs[:1200]}, {Events: evs[1200:1200]}, {Events: evs[1200:]}}, true)
	})
	t.Run("one_day", func(t *testing.T) {
		evs := mk(5000, time.Second)
		check(t, []store.EventBatch{{Events: evs}}, false)
		g := store.SplitEvents([]store.EventBatch{{Events: evs}})
		if len(g[0][0]) != 2500 || g[0][0][0] != 0 || g[1][0][0] != 2500 {
			t.Errorf("one day of 5,000 rows: groups of %d and %d rows starting at %d and %d, want halves in order",
				len(g[0][0]), len(g[1][0]), g[0][0][0], g[1][0][0])
		}
	})
	t.Run("one_busy_day", func(t *testing.T) {
		evs := mk(5000, time.Second)
		evs[0].TS = base.Add(-time.Hour) // the day before: one row
		check(t, []store.EventBatch{{Events: evs}}, false)
	})
}

// TestInsertEventsSplit: an insert split into two concurrent INSERTs
// stores the rows (ingested_at included) one INSERT stores, in events and
// in every materialized view's table. On one server, rows of three days go
// by whole days (as many parts in events as one INSERT makes, when the
// server's days are UTC days), and rows of one day as two INSERTs (two
// parts where one INSERT makes one).
func TestInsertEventsSplit(t *testing.T) {
	t.Parallel() // databases of their own
	ctx := t.Context()
	base := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		step time.Duration
	}{{"days", 40 * time.Second}, {"one_day", time.Second}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			evs := benchEvents(3, 5500, base)
			for i := range evs {
				evs[i].TS = base.Add(time.Duration(i) * c.step)
			}
			bs := []store.EventBatch{
				{Events: evs[:1200], IngestedAt: base.Add(14 * time.Hour)},
				{Events: evs[1200:], IngestedAt: base.Add(62*time.Hour + 500*time.Millisecond)},
			}
			split, one := storetest.Config(t), storetest.Config(t)
			if err := store.InsertEventBatchesSplit(ctx, storetest.Open(t, split), bs, 1000, 1000); err != nil {
				t.Fatal(err)
			}
			if err := store.InsertEventBatchesSplit(ctx, storetest.Open(t, one), bs, 1000, len(evs)+1); err != nil {
				t.Fatal(err)
			}
			contents := func(cfg store.Config) map[string]string {
				out := map[string]string{}
				for name, q := range map[string]string{
					"events":            "SELECT sum(cityHash64(event_id, toString(ts), tenant, actor_id, subject_id, resource_id, toString(records), toString(ingested_at))) FROM events",
					"count":             "SELECT count() FROM events",
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
			got, want := contents(split), contents(one)
			if want["count"] != "5500" {
				t.Fatalf("one INSERT stored %s events, want 5500", want["count"])
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: split %s, one INSERT %s", k, got[k], v)
				}
			}
			if split.Cluster != "" {
				return
			}
			parts := func(cfg store.Config) uint64 {
				return storetest.Count(t, cfg, "SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'events' AND level = 0")
			}
			ps, po := parts(split), parts(one)
			if c.name == "one_day" {
				if po != 1 || ps != 2 {
					t.Errorf("one day: level-0 parts of events split %d, one INSERT %d; want 2 and 1", ps, po)
				}
				return
			}
			utc := storetest.Count(t, split, "SELECT toUInt64(timezone() IN ('UTC', 'Etc/UTC', 'UCT', 'Universal', 'Zulu'))")
			if utc == 1 && ps != po {
				t.Errorf("three UTC days: level-0 parts of events split %d, one INSERT %d; want the same", ps, po)
			}
		})
	}
}

// TestSplitInsertHalfFailedRetriedOnce: when one of the two INSERTs of a
// split insert fails and the other stores its rows, the retry ingest makes
// (CompletePartialInsert over the whole insert's ids, then an insert of
// the rest) leaves events and every materialized view's table with each
// event exactly once. The fault is a materialized view on events that
// throws for the rows of one of the two days (throwIf), so the same INSERT
// fails on every run: no timing. The split threshold is lowered to 10
// rows (InsertEventBatchesSplit) so that 40 events take the path an
// insert of 40,000 takes.
func TestSplitInsertHalfFailedRetriedOnce(t *testing.T) {
	t.Parallel() // a database of its own
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	ctx := t.Context()
	onCluster := ""
	if cfg.Cluster != "" {
		onCluster = " ON CLUSTER " + cfg.Cluster
	}
	// Two UTC days, 20 events each: splitEvents gives each INSERT one day.
	a := partialEvents("a", 20, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	b := partialEvents("b", 20, time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC))
	all := slices.Concat(a, b)
	groups := store.SplitEvents([]store.EventBatch{{Events: all}})
	for g, rows := range groups {
		prefix := all[rows[0][0]].EventID[:2]
		for _, j := range rows[0] {
			if all[j].EventID[:2] != prefix {
				t.Fatalf("group %d holds events of both days (%s and %s): the fault would fail both INSERTs", g, prefix, all[j].EventID)
			}
		}
	}
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	bs := []store.EventBatch{{Events: all, IngestedAt: at}}

	// On one server, ClickHouse 18.16 writes the events table, then pushes
	// to the views in the order of their names: the failing INSERT stores
	// its events and the actor_* views' rows, and none of event_ids,
	// events_by_*, shares and vendor_actor_hour. (On the test cluster it stores
	// the day's rows of one shard and not the other's.)
	fault := cfg.Database + ".b_split_fault_mv"
	storetest.Exec(t, cfg, "CREATE MATERIALIZED VIEW "+fault+onCluster+
		" ENGINE = Memory AS SELECT throwIf(startsWith(event_id, 'b-')) AS fault FROM "+cfg.Database+".events")
	err := store.InsertEventBatchesSplit(ctx, s, bs, 1000, 10)
	if err == nil {
		t.Fatal("the split insert succeeded with the fault view attached; want the day-2 INSERT to fail")
	}
	t.Logf("the split insert failed: %v", err)
	stored := func(prefix string) uint64 {
		return storetest.Count(t, cfg, "SELECT count() FROM events WHERE startsWith(event_id, ?)", prefix)
	}
	if n := stored("a-"); n != uint64(len(a)) {
		t.Fatalf("the INSERT that did not fail stored %d of its %d events", n, len(a))
	}
	after := viewCounts(t, cfg)
	t.Logf("after the failure: events holds %d of day 1's events, %d of day 2's; views %v", stored("a-"), stored("b-"), after)
	if maps.Equal(after, wantCounts(all)) {
		t.Fatal("the failed INSERT left every table complete: the test would not show the repair")
	}
	storetest.Exec(t, cfg, "DROP TABLE "+fault+onCluster)

	// The retry, as ingest's insert_events makes it (ingest/consumer.go):
	// complete what the failed attempt stored, insert the rest.
	retry := func() store.PartialInsert {
		t.Helper()
		done, err := s.CompletePartialInsert(ctx, ids(all), all[0].TS, all[len(all)-1].TS)
		if err != nil {
			t.Fatal(err)
		}
		var rest []models.Event
		for _, e := range all {
			if !done.Stored[e.EventID] {
				rest = append(rest, e)
			}
		}
		if err := store.InsertEventBatchesSplit(ctx, s, []store.EventBatch{{Events: rest, IngestedAt: at}}, 1000, 10); err != nil {
			t.Fatal(err)
		}
		return done
	}
	done := retry()
	if len(done.Unsure) != 0 {
		t.Errorf("Unsure = %v, want none", done.Unsure)
	}
	want := wantCounts(all)
	check := func(when string) {
		t.Helper()
		if c := viewCounts(t, cfg); !maps.Equal(c, want) {
			t.Errorf("%s: %v, want %v", when, c, want)
		}
		for _, table := range []string{"events", "event_ids", "events_by_subject", "events_by_hour"} {
			if n := storetest.Count(t, cfg, "SELECT toUInt64(count() - uniqExact(event_id)) FROM "+table); n != 0 {
				t.Errorf("%s: %s holds %d rows more than distinct event ids", when, table, n)
			}
		}
	}
	check("after the retry")

	// Another retry (its answer lost) stores nothing again.
	done = retry()
	if len(done.Stored) != len(all) || len(done.Written) != 0 {
		t.Errorf("second retry: %d stored, Written %v; want %d stored, nothing written", len(done.Stored), done.Written, len(all))
	}
	check("after a second retry")
}
