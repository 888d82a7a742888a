package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
)

// TestRetriedBatchStoredOnce inserts the same batch twice, as ingest does
// when an insert's answer was lost (same events, same ingestedAt). On a
// cluster (make test-cluster) ReplicatedMergeTree's block deduplication
// stores it once, in events and in every table its materialized views fill;
// on one server (plain MergeTree, no block deduplication) both copies stay,
// which is why ingest re-reads the events table before a retry there.
func TestRetriedBatchStoredOnce(t *testing.T) {
	t.Parallel() // a database of its own
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	ctx := t.Context()
	base := time.Date(2026, 11, 20, 23, 50, 0, 0, time.UTC) // the batch spans two daily partitions
	var evs []models.Event
	for i := range 400 {
		evs = append(evs, models.Event{EventID: fmt.Sprintf("r%d", i), TS: base.Add(time.Duration(i*7) * time.Second),
			Tenant: []string{"t1", "t2"}[i%2], Actor: models.Actor{ID: fmt.Sprintf("actor-%d", i%23), Type: models.ActorBot},
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"},
			SubjectID: fmt.Sprintf("s%d", i%31), Records: 1, Fields: []string{"email"}, Result: models.ResultAllowed})
	}
	ingested := base.Add(time.Hour)
	for range 2 {
		if err := s.InsertEvents(ctx, evs, ingested); err != nil {
			t.Fatal(err)
		}
	}
	copies := uint64(2)
	if storetest.Cluster() != "" {
		copies = 1
	}
	want := copies * uint64(len(evs))
	for _, q := range []string{
		"SELECT count() FROM events",
		"SELECT count() FROM event_ids",
		"SELECT count() FROM events_by_subject",
		"SELECT sumMerge(events) FROM actor_minute",
	} {
		if got := storetest.Count(t, cfg, q); got != want {
			t.Errorf("%s = %d, want %d (%d copies of %d events)", q, got, want, copies, len(evs))
		}
	}
	// The rows are whole: one actor's events on one shard, every id once.
	if got := storetest.Count(t, cfg, "SELECT uniqExact(event_id) FROM events"); got != uint64(len(evs)) {
		t.Errorf("distinct event ids = %d, want %d", got, len(evs))
	}
}
