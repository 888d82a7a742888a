package store_test

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// shardLocalEvents are 3 windows of reads, shares and denied accesses of 48
// actors over 3 tenants.
func shardLocalEvents(base time.Time) []models.Event {
	var evs []models.Event
	for i := range 48 {
		tenant := []string{"t1", "t2", "brand-three"}[i%3]
		actor := fmt.Sprintf("agent-%d", i)
		for j := range 9 {
			ev := models.Event{EventID: fmt.Sprintf("sl-%d-%d", i, j), TS: base.Add(time.Duration(j*20+i%20) * time.Second), Tenant: tenant,
				Actor: models.Actor{ID: actor, Type: models.ActorHuman, Role: "support"}, Action: models.ActionRead, Store: []string{"crm", "orders"}[j%2],
				Resource: models.Resource{Type: "customer_profile"}, SubjectID: fmt.Sprintf("s%d", (i*7+j)%50), Records: uint64(1 + j%3),
				Fields: []string{"email", "phone"}[:1+j%2], Result: models.ResultAllowed, Client: models.Client{Country: []string{"DE", "FR"}[i%2]}}
			if j%4 == 3 {
				ev.Action, ev.Destination = models.ActionShare, "partner.example"
			} else if j == 8 && i%3 == 0 {
				ev.Action = models.ActionExport // actor_minute_exports
			}
			if i%5 == 0 && j > 5 {
				ev.Result = models.ResultDenied
			}
			evs = append(evs, ev)
		}
	}
	return evs
}

// sortedActivity sorts the arrays of rows, whose order
// (groupUniqArray) depends on how the server merged the parts.
func sortedActivity(rows []store.WindowActivity) []store.WindowActivity {
	for i := range rows {
		for _, a := range [][]string{rows[i].Stores, rows[i].ResourceTypes, rows[i].Categories, rows[i].Countries} {
			sort.Strings(a)
		}
	}
	return rows
}

// distributedStore opens cfg's database (already migrated on the cluster)
// as one server: the same queries, as they are, through the Distributed
// tables of the node it connects to.
func distributedStore(t *testing.T, cfg store.Config) *store.Store {
	t.Helper()
	cfg.Cluster = ""
	d, err := store.Open(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// nodeCount runs a count on the node at addr.
func nodeCount(t *testing.T, cfg store.Config, addr, query string, args ...any) uint64 {
	t.Helper()
	cfg.Addr = addr
	return storetest.Count(t, cfg, query, args...)
}

// flushQueryLogs writes every node's buffered query log.
func flushQueryLogs(t *testing.T, cfg store.Config, nodes []string) {
	t.Helper()
	for _, n := range nodes {
		c := cfg
		c.Addr = n
		storetest.Exec(t, c, "SYSTEM FLUSH LOGS")
	}
}

// syncReplicas waits until node's replicas of cfg's database's tables have
// applied their replication queues (SYSTEM SYNC REPLICA).
func syncReplicas(t *testing.T, cfg store.Config, node string) {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{node}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(t.Context(), "SELECT table FROM system.replicas WHERE database = ?", cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, table)
	}
	rows.Close()
	for _, table := range tables {
		if err := conn.Exec(t.Context(), "SYSTEM SYNC REPLICA "+cfg.Database+"."+table); err != nil {
			t.Fatalf("syncing %s on %s: %v", table, node, err)
		}
	}
}

// queriesOn counts on node the finished queries of id (initial: run as
// id; otherwise: sent by a Distributed table for the query id). A node that
// has logged no query since it started has no system.query_log yet (18.16
// creates it at the first flush; on a fresh cluster the second replicas
// receive nothing): 0.
func queriesOn(t *testing.T, cfg store.Config, node, id string, initial bool) uint64 {
	t.Helper()
	if nodeCount(t, cfg, node, "SELECT count() FROM system.tables WHERE database = 'system' AND name = 'query_log'") == 0 {
		return 0
	}
	if initial {
		return nodeCount(t, cfg, node, "SELECT count() FROM system.query_log WHERE type = 2 AND query_id = ? AND is_initial_query = 1", id)
	}
	return nodeCount(t, cfg, node, "SELECT count() FROM system.query_log WHERE type = 2 AND initial_query_id = ? AND is_initial_query = 0", id)
}

// loggedOn waits until node's query log holds a finished query of id
// (see queriesOn), flushing nodes' logs each time, and returns the count, or
// 0 after 30 s. The server logs a query when it finishes, which can be just
// after the client has read the last packet, so one flush right after the
// query can miss it (CI's test-cluster, under load, once).
func loggedOn(t *testing.T, cfg store.Config, nodes []string, node, id string, initial bool) uint64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		flushQueryLogs(t, cfg, nodes)
		if n := queriesOn(t, cfg, node, id, initial); n > 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// loggedAll waits, as loggedOn, until node's query log holds n finished
// initial queries of id (or 30 s have passed).
func loggedAll(t *testing.T, cfg store.Config, nodes []string, node, id string, n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for loggedOn(t, cfg, nodes, node, id, true) < n && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
}

func withID(ctx context.Context, id string) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithQueryID(id))
}

