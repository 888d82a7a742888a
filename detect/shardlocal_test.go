package detect_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// shardLocalTraffic is two hours of reads by 40 actors of 3 tenants, two
// customers a minute each, with a burst of 30 denied reads by every
// fifth actor at 10:40 and a sweep over 120 customers by every seventh
// at 10:50 (which the detectors may or may not judge on no history: it
// feeds the distinct-customer counts).
func shardLocalTraffic(base time.Time) []models.Event {
	var evs []models.Event
	add := func(i, m, n int, result models.Result, subject func(j int) string) {
		for j := range n {
			evs = append(evs, models.Event{EventID: fmt.Sprintf("a%d-m%d-%s-%d", i, m, result, j),
				TS: base.Add(time.Duration(m)*time.Minute + time.Duration(j*50/n)*time.Second), Tenant: []string{"t1", "t2", "brand-three"}[i%3],
				Actor:  models.Actor{ID: fmt.Sprintf("agent-%d", i), Type: models.ActorHuman, Role: "support"},
				Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: subject(j),
				Records: 1, Fields: []string{"email"}, Result: result, Client: models.Client{Country: "DE"}})
		}
	}
	for i := range 40 {
		for m := range 120 {
			add(i, m, 2, models.ResultAllowed, func(j int) string { return fmt.Sprintf("c%d-%d", i, (m+j)%9) })
		}
		if i%5 == 0 {
			add(i, 100, 30, models.ResultDenied, func(j int) string { return fmt.Sprintf("c%d-%d", i, j%9) })
		}
		if i%7 == 0 {
			add(i, 110, 120, models.ResultAllowed, func(j int) string { return fmt.Sprintf("sweep-%d-%d", i, j) })
		}
	}
	return evs
}

// shardFindings runs the engine of shard k of shards over agg from start
// to end and returns its findings as comparable lines, sorted.
func shardFindings(t *testing.T, agg detect.Aggregates, key store.ShardKey, k, shards int, start, end time.Time) []string {
	t.Helper()
	var out []string
	eng, err := detect.New(detect.Config{Shard: k, Shards: shards}, agg, detect.Options{ShardKey: key,
		Findings: func(_ context.Context, fs ...models.Finding) error {
			for _, f := range fs {
				out = append(out, fmt.Sprintf("%s %s/%s %s-%s %s score=%.6g p=%.6g subjects=%v: %s", f.Detector, f.Tenant, f.ActorID,
					f.WindowStart.Format("15:04"), f.WindowEnd.Format("15:04"), f.Severity, f.Score, f.Probability, f.Evidence.TopSubjects, f.Summary))
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	eng.StartAt(start)
	if err := eng.Advance(t.Context(), end); err != nil {
		t.Fatalf("shard %d: %v", k, err)
	}
	sort.Strings(out)
	return out
}

// TestShardLocalEngineFindsWhatTheDistributedTablesShow: each of 4
// detection engines (on a cluster, make test-cluster: each reads its
// storage shard's local tables, store.TestDetectionShardReadsOneStorageShard)
// raises the same findings, scores and evidence summaries, as the same
// engine reading through the Distributed tables (its window aggregates,
// and every enum_every its distinct customers per actor); together they
// find every denied burst of the traffic once. On one server the two
// reads are the same and the shards still split the findings.
func TestShardLocalEngineFindsWhatTheDistributedTablesShow(t *testing.T) {
	t.Parallel() // a database of its own
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	ctx := t.Context()
	base := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	if err := s.InsertEvents(ctx, shardLocalTraffic(base), base.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	dcfg := cfg
	dcfg.Cluster = "" // the same database, its queries as they are: through the Distributed tables on a cluster
	d, err := store.Open(ctx, dcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	key := s.ShardKey()
	if (storetest.Cluster() != "") != (key == store.ShardByTenantActor) {
		t.Fatalf("shard key %d on cluster %q", key, storetest.Cluster())
	}
	start, end := base.Add(time.Minute), base.Add(2*time.Hour)
	const shards = 4
	raised := map[string]int{}
	for k := range shards {
		sh := store.Shard{Index: k, Count: shards, Key: key}
		if _, local, err := s.LocalShard(ctx, sh); err != nil || local != (storetest.Cluster() != "") {
			t.Fatalf("shard %d: reads locally %v (%v) on cluster %q", k, local, err, storetest.Cluster())
		}
		local := shardFindings(t, s, key, k, shards, start, end)
		distributed := shardFindings(t, d, key, k, shards, start, end)
		if fmt.Sprint(local) != fmt.Sprint(distributed) {
			t.Errorf("shard %d: findings differ\nlocal:\n%q\ndistributed:\n%q", k, local, distributed)
		}
		for _, f := range local {
			var det, who string
			fmt.Sscan(f, &det, &who)
			raised[det+" "+who]++
		}
	}
	for i := range 40 {
		who := fmt.Sprintf("%s/agent-%d", []string{"t1", "t2", "brand-three"}[i%3], i)
		if i%5 == 0 && raised[detect.DetDeniedBurst+" "+who] != 1 {
			t.Errorf("%s: %d denied-burst findings over the shards, want 1", who, raised[detect.DetDeniedBurst+" "+who])
		}
	}
	t.Logf("findings over %d shards: %v", shards, raised)
}
