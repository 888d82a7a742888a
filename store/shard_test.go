package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestShardOwnsMatchesTheQueries: Shard.Owns (Go) picks exactly the actors
// the aggregate queries' cityHash64(actor_id) % shards = shard predicate
// returns, for ids of every length class CityHash64 treats apart (0-16,
// 17-32, 33-64 and longer bytes).
func TestShardOwnsMatchesTheQueries(t *testing.T) {
	s := storetest.New(t)
	ctx := t.Context()
	base := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var evs []models.Event
	all := map[string]bool{}
	for i := range 60 {
		actor := fmt.Sprintf("agent-%d-", i) + strings.Repeat("x", i*3)
		all[actor] = true
		evs = append(evs, models.Event{EventID: fmt.Sprintf("e%d", i), TS: base.Add(time.Duration(i) * time.Second), Tenant: "t1",
			Actor: models.Actor{ID: actor, Type: models.ActorHuman}, Action: models.ActionRead, Store: "crm",
			Resource: models.Resource{Type: "customer_profile"}, Records: 1, Result: models.ResultAllowed})
	}
	if err := s.InsertEvents(ctx, evs, base); err != nil {
		t.Fatal(err)
	}
	for _, count := range []int{2, 3, 7} {
		seen := map[string]int{}
		for i := range count {
			sh := store.Shard{Index: i, Count: count}
			rows, err := s.WindowAggregates(ctx, base, base.Add(2*time.Minute), time.Minute, sh)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				seen[r.ActorID]++
				if !sh.Owns(r.ActorID) {
					t.Errorf("shard %d of %d: the query returns %q (%d bytes), Owns says another shard's", i, count, r.ActorID, len(r.ActorID))
				}
			}
		}
		for a := range all {
			if seen[a] != 1 {
				t.Errorf("%d shards: %q returned by %d shards, want 1", count, a, seen[a])
			}
		}
	}
	if !(store.Shard{}).Owns("anyone") || !(store.Shard{Count: 1}).Owns("anyone") {
		t.Error("an unsharded instance must own every actor")
	}
}