// TestDetectionShardReadsOneStorageShard: on a cluster (make test-cluster)
// detection shard k of 4, hashing the storage sharding key, reads storage
// shard k % 2 only: its window aggregates, distinct customers, shares and
// an actor's top customers are the same as through the Distributed tables;
// its actors are exactly those of the storage shard's events_local that it
// owns; system.query_log shows each of its queries run on the storage
// shard's first replica, against the local tables, and on no other node,
// where the Distributed read of the same shard reaches the other storage
// shard too. On one server no detection shard reads locally.
func TestDetectionShardReadsOneStorageShard(t *testing.T) {
	t.Parallel() // a database of its own
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	ctx := t.Context()
	if storetest.Cluster() == "" {
		for i := range 4 {
			if _, local, err := s.LocalShard(ctx, store.Shard{Index: i, Count: 4, Key: store.ShardByTenantActor}); err != nil || local {
				t.Errorf("one server: shard %d of 4 reads locally %v (%v)", i, local, err)
			}
		}
		if s.ShardKey() != store.ShardByActor {
			t.Errorf("one server: shard key %d, want the actor's", s.ShardKey())
		}
		return
	}
	if s.ShardKey() != store.ShardByTenantActor {
		t.Fatalf("cluster: shard key %d, want the storage sharding key's", s.ShardKey())
	}
	base := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	if err := s.InsertEvents(ctx, shardLocalEvents(base), base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	replicas, err := store.ShardReplicas(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(replicas) != 2 {
		t.Fatalf("want the 2x2 cluster, got shards %v", replicas)
	}
	var nodes []string
	for _, r := range replicas {
		nodes = append(nodes, r...)
	}
	d := distributedStore(t, cfg)
	from, to := base, base.Add(3*time.Minute)
	windowReads := map[int]uint64{}
	exported := false
	for k := range 4 {
		sh := store.Shard{Index: k, Count: 4, Key: store.ShardByTenantActor}
		storage, local, err := s.LocalShard(ctx, sh)
		if err != nil || !local || storage != k%2 {
			t.Fatalf("shard %d of 4: storage shard %d, local %v (%v); want storage shard %d", k, storage, local, err, k%2)
		}
		id := fmt.Sprintf("%s-k%d", cfg.Database, k)
		got, err := s.WindowAggregates(withID(ctx, id+"-windows"), from, to, time.Minute, sh)
		if err != nil {
			t.Fatal(err)
		}
		want, err := d.WindowAggregates(withID(ctx, id+"-distributed"), from, to, time.Minute, sh)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || !reflect.DeepEqual(sortedActivity(got), sortedActivity(want)) {
			t.Errorf("shard %d: window aggregates, local %d rows, distributed %d rows, differ:\n%+v\n%+v", k, len(got), len(want), got, want)
		}
		// A cycle with an export or a share reads actor_minute_exports
		// too, under the same query id.
		windowReads[k] = 1
		for _, r := range got {
			if r.Exports > 0 {
				windowReads[k] = 2
			}
			if r.ExportOnly > 0 {
				exported = true
			}
		}
		// Its actors are the storage shard's that it owns.
		mine := map[string]bool{}
		for _, r := range got {
			mine[r.Tenant+"|"+r.ActorID] = true
		}
		held := nodeCount(t, cfg, replicas[storage][0], "SELECT uniqExact(tenant, actor_id) FROM events_local WHERE cityHash64(tenant, actor_id) % 4 = ?", uint64(k))
		other := nodeCount(t, cfg, replicas[1-storage][0], "SELECT uniqExact(tenant, actor_id) FROM events_local WHERE cityHash64(tenant, actor_id) % 4 = ?", uint64(k))
		if uint64(len(mine)) != held || other != 0 || held == 0 {
			t.Errorf("shard %d: %d actors read; storage shard %d holds %d of the shard's actors, the other %d", k, len(mine), storage+1, held, other)
		}
		gotSubj, err := s.RecentSubjects(withID(ctx, id+"-subjects"), from, from, to, sh)
		if err != nil {
			t.Fatal(err)
		}
		wantSubj, err := d.RecentSubjects(ctx, from, from, to, sh)
		if err != nil {
			t.Fatal(err)
		}
		sortCounts := func(c []store.SubjectCounts) {
			sort.Slice(c, func(i, j int) bool { return c[i].Tenant+"|"+c[i].ActorID < c[j].Tenant+"|"+c[j].ActorID })
		}
		sortCounts(gotSubj)
		sortCounts(wantSubj)
		if len(gotSubj) == 0 || !reflect.DeepEqual(gotSubj, wantSubj) {
			t.Errorf("shard %d: distinct customers differ:\n%+v\n%+v", k, gotSubj, wantSubj)
		}
		gotDest, err := s.DestinationWindows(withID(ctx, id+"-shares"), from, to, time.Minute, sh)
		if err != nil {
			t.Fatal(err)
		}
		wantDest, err := d.DestinationWindows(ctx, from, to, time.Minute, sh)
		if err != nil {
			t.Fatal(err)
		}
		if len(gotDest) == 0 || !reflect.DeepEqual(gotDest, wantDest) {
			t.Errorf("shard %d: destination windows differ:\n%+v\n%+v", k, gotDest, wantDest)
		}
		tenant, actor, _ := strings.Cut(firstKey(mine), "|")
		gotTop, err := s.TopSubjects(withID(ctx, id+"-top"), tenant, actor, from, to, 5)
		if err != nil {
			t.Fatal(err)
		}
		wantTop, err := d.TopSubjects(ctx, tenant, actor, from, to, 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(gotTop) == 0 || !reflect.DeepEqual(gotTop, wantTop) {
			t.Errorf("shard %d: top customers of %s: local %v, distributed %v", k, actor, gotTop, wantTop)
		}
	}
	if !exported {
		t.Error("no window read an export (ExportOnly): the exports read went untested")
	}
	flushQueryLogs(t, cfg, nodes)
	for k := range 4 {
		storage := k % 2
		first := replicas[storage][0]
		for _, q := range []string{"windows", "subjects", "shares", "top"} {
			id := fmt.Sprintf("%s-k%d-%s", cfg.Database, k, q)
			reads := uint64(1)
			if q == "windows" {
				reads = windowReads[k]
			}
			// Wait for the queries on the node that ran them; the other
			// nodes' counts are read after they are logged.
			loggedAll(t, cfg, nodes, first, id, reads)
			for _, n := range nodes {
				want := uint64(0)
				if n == first {
					want = reads
				}
				if got := queriesOn(t, cfg, n, id, true); got != want {
					t.Errorf("shard %d, %s query: %d on node %s, want %d (only on storage shard %d's first replica %s)", k, q, got, n, want, storage+1, first)
				}
				if got := queriesOn(t, cfg, n, id, false); got != 0 {
					t.Errorf("shard %d, %s query: sent on to node %s (%d queries): it must not fan out", k, q, n, got)
				}
			}
			if n := nodeCount(t, cfg, first, "SELECT count() FROM system.query_log WHERE type = 2 AND query_id = ? AND position(query, '_local') > 0", id); n != reads {
				t.Errorf("shard %d, %s query: not against the local tables on %s", k, q, first)
			}
		}
		// The same shard read through the Distributed table (on node 1,
		// which reads shard 1 in its own process) sends a query on to
		// storage shard 2 whichever shard holds the actors.
		sent := uint64(0)
		deadline := time.Now().Add(30 * time.Second)
		for sent == 0 && time.Now().Before(deadline) {
			flushQueryLogs(t, cfg, nodes)
			for _, n := range nodes {
				sent += queriesOn(t, cfg, n, fmt.Sprintf("%s-k%d-distributed", cfg.Database, k), false)
			}
			if sent == 0 {
				time.Sleep(200 * time.Millisecond)
			}
		}
		if sent == 0 {
			t.Errorf("shard %d: the Distributed read sent no query on to another node: the query-log check cannot tell local from distributed", k)
		}
	}
}

func firstKey(m map[string]bool) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys[0]
}

// closedAddr is a local address nothing listens on (a replica that is
// down: its connections are refused).
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestShardReadFailsOverToTheNextReplica: on a cluster (make test-cluster),
// with storage shard 1's first replica down (an address that refuses
// connections in its place), detection shard 0 of 2 reads the shard's
// second replica and gets what the Distributed tables show; the next read
// tries the live replica first. With every replica of the shard down the
// read fails with an error that names the shard and that callers retry.
// (drills/cluster's TestDrillClusterDetectReplicaKill kills the replica
// for real.) On one server there are no replicas to fail over to.
func TestShardReadFailsOverToTheNextReplica(t *testing.T) {
	t.Parallel() // a database of its own
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	ctx := t.Context()
	sh := store.Shard{Index: 0, Count: 2, Key: store.ShardByTenantActor}
	if storetest.Cluster() == "" {
		if _, local, err := s.LocalShard(ctx, sh); err != nil || local {
			t.Fatalf("one server: shard 0 of 2 reads locally %v (%v)", local, err)
		}
		return
	}
	base := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	if err := s.InsertEvents(ctx, shardLocalEvents(base), base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	replicas, err := store.ShardReplicas(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	live := replicas[0][1]
	// The insert went to the shard's first replica: wait until the
	// second holds its parts too (replication is asynchronous).
	syncReplicas(t, cfg, live)
	dead := closedAddr(t)
	if err := store.SetShardReplicas(ctx, s, 0, []string{dead, live}); err != nil {
		t.Fatal(err)
	}
	from, to := base, base.Add(3*time.Minute)
	want, err := distributedStore(t, cfg).WindowAggregates(ctx, from, to, time.Minute, sh)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		id := fmt.Sprintf("%s-failover-%d", cfg.Database, i)
		got, err := s.WindowAggregates(withID(ctx, id), from, to, time.Minute, sh)
		if err != nil {
			t.Fatalf("read %d with the first replica down: %v", i, err)
		}
		if len(got) == 0 || !reflect.DeepEqual(sortedActivity(got), sortedActivity(want)) {
			t.Errorf("read %d: %d rows from the second replica, %d through the Distributed tables, differ", i, len(got), len(want))
		}
		reads := uint64(1) // and actor_minute_exports when a window has an export or share
		for _, r := range got {
			if r.Exports > 0 {
				reads = 2
			}
		}
		loggedAll(t, cfg, replicas[0], live, id, reads)
		if n := queriesOn(t, cfg, live, id, true); n != reads {
			t.Errorf("read %d: %d queries on the live replica %s, want %d", i, n, live, reads)
		}
	}
	if err := store.SetShardReplicas(ctx, s, 0, []string{dead, closedAddr(t)}); err != nil {
		t.Fatal(err)
	}
	_, err = s.WindowAggregates(ctx, from, to, time.Minute, sh)
	if err == nil || !strings.Contains(err.Error(), "no replica of storage shard 1 answered") || !store.IsRetryable(err) {
		t.Errorf("every replica down: err = %v (retryable %v), want no replica of storage shard 1, retryable", err, store.IsRetryable(err))
	}
}
