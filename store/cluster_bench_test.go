package store_test

import (
	"context"

	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// shardOf is the shard (0-based, remote_servers order, equal weights) that
// a Distributed table sharded by cityHash64(tenant, actor_id) sends an
// event to, by the client's own computation of ClickHouse's hash
// (store.Shard.Owns with ShardByTenantActor), which the callers check
// against ClickHouse.
func shardOf(tenant, actor string, shards int) int {
	for k := range shards {
		if (store.Shard{Index: k, Count: shards, Key: store.ShardByTenantActor}).Owns(tenant, actor) {
			return k
		}
	}
	panic("no shard owns " + tenant + "|" + actor)
}

func benchEvents(batch, n int, base time.Time) []models.Event {
	evs := make([]models.Event, n)
	for i := range evs {
		evs[i] = models.Event{EventID: fmt.Sprintf("b%d-%d", batch, i), TS: base.Add(time.Duration(i) * time.Millisecond),
			Tenant: []string{"t1", "t2", "t3"}[i%3], Actor: models.Actor{ID: fmt.Sprintf("actor-%d", i%997), Type: models.ActorHuman, Role: "support"},
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile", ID: fmt.Sprintf("r%d", i)},
			SubjectID: fmt.Sprintf("s%d", i%5003), Records: 1, Fields: []string{"email", "phone"}, Purpose: "support",
			Result: models.ResultAllowed, Client: models.Client{Country: "DE", IP: "10.0.0.1"}}
	}
	return evs
}

// BenchmarkInsertEvents measures batches of 10,000 events inserted with
// InsertEvents, reported in events/s. On one server (the stack's): the
// "single" figure. On the local cluster (make test-cluster's environment:
// CHATWARDEN_TEST_CLUSTER, CHATWARDEN_CLICKHOUSE_ADDR and
// CHATWARDEN_CLUSTER_ADDRS from stack.sh cluster-env) two ways: through the
// Distributed table with a synchronous insert (what InsertEvents does) and
// split by shard in the client, each part inserted into the first replica's
// events_local at once. docs/scaling.md has the figures and the choice.
//
//	go test -run '^$' -bench BenchmarkInsertEvents -benchtime 20x ./store/
//	make stack-cluster; eval "$(scripts/stack.sh cluster-env)"
//	CHATWARDEN_TEST_CLUSTER=$CHATWARDEN_CLUSTER_NAME CHATWARDEN_CLICKHOUSE_ADDR=$CHATWARDEN_CLUSTER_ADDR \
//	  go test -run '^$' -bench BenchmarkInsertEvents -benchtime 20x ./store/
func BenchmarkInsertEvents(b *testing.B) {
	const batch = 10_000
	cfg := storetest.Config(b)
	cfg.LogQueries = false
	s := storetest.Open(b, cfg)
	ctx := context.Background()
	base := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	// Every batch has ids and rows of its own: a repeated batch would be
	// dropped by the cluster's block deduplication and measure nothing.
	batches := 0
	run := func(b *testing.B, insert func(evs []models.Event) error) {
		var total time.Duration
		for b.Loop() {
			b.StopTimer()
			batches++
			evs := benchEvents(batches, batch, base)
			b.StartTimer()
			start := time.Now()
			if err := insert(evs); err != nil {
				b.Fatal(err)
			}
			total += time.Since(start)
		}
		b.ReportMetric(float64(b.N*batch)/total.Seconds(), "events/s")
	}
	if storetest.Cluster() == "" {
		b.Run("single", func(b *testing.B) {
			run(b, func(evs []models.Event) error { return s.InsertEvents(ctx, evs, base) })
		})
		return
	}
	if os.Getenv("CHATWARDEN_CLUSTER_ADDRS") == "" {
		b.Fatal("CHATWARDEN_CLUSTER_ADDRS is not set: see the comment of BenchmarkInsertEvents")
	}
	addrs := strings.Split(os.Getenv("CHATWARDEN_CLUSTER_ADDRS"), ",")
	const shards, replicas = 2, 2
	if len(addrs) != shards*replicas {
		b.Fatalf("CHATWARDEN_CLUSTER_ADDRS has %d nodes, want %d", len(addrs), shards*replicas)
	}
	// The client's shard must be ClickHouse's: check it on a sample.
	for i, a := range []string{"actor-1", "actor-2", "bot-77", "vendor-x", ""} {
		tenant := []string{"t1", "default", "t3", "x", ""}[i]
		got := storetest.Count(b, cfg, fmt.Sprintf("SELECT toUInt64(cityHash64('%s', '%s') %% %d)", tenant, a, shards))
		if int(got) != shardOf(tenant, a, shards) {
			b.Fatalf("shard of (%q, %q): ClickHouse %d, client %d", tenant, a, got, shardOf(tenant, a, shards))
		}
	}
	nodes := make([]*store.Store, shards)
	for sh := range shards {
		nc := cfg
		nc.Addr = addrs[sh*replicas] // the first replica of each shard
		n, err := store.Open(ctx, nc, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer n.Close()
		nodes[sh] = n
	}
	b.Run("distributed_sync", func(b *testing.B) {
		run(b, func(evs []models.Event) error { return s.InsertEvents(ctx, evs, base) })
	})
	b.Run("local_shard", func(b *testing.B) {
		run(b, func(evs []models.Event) error {
			parts := make([][]models.Event, shards)
			for _, e := range evs {
				sh := shardOf(e.Tenant, e.Actor.ID, shards)
				parts[sh] = append(parts[sh], e)
			}
			errs := make(chan error, shards)
			for sh := range shards {
				go func() { errs <- store.InsertEventsLocal(ctx, nodes[sh], parts[sh], base) }()
			}
			var err error
			for range shards {
				if e := <-errs; e != nil {
					err = e
				}
			}
			return err
		})
	})
}

// TestShardOfMatchesClickHouse: the client's shard computation (used by
// BenchmarkInsertEvents and the shard-local insert it measures) agrees
// with the server's cityHash64 on one server too.
func TestShardOfMatchesClickHouse(t *testing.T) {
	t.Parallel()
	cfg := storetest.Config(t)
	storetest.Open(t, cfg)
	for i := range 50 {
		tenant, actor := fmt.Sprintf("tenant-%d", i%4), fmt.Sprintf("actor-%d-%s", i, strings.Repeat("x", i))
		got := storetest.Count(t, cfg, fmt.Sprintf("SELECT toUInt64(cityHash64('%s', '%s') %% 7)", tenant, actor))
		if want := shardOf(tenant, actor, 7); int(got) != want {
			t.Fatalf("shard of (%q, %q) among 7: ClickHouse %d, client %d", tenant, actor, got, want)
		}
	}

}
