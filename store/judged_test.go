package store_test

import (
	"sort"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestBatchMarks: marked ranges come back when they overlap the asked
// offsets, of their own topic and partition only, once each, judged when
// any mark of the range was.
func TestBatchMarks(t *testing.T) {
	t.Parallel() // a database of its own
	s := storetest.New(t)
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	inserting := []store.OffsetRange{{"acc", 0, 0, 99, false}, {"acc", 0, 100, 199, false}, {"acc", 1, 0, 50, false}, {"other", 0, 0, 1000, false}}
	if err := s.MarkBatches(t.Context(), inserting, at); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkBatches(t.Context(), []store.OffsetRange{{"acc", 0, 0, 99, true}, {"acc", 0, 0, 99, true}}, at); err != nil {
		t.Fatal(err)
	}
	got, err := s.BatchMarks(t.Context(), "acc", 0, 50, 120)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].First < got[j].First })
	want := []store.OffsetRange{{"acc", 0, 0, 99, true}, {"acc", 0, 100, 199, false}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("marks overlapping acc/0 50..120: %+v, want %+v", got, want)
	}
	got, err = s.BatchMarks(t.Context(), "acc", 1, 51, 60)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("marks overlapping acc/1 51..60: %+v, want none", got)
	}
}

// TestStoredEventIDs: the events table itself is searched, within the ts
// range given.
func TestStoredEventIDs(t *testing.T) {
	s := storetest.New(t)
	ts := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	ev := models.Event{EventID: "stored-1", TS: ts, Tenant: "t", Actor: models.Actor{ID: "a", Type: models.ActorHuman},
		Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, Records: 1}
	if err := s.InsertEvents(t.Context(), []models.Event{ev}, ts); err != nil {
		t.Fatal(err)
	}
	got, err := s.StoredEventIDs(t.Context(), []string{"stored-1", "other"}, ts, ts)
	if err != nil {
		t.Fatal(err)
	}
	if !got["stored-1"] || got["other"] || len(got) != 1 {
		t.Fatalf("StoredEventIDs = %v, want stored-1 only", got)
	}
	got, err = s.StoredEventIDs(t.Context(), []string{"stored-1"}, ts.Add(time.Hour), ts.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("StoredEventIDs outside the range = %v, want none", got)
	}
}
