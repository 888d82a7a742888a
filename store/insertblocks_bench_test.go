package store_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/store"
)

// BenchmarkInsertBlocks compares three ways of sending the same rows to
// ClickHouse (issue 12: each INSERT has a fixed cost in parts and
// materialized views): "blocks", one INSERT carrying the rows as blocks of
// 20,000 (driver.Batch.Flush between blocks, what InsertEvents does with a
// large batch); "inserts", one INSERT per 20,000 rows; "one_block", one
// INSERT of one block. Each way writes into its own freshly migrated
// database, in turns, so the figures come from the same run under the same
// load. Reported per way: events/s and the parts the inserts created in
// the database (level-0 parts of every table: events and the views'
// targets). The rows per round are BENCH_INSERT_ROWS (default 200,000).
//
//	go test -run '^$' -bench BenchmarkInsertBlocks -benchtime 3x ./store/
func BenchmarkInsertBlocks(b *testing.B) {
	const block = 20_000
	rows := 200_000
	if v := os.Getenv("BENCH_INSERT_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < block {
			b.Fatalf("BENCH_INSERT_ROWS=%q: want a number of at least %d", v, block)
		}
		rows = n
	}
	ctx := context.Background()
	base := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	ways := []struct {
		name string
		run  func(s *store.Store, round int) error
	}{
		{"blocks", func(s *store.Store, round int) error {
			return store.InsertEventsBlocks(ctx, s, benchEvents(round, rows, base), base, block)
		}},
		{"inserts", func(s *store.Store, round int) error {
			evs := benchEvents(round, rows, base)
			for lo := 0; lo < rows; lo += block {
				if err := s.InsertEvents(ctx, evs[lo:min(lo+block, rows)], base); err != nil {
					return err
				}
			}
			return nil
		}},
		{"one_block", func(s *store.Store, round int) error {
			return store.InsertEventsBlocks(ctx, s, benchEvents(round, rows, base), base, rows)
		}},
	}
	cfgs := make([]store.Config, len(ways))
	stores := make([]*store.Store, len(ways))
	for i := range ways {
		cfgs[i] = storetest.Config(b)
		cfgs[i].LogQueries = false
		stores[i] = storetest.Open(b, cfgs[i])
	}
	parts := func(i int) uint64 {
		return storetest.Count(b, cfgs[i], "SELECT count() FROM system.parts WHERE database = ? AND level = 0", cfgs[i].Database)
	}
	var took [3]time.Duration
	var made [3]uint64
	round := 0
	for b.Loop() {
		round++
		for i, w := range ways {
			before := parts(i)
			start := time.Now()
			if err := w.run(stores[i], round); err != nil {
				b.Fatalf("%s: %v", w.name, err)
			}
			took[i] += time.Since(start)
			made[i] += parts(i) - before
		}
	}
	for i, w := range ways {
		b.ReportMetric(float64(round*rows)/took[i].Seconds(), w.name+"_events/s")
		b.ReportMetric(float64(made[i])/float64(round), w.name+"_parts/round")
	}
}
