//go:build drills

package cluster_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

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
// cluster's shard key) from start to end on s, every query with query id
// id, and returns its findings, sorted.
func engineFindings(t *testing.T, s *store.Store, k, shards int, start, end time.Time, id string) []string {
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
	if err := eng.Advance(clickhouse.Context(t.Context(), clickhouse.WithQueryID(id)), end); err != nil {
		t.Fatalf("detection shard %d: %v", k, err)
	}
	sort.Strings(out)
	return out
}

// TestDrillClusterDetectReplicaKill: 4 detection engines (detect.shards 4
// on the 2 storage shards) read their storage shard's local tables. With
// the first replica of each storage shard SIGKILLed (nodes 1 and 3; the
// store is connected to node 4), each engine reads the shard's second
// replica (node 2 or 4, its query_log has the engine's queries) and
// raises the same findings as before the kill; after the nodes restart,
// reads go back to the first replicas.
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
		before[k] = engineFindings(t, s, k, shards, start, end, fmt.Sprintf("%s-before-%d", cfg.Database, k))
		total += len(before[k])
	}
	if total == 0 {
		t.Fatal("no findings before the kill: the drill would compare nothing")
	}

	killNode(t, dir, 1)
	killNode(t, dir, 3)
	killedAt := time.Now()
	t.Log("SIGKILL nodes 1 and 3 (the first replica of each storage shard)")
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			startNode(t, 1)
			startNode(t, 3)
		}
	})
	var during time.Duration
	for k := range shards {
		t0 := time.Now()
		got := engineFindings(t, s, k, shards, start, end, fmt.Sprintf("%s-down-%d", cfg.Database, k))
		during = max(during, time.Since(t0))
		if fmt.Sprint(got) != fmt.Sprint(before[k]) {
			t.Errorf("detection shard %d with its first replica down: findings\n%q\nbefore the kill\n%q", k, got, before[k])
		}
	}
	second := map[int]uint64{}
	for _, n := range []int{2, 4} {
		c := cfg
		c.Addr = addrs[n-1]
		storetest.Exec(t, c, "SYSTEM FLUSH LOGS")
	}
	for k := range shards {
		node := 2 + 2*(k%2) // storage shard k%2's second replica
		c := cfg
		c.Addr = addrs[node-1]
		second[k] = storetest.Count(t, c, "SELECT count() FROM system.query_log WHERE type = 2 AND query_id = ? AND position(query, '_local') > 0",
			fmt.Sprintf("%s-down-%d", cfg.Database, k))
		if second[k] == 0 {
			t.Errorf("detection shard %d: no query of its engine on node %d, the second replica of storage shard %d", k, node, k%2+1)
		}
	}
	downFor := time.Since(killedAt)

	startNode(t, 1)
	startNode(t, 3)
	restarted = true
	// Back on the first replicas once their back-off (15 s) has passed.
	var back time.Duration
	deadline := time.Now().Add(3 * time.Minute)
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s-after-%d", cfg.Database, i)
		got := engineFindings(t, s, 0, shards, start, end, id)
		if fmt.Sprint(got) != fmt.Sprint(before[0]) {
			t.Errorf("detection shard 0 after the restart: findings differ:\n%q\n%q", got, before[0])
		}
		c := cfg
		c.Addr = addrs[0]
		storetest.Exec(t, c, "SYSTEM FLUSH LOGS")
		// (A node killed before it flushed its first query log has no
		// system.query_log until it flushes one.)
		if storetest.Count(t, c, "SELECT count() FROM system.tables WHERE database = 'system' AND name = 'query_log'") > 0 &&
			storetest.Count(t, c, "SELECT count() FROM system.query_log WHERE type = 2 AND query_id = ?", id) > 0 {
			back = time.Since(killedAt) - downFor
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reads of storage shard 1 did not return to node 1 within 3 minutes of its restart")
		}
		time.Sleep(5 * time.Second)
	}
	t.Logf("RESULT detect_replica_kill: shards=%d findings=%d same_findings_while_down=%v queries_on_second_replica=%v slowest_engine_cycle_while_down_s=%.1f back_on_first_replica_after_restart_s=%.1f",
		shards, total, !t.Failed(), second, during.Seconds(), back.Seconds())
}
