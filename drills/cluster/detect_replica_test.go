//go:build drills

package cluster_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// detectTraffic is 90 minutes of reads by 40 actors of 3 tenants, with a
// burst of 30 denied reads by every fifth actor at minute 80.
func detectTraffic(base time.Time) []models.Event {
	var evs []models.Event
	for i := range 40 {
		for m := range 90 {
			n, result := 2, models.ResultAllowed
			if i%5 == 0 && m == 80 {
				n, result = 30, models.ResultDenied
			}
			for j := range n {
				evs = append(evs, models.Event{EventID: fmt.Sprintf("d%d-%d-%d", i, m, j), TS: base.Add(time.Duration(m)*time.Minute + time.Duration(j)*time.Second),
					Tenant: []string{"t1", "t2", "brand-three"}[i%3], Actor: models.Actor{ID: fmt.Sprintf("agent-%d", i), Type: models.ActorHuman, Role: "support"},
					Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: fmt.Sprintf("c%d-%d", i, (m+j)%9),
					Records: 1, Fields: []string{"email"}, Result: result})
			}
		}
	}
	return evs
}

// engineFindings runs the engine of detection shard k of shards (the
// cluster's shard key) from start to end on s and returns its findings,
// sorted.
func engineFindings(t *testing.T, s *store.Store, k, shards int, start, end time.Time) []string {
	t.Helper()
	var out []string
	eng, err := detect.New(detect.Config{Shard: k, Shards: shards}, s, detect.Options{ShardKey: s.ShardKey(),
		Findings: func(_ context.Context, fs ...models.Finding) error {
			for _, f := range fs {
				out = append(out, fmt.Sprintf("%s %s/%s %s score=%.6g", f.Detector, f.Tenant, f.ActorID, f.WindowEnd.Format("15:04"), f.Score))
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	eng.StartAt(start)
	if err := eng.Advance(t.Context(), end); err != nil {
		t.Fatalf("detection shard %d: %v", k, err)
	}
	sort.Strings(out)
	return out
}

// shardReadsOn counts the engine queries of detection shard k of 4 that
// node at addr ran against its local actor_minute since since (the drill's
// cluster runs nothing else). A node killed before it flushed its first
// query log has no system.query_log until it flushes one: 0.
func shardReadsOn(t *testing.T, cfg store.Config, addr string, k int, since time.Time) uint64 {
	t.Helper()
	cfg.Addr = addr
	storetest.Exec(t, cfg, "SYSTEM FLUSH LOGS")
	if storetest.Count(t, cfg, "SELECT count() FROM system.tables WHERE database = 'system' AND name = 'query_log'") == 0 {
		return 0
	}
	// The needles are built in SQL so that this query does not count itself.
	return storetest.Count(t, cfg, `SELECT count() FROM system.query_log WHERE type = 2 AND is_initial_query = 1
AND query_start_time >= ? AND position(query, concat('actor_minute', '_local')) > 0 AND position(query, concat('% 4 = ', ?)) > 0`,
		since.Truncate(time.Second), fmt.Sprint(k))
}

// TestDrillClusterDetectReplicaKill: 4 detection engines (detect.shards 4
// on the 2 storage shards) read their storage shard's local tables. With
// the first replica of each storage shard SIGKILLed (nodes 1 and 3; the
// store is connected to node 2), each engine reads the shard's second
// replica (node 2 or 4, its query_log has the engine's queries) and
// raises the same findings as before the kill; after the nodes restart,
// reads go back to the first replicas. Then with both replicas of storage
// shard 2 killed (nodes 3 and 4) the engines of storage shard 1 still
// raise their findings, and those of shard 2 fail with an error naming it.
func TestDrillClusterDetectReplicaKill(t *testing.T) {
	cfg, addrs, dir := drillStore(t)
	cfg.Addr = addrs[3]   // node 4 stays up
	cfg.LogQueries = true // the engines' queries in each node's system.query_log
	s := storetest.Open(t, cfg)
	ctx := t.Context()
	base := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	if err := s.InsertEvents(ctx, detectTraffic(base), base.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Both replicas of each shard hold every part before the kill.
	for _, a := range addrs {
		c := cfg
		c.Addr = a
		storetest.Exec(t, c, "SYSTEM SYNC REPLICA actor_minute_local")
		storetest.Exec(t, c, "SYSTEM SYNC REPLICA events_local")
	}
	const shards = 4
	start, end := base.Add(time.Minute), base.Add(90*time.Minute)
	before := map[int][]string{}
	total := 0
	for k := range shards {
		before[k] = engineFindings(t, s, k, shards, start, end)
		total += len(before[k])
	}
	if total == 0 {
		t.Fatal("no findings before the kill: the drill would compare nothing")
	}

	killNode(t, dir, 1)
	killNode(t, dir, 3)
	killedAt := time.Now()
	t.Log("SIGKILL nodes 1 and 3 (the first replica of each storage shard)")
	down := map[int]bool{1: true, 3: true}
	t.Cleanup(func() {
		for n := range down {
			startNode(t, n)
		}
	})
	var during time.Duration
	for k := range shards {
		t0 := time.Now()
		got := engineFindings(t, s, k, shards, start, end)
		during = max(during, time.Since(t0))
		if fmt.Sprint(got) != fmt.Sprint(before[k]) {
			t.Errorf("detection shard %d with its first replica down: findings\n%q\nbefore the kill\n%q", k, got, before[k])
		}
	}
	second := map[int]uint64{}
	for k := range shards {
		node := 2 + 2*(k%2) // storage shard k%2's second replica
		second[k] = shardReadsOn(t, cfg, addrs[node-1], k, killedAt)
		if second[k] == 0 {
			t.Errorf("detection shard %d: no query of its engine on node %d, the second replica of storage shard %d", k, node, k%2+1)
		}
	}

	startNode(t, 1)
	startNode(t, 3)
	down = map[int]bool{}
	restartedAt := time.Now()
	// Back on the first replicas once their back-off (15 s) has passed.
	var back time.Duration
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got := engineFindings(t, s, 0, shards, start, end)
		if fmt.Sprint(got) != fmt.Sprint(before[0]) {
			t.Errorf("detection shard 0 after the restart: findings differ:\n%q\n%q", got, before[0])
		}
		if shardReadsOn(t, cfg, addrs[0], 0, restartedAt) > 0 {
			back = time.Since(restartedAt)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reads of storage shard 1 did not return to node 1 within 3 minutes of its restart")
		}
		time.Sleep(5 * time.Second)
	}

	// Storage shard 2 wholly down: the engines of shard 1 go on.
	killNode(t, dir, 3)
	killNode(t, dir, 4)
	down = map[int]bool{3: true, 4: true}
	t.Log("SIGKILL nodes 3 and 4 (both replicas of storage shard 2)")
	liveShards := 0
	for k := range shards {
		if k%2 == 0 {
			if got := engineFindings(t, s, k, shards, start, end); fmt.Sprint(got) != fmt.Sprint(before[k]) {
				t.Errorf("detection shard %d (storage shard 1) with storage shard 2 down: findings\n%q\nbefore\n%q", k, got, before[k])
			} else {
				liveShards++
			}
			continue
		}
		eng, err := detect.New(detect.Config{Shard: k, Shards: shards}, s, detect.Options{ShardKey: s.ShardKey()})
		if err != nil {
			t.Fatal(err)
		}
		eng.StartAt(start)
		if err := eng.Advance(ctx, end); err == nil || !strings.Contains(err.Error(), "no replica of storage shard 2 answered") {
			t.Errorf("detection shard %d (storage shard 2) with both its replicas down: err = %v, want no replica of storage shard 2 answered", k, err)
		}
	}
	startNode(t, 3)
	startNode(t, 4)
	down = map[int]bool{}
	t.Logf("RESULT detect_replica_kill: shards=%d findings=%d same_findings_while_down=%v queries_on_second_replica=%v slowest_engine_cycle_while_down_s=%.1f back_on_first_replica_after_restart_s=%.1f engines_going_on_with_storage_shard_2_down=%d",
		shards, total, !t.Failed(), second, during.Seconds(), back.Seconds(), liveShards)
}
