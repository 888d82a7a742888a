package store_test

import (
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/store"
)

// TestCompressionModes: events inserted and read back over LZ4-compressed
// blocks (compression lz4, what auto gives a remote server) and over plain
// ones (none, what auto gives a loopback address, as here) are the same.
func TestCompressionModes(t *testing.T) {
	t.Parallel() // databases of their own
	from := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	to := from.Add(24 * time.Hour)
	evs := storetest.MixedEvents(from, to)
	var sums []uint64
	for _, mode := range []string{"lz4", "none"} {
		cfg := storetest.Config(t)
		cfg.Compression = mode
		s := storetest.Open(t, cfg)
		if err := s.InsertEvents(t.Context(), evs, to); err != nil {
			t.Fatalf("compression %s: %v", mode, err)
		}
		rows, err := s.WindowAggregates(t.Context(), from, to, time.Hour, store.Shard{})
		if err != nil || len(rows) == 0 {
			t.Fatalf("compression %s: %d windows read, %v", mode, len(rows), err)
		}
		sums = append(sums, storetest.Count(t, cfg, "SELECT sum(cityHash64(event_id, actor_id, subject_id, toString(ts))) FROM events"))
	}
	if sums[0] != sums[1] || sums[0] == 0 {
		t.Errorf("stored events differ: lz4 %d, none %d", sums[0], sums[1])
	}
}
