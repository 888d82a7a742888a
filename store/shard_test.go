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
// the detection queries' shard predicate returns, with either shard key
// (cityHash64(actor_id) % shards = shard on one server, cityHash64(tenant,
// actor_id) on a cluster), for ids of every length class CityHash64 treats
// apart (0-16, 17-32, 33-64 and longer bytes) and several tenants. On a
// cluster (make test-cluster) the tenant-and-actor shards of 2 and 4 read
// one storage shard's local tables, the others the Distributed tables.
func TestShardOwnsMatchesTheQueries(t *testing.T) {
	s := storetest.New(t)
	ctx := t.Context()
	base := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var evs []models.Event
	type ta struct{ tenant, actor string }
	all := map[ta]bool{}
	for i := range 60 {
		actor := fmt.Sprintf("agent-%d-", i) + strings.Repeat("x", i*3)
		tenant := []string{"t1", "tenant-two", strings.Repeat("t", 20)}[i%3]
		all[ta{tenant, actor}] = true
		evs = append(evs, models.Event{EventID: fmt.Sprintf("e%d", i), TS: base.Add(time.Duration(i) * time.Second), Tenant: tenant,
			Actor: models.Actor{ID: actor, Type: models.ActorHuman}, Action: models.ActionRead, Store: "crm",
			Resource: models.Resource{Type: "customer_profile"}, Records: 1, Result: models.ResultAllowed})
	}
	if err := s.InsertEvents(ctx, evs, base); err != nil {
		t.Fatal(err)
	}
	for _, key := range []store.ShardKey{store.ShardByActor, store.ShardByTenantActor} {
		for _, count := range []int{2, 3, 4, 7} {
			seen := map[ta]int{}
			for i := range count {
				sh := store.Shard{Index: i, Count: count, Key: key}
				rows, err := s.WindowAggregates(ctx, base, base.Add(2*time.Minute), time.Minute, sh)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rows {
					seen[ta{r.Tenant, r.ActorID}]++
					if !sh.Owns(r.Tenant, r.ActorID) {
						t.Errorf("key %d, shard %d of %d: the query returns %q of %q (%d bytes), Owns says another shard's", key, i, count, r.ActorID, r.Tenant, len(r.ActorID))
					}
				}
			}
			for a := range all {
				if seen[a] != 1 {
					t.Errorf("key %d, %d shards: %v returned by %d shards, want 1", key, count, a, seen[a])
				}
			}
		}
	}
	if !(store.Shard{}).Owns("t", "anyone") || !(store.Shard{Count: 1, Key: store.ShardByTenantActor}).Owns("t", "anyone") {
		t.Error("an unsharded instance must own every actor")
	}
}
