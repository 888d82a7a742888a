package ingest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestBatchClosesAtByteBudget: a batch closes when its bytes reach its
// share of max_buffer_bytes, however many messages batch_size allows.
func TestBatchClosesAtByteBudget(t *testing.T) {
	j := &journal{}
	ts := testNow.Add(-time.Minute)
	pad := strings.Repeat("x", 1<<20)
	src := newFakeSource(j)
	for i := range 6 {
		v := strings.Replace(accessJSON(fmt.Sprintf("b%d", i), ts, "u"), `{`, `{"transcript":"`+pad+`",`, 1)
		src.msgs <- Fetched{Message: msg(DefaultAccessTopic, 0, int64(i), v), Generation: 1}
	}
	st := &fakeStore{j: j}
	cfg := Config{BatchSize: 1000, Linger: 2 * time.Second, MaxBufferBytes: 16 << 20, MaxMessageBytes: 2 << 20}
	c, err := New(cfg, Deps{Source: src, DeadLetters: &fakeWriter{j: j}, Store: st, Hasher: fakeHasher{}, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	if err := runConsumer(t, c, func() bool { return src.committed()[partitionKey{DefaultAccessTopic, 0}] == 6 }); err != nil {
		t.Fatal(err)
	}
	if st.inserts < 2 || len(st.events) != 6 {
		t.Fatalf("%d events in %d inserts; want 6 in batches of at most %d bytes", len(st.events), st.inserts, cfg.WithDefaults().batchBytes())
	}
}

// TestByteBudget: acquire waits for a release; a message larger than the
// whole budget takes it all once it is empty; a cancelled wait gives up.
func TestByteBudget(t *testing.T) {
	b := newByteBudget(100)
	ctx := t.Context()
	if err := b.acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- b.acquire(ctx, 50) }()
	select {
	case err := <-got:
		t.Fatalf("acquired 50 of 100 with 60 held: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	b.release(60)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	b.release(50)
	if err := b.acquire(ctx, 1000); err != nil || b.inUse() != 100 {
		t.Fatalf("a message over the budget: %v, in use %d", err, b.inUse())
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := b.acquire(cctx, 1); err == nil {
		t.Fatal("acquired with a full budget")
	}
	b.release(1000)
	if b.inUse() != 0 {
		t.Fatalf("in use %d after releasing all", b.inUse())
	}
}

// TestReaderSizing: the partition readers' queues and fetches shrink with
// the budget and the partitions assigned.
func TestReaderSizing(t *testing.T) {
	for _, tc := range []struct {
		budget     int64
		partitions int
		queue      int
		fetch      int
	}{
		{256 << 20, 4, 16, 4 << 20},
		{256 << 20, 64, 1, 1 << 20},
		{64 << 20, 4, 4, 4 << 20},
		{16 << 20, 100, 1, 64 << 10},
		{8 << 30, 1, 1000, 4 << 20},
	} {
		q, f := Config{MaxBufferBytes: tc.budget}.WithDefaults().readerSizing(tc.partitions)
		if q != tc.queue || f != tc.fetch {
			t.Errorf("budget %d MiB, %d partitions: queue %d fetch %d, want %d and %d", tc.budget>>20, tc.partitions, q, f, tc.queue, tc.fetch)
		}
	}
}
