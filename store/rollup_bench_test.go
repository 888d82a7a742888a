package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// BenchmarkInsertEventsActorHour is the ingest cost of the weekly
// report's rollups (issue 12: actor_hour and events_by_hour): batches of
// 10,000 events inserted with InsertEvents into two databases in turn, one
// with their views and one with them detached, so that both figures come
// from the same run under the same load. Reported in events/s:
// with_rollups and without_rollups.
//
//	go test -run '^$' -bench BenchmarkInsertEventsActorHour -benchtime 30x ./store/
func BenchmarkInsertEventsActorHour(b *testing.B) {
	benchInsertWithout(b, []string{"actor_hour_mv", "events_by_hour_mv"}, false, "with_rollups_events/s", "without_rollups_events/s")
}

// BenchmarkInsertEventsVendorHour is the ingest cost of vendor_actor_hour
// (migration 0015, the weekly report's vendor activity): as
// BenchmarkInsertEventsActorHour, with every other view attached in both
// databases and vendor_actor_hour_mv detached in one, and one actor in seven a
// vendor's (as in make bench-query's data). Reported in events/s:
// with_vendor_actor_hour and without_vendor_actor_hour.
//
//	go test -run '^$' -bench BenchmarkInsertEventsVendorHour -benchtime 30x ./store/
func BenchmarkInsertEventsVendorHour(b *testing.B) {
	benchInsertWithout(b, []string{"vendor_actor_hour_mv"}, true, "with_vendor_actor_hour_events/s", "without_vendor_actor_hour_events/s")
}

// benchInsertWithout inserts batches of 10,000 events into two databases
// in turn, one with every view and one with views detached, and reports
// each one's events/s under the names with and without. vendors makes one
// actor in seven a vendor's.
func benchInsertWithout(b *testing.B, views []string, vendors bool, with, without string) {
	const batch = 10_000
	ctx := context.Background()
	base := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	open := func(detach bool) *store.Store {
		cfg := storetest.Config(b)
		cfg.LogQueries = false
		s := storetest.Open(b, cfg)
		if detach {
			on := ""
			if cfg.Cluster != "" {
				on = " ON CLUSTER " + cfg.Cluster
			}
			for _, v := range views {
				storetest.Exec(b, cfg, "DETACH TABLE "+cfg.Database+"."+v+on)
				// Attached again before the database is dropped
				// (cleanups run last first): 18.16 leaves a detached
				// table's metadata behind and fails to drop its
				// database.
				b.Cleanup(func() { storetest.Exec(b, cfg, "ATTACH TABLE "+cfg.Database+"."+v+on) })
			}
		}
		return s
	}
	dbs := []*store.Store{open(false), open(true)}
	var took [2]time.Duration
	batches := 0
	for b.Loop() {
		for i, s := range dbs {
			b.StopTimer()
			batches++
			// Every batch of its own ids, over an hour of the day.
			evs := benchEvents(batches, batch, base.Add(time.Duration(batches)*time.Minute))
			if vendors {
				for j := range evs {
					if j%997%7 == 6 {
						evs[j].Actor.Type, evs[j].Actor.Vendor = models.ActorVendor, "acme-bpo"
					}
				}
			}
			b.StartTimer()
			start := time.Now()
			if err := s.InsertEvents(ctx, evs, base); err != nil {
				b.Fatal(err)
			}
			took[i] += time.Since(start)
		}
	}
	b.ReportMetric(float64(b.N*batch)/took[0].Seconds(), with)
	b.ReportMetric(float64(b.N*batch)/took[1].Seconds(), without)
}
