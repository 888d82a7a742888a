package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestFindingPartitionIsTheWriters: the partition the consumer derives
// from a finding's key is the one kafka-go's murmur2 balancer (the
// writer's) picks, for every partition count used.
func TestFindingPartitionIsTheWriters(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 6, 12, 64} {
		parts := seq(n)
		seen := map[int]bool{}
		for i := range 500 {
			key := FindingKey("acme", "actor-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
			got := FindingPartition(key, n)
			if want := (kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: key}, parts...); got != want {
				t.Fatalf("n=%d key %q: partition %d, the balancer's %d", n, key, got, want)
			}
			seen[got] = true
		}
		if len(seen) != n {
			t.Errorf("n=%d: 500 keys hit %d partitions", n, len(seen))
		}
	}
	if string(FindingKey("", "a")) != string(FindingKey("default", "a")) {
		t.Error("an empty tenant is not keyed as alerting folds it (default)")
	}
}

// TestFindingsFenceFailsAfterTheGroupMovedOn: the fence a dispatcher
// checks before a first post commits the generation's offsets again; the
// coordinator accepts that while the generation is current, and once
// another member joined and a new generation formed the commit fails (the
// coordinator refuses the old generation, or kafka-go closed its
// connection), so a member that resumes after a pause posts nothing.
func TestFindingsFenceFailsAfterTheGroupMovedOn(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	topic := cfg.Group + "-findings"
	if _, err := CreateFindingsTopic(t.Context(), cfg, FindingsConfig{Topic: topic, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DeleteTopics(context.Background(), cfg, topic) })
	join := func() *kafka.ConsumerGroup {
		cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{ID: cfg.Group + "-alert", Brokers: cfg.Brokers, Topics: []string{topic},
			SessionTimeout: 6 * time.Second, RebalanceTimeout: 10 * time.Second, HeartbeatInterval: time.Second,
			JoinGroupBackoff: 200 * time.Millisecond, StartOffset: kafka.FirstOffset})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cg.Close() })
		return cg
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	gen1, err := join().Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cm := &commits{gen: gen1, topic: topic, at: map[int]int64{}}
	if err := cm.fence(); err != nil {
		t.Fatalf("fence with nothing committed: %v", err)
	}
	if err := cm.commit(map[int]int64{0: 0, 1: 0}); err != nil {
		t.Fatal(err)
	}
	if err := cm.fence(); err != nil {
		t.Fatalf("fence in the current generation: %v", err)
	}
	if _, err := join().Next(ctx); err != nil { // a second member: generation 2 forms
		t.Fatal(err)
	}
	if err := cm.fence(); err == nil {
		t.Fatalf("fence of generation %d passed after the group moved on", gen1.ID)
	}
}
