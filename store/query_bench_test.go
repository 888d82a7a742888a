package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
)

// TestLoadSyntheticEventsDiskBytes: the query benchmark's loader stores the
// events it is asked for, and TableDiskBytes sees them on disk (the raw
// events and the tables the materialized views fill).
func TestLoadSyntheticEventsDiskBytes(t *testing.T) {
	s := storetest.New(t)
	from := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	var last uint64
	if err := s.LoadSyntheticEvents(t.Context(), 100000, from, from.Add(24*time.Hour), func(done uint64) { last = done }); err != nil {
		t.Fatal(err)
	}
	if last != 100000 {
		t.Errorf("progress ended at %d events, want 100000", last)
	}
	sizes, err := s.TableDiskBytes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// On a cluster the events sit in the node's local tables
	// (events_local ...), a shard's share of them: a name that starts with
	// the table's counts. 100,000 events are 20 actors (n/5000), so each
	// shard holds some.
	for _, table := range []string{"events", "events_by_subject", "actor_minute"} {
		var n uint64
		for name, b := range sizes {
			if strings.HasPrefix(name, table) {
				n += b
			}
		}
		if n == 0 {
			t.Errorf("%s: no bytes on disk (sizes %v)", table, sizes)
		}
	}
	if _, ok := sizes["no_such_table"]; ok {
		t.Error("a table that does not exist has a size")
	}
}
