package ingest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestHeldBatchFencedAfterRebalance (issue 10 item 7), on the real broker:
// member A holds a batch (its insert is slow, say ClickHouse is down) while
// member B joins. The coordinator waits for A only until the rebalance
// timeout, then gives B every partition; B re-reads A's batch. A's fence
// must then say its generation ended, so A never inserts the batch that B
// inserts too. Before B joins, the fence passes.
func TestHeldBatchFencedAfterRebalance(t *testing.T) {
	cfg := testConfig(t)
	cfg.ShutdownTimeout = time.Second // rebalance timeout = session timeout (6 s) + 1 s
	p, err := NewProducer(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if err := p.w.WriteMessages(t.Context(), kafka.Message{Topic: cfg.AccessTopic, Key: []byte{byte('a' + i)}, Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()

	a, err := NewGroupSource(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	f, err := a.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var before, after error
	var bParts int
	err = a.Hold(ctx, func(gen int32, _ CommitFunc) error {
		if gen != f.Generation {
			t.Fatalf("holding generation %d, fetched in %d", gen, f.Generation)
		}
		before = a.Fence(ctx, gen, []kafka.Message{f.Message})
		// B joins while A holds its batch past the rebalance timeout.
		b, err := NewGroupSource(cfg, nil, nil)
		if err != nil {
			return err
		}
		defer b.Close()
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			fb, err := b.Fetch(ctx)
			if err != nil {
				return err
			}
			if fb.Partition == f.Partition {
				bParts++ // B re-reads A's partition
				break
			}
		}
		after = a.Fence(ctx, gen, []kafka.Message{f.Message})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		t.Errorf("fence before the rebalance = %v, want nil", before)
	}
	if bParts == 0 {
		t.Fatal("member B never read A's partition")
	}
	if !errors.Is(after, ErrGenerationEnded) {
		t.Errorf("fence after B took A's partition = %v, want ErrGenerationEnded", after)
	}
}
