package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// owners records which member owns each shard, failing on two at once.
type owners struct {
	mu     sync.Mutex
	by     map[int]string
	last   map[int]ShardProgress // the progress record each own was given
	double []string
}

func (o *owners) own(member string, g *ShardGroup, evaluatedTo time.Time) func(ctx context.Context, shard int, last ShardProgress, ok bool) {
	return func(ctx context.Context, shard int, last ShardProgress, ok bool) {
		o.mu.Lock()
		if cur, taken := o.by[shard]; taken {
			o.double = append(o.double, fmt.Sprintf("shard %d given to %s while %s owns it", shard, member, cur))
		}
		o.by[shard] = member
		if ok {
			o.last[shard] = last
		} else {
			delete(o.last, shard)
		}
		o.mu.Unlock()
		if err := g.Report(ctx, shard, time.Now(), evaluatedTo); err != nil && ctx.Err() == nil {
			panic(err)
		}
		<-ctx.Done()
		o.mu.Lock()
		delete(o.by, shard)
		o.mu.Unlock()
	}
}

// count returns how many shards each member owns.
func (o *owners) count() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := map[string]int{}
	for _, m := range o.by {
		n[m]++
	}
	return n
}

// TestShardGroupMovesShards: one member of the shard group owns every
// shard; a second one joining gets half of them, never while the first
// still owns them; when it leaves, the first takes them back and is handed
// the progress record the second wrote. The control topic is created with
// one partition per shard, and a group with another number of shards is
// refused.
func TestShardGroupMovesShards(t *testing.T) {
	cfg := testConfig(t)
	const shards = 4
	opts := func(member string) ShardGroupOptions {
		return ShardGroupOptions{Topic: cfg.Group + "-shards", Group: cfg.Group + "-detect", Shards: shards,
			SessionTimeout: 6 * time.Second, Member: member}
	}
	newGroup := func(member string) *ShardGroup {
		g, err := NewShardGroup(cfg, opts(member))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = g.Close() })
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if err := g.Ensure(ctx); err != nil {
			t.Fatalf("ensuring the shard topic: %v", err)
		}
		return g
	}
	g1 := newGroup("m1")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = DeleteTopics(ctx, cfg, opts("").Topic)
	})
	bad := opts("x")
	bad.Shards = 3
	gb, err := NewShardGroup(cfg, bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := gb.Ensure(t.Context()); !errors.Is(err, ErrShardTopic) {
		t.Errorf("a group of 3 shards on a topic of 4 partitions: %v, want ErrShardTopic", err)
	}
	_ = gb.Close()

	o := &owners{by: map[int]string{}, last: map[int]ShardProgress{}}
	t1 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	run := func(member string, g *ShardGroup, at time.Time) (stop func()) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx, o.own(member, g, at)) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: Run: %v", member, err)
			}
		}
	}
	wait := func(what string, cond func(map[string]int) bool) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for !cond(o.count()) {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: owners %v", what, o.count())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	stop1 := run("m1", g1, t1)
	defer stop1()
	wait("m1 to own every shard", func(n map[string]int) bool { return n["m1"] == shards })

	g2 := newGroup("m2")
	stop2 := run("m2", g2, t2)
	wait("m2 to own half the shards", func(n map[string]int) bool { return n["m1"] == shards/2 && n["m2"] == shards/2 })
	o.mu.Lock()
	var moved []int
	for s, m := range o.by {
		if m == "m2" {
			moved = append(moved, s)
			if p := o.last[s]; p.Owner != "m1" || !p.EvaluatedTo.Equal(t1) {
				t.Errorf("m2 took shard %d over with progress %+v, want m1's (evaluated to %s)", s, p, t1)
			}
		}
	}
	o.mu.Unlock()
	stop2()
	wait("m1 to own every shard again", func(n map[string]int) bool { return n["m1"] == shards })
	o.mu.Lock()
	for _, s := range moved {
		if p := o.last[s]; p.Owner != "m2" || !p.EvaluatedTo.Equal(t2) {
			t.Errorf("m1 took shard %d back with progress %+v, want m2's (evaluated to %s)", s, p, t2)
		}
	}
	if len(o.double) > 0 {
		t.Errorf("shards with two owners at once: %v", o.double)
	}
	o.mu.Unlock()
	progress, err := g1.Progress(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(progress) != shards {
		t.Errorf("progress records for %d shards, want %d: %v", len(progress), shards, progress)
	}
}
