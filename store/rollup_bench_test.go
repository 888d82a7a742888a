package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/store"
)

// BenchmarkInsertEventsActorHour is the ingest cost of the actor_hour
// rollup (issue 12): batches of 10,000 events inserted with InsertEvents
// into two databases in turn, one with actor_hour's view and one with it
// detached, so that both figures come from the same run under the same
// load. Reported in events/s: with_actor_hour and without_actor_hour.
//
//	go test -run '^$' -bench BenchmarkInsertEventsActorHour -benchtime 30x ./store/
func BenchmarkInsertEventsActorHour(b *testing.B) {
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
			storetest.Exec(b, cfg, "DETACH TABLE "+cfg.Database+".actor_hour_mv"+on)
			// Attached again before the database is dropped (cleanups
			// run last first): 18.16 leaves a detached table's metadata
			// behind and fails to drop its database.
			b.Cleanup(func() { storetest.Exec(b, cfg, "ATTACH TABLE "+cfg.Database+".actor_hour_mv"+on) })
		}
		return s
	}
	with, without := open(false), open(true)
	var took [2]time.Duration
	batches := 0
	for b.Loop() {
		for i, s := range []*store.Store{with, without} {
			b.StopTimer()
			batches++
			// Every batch of its own ids, over an hour of the day.
			evs := benchEvents(batches, batch, base.Add(time.Duration(batches)*time.Minute))
			b.StartTimer()
			start := time.Now()
			if err := s.InsertEvents(ctx, evs, base); err != nil {
				b.Fatal(err)
			}
			took[i] += time.Since(start)
		}
	}
	b.ReportMetric(float64(b.N*batch)/took[0].Seconds(), "with_actor_hour_events/s")
	b.ReportMetric(float64(b.N*batch)/took[1].Seconds(), "without_actor_hour_events/s")
}
