package ingest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/models"
)

// sizedStore records the number of events of each insert.
type sizedStore struct {
	*fakeStore
	mu    sync.Mutex
	sizes []int
}

func (s *sizedStore) InsertEvents(ctx context.Context, evs []models.Event, at time.Time) error {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(evs))
	s.mu.Unlock()
	return s.fakeStore.InsertEvents(ctx, evs, at)
}

// runBatches consumes msgs (partition 0 of the access topic) with cfg and
// returns the events of each insert.
func runBatches(t *testing.T, cfg Config, msgs []kafka.Message) []int {
	t.Helper()
	j := &journal{}
	src := newFakeSource(j, msgs...)
	st := &sizedStore{fakeStore: &fakeStore{j: j}}
	m := NewMetrics(nil)
	c, err := New(cfg, Deps{Source: src, DeadLetters: &fakeWriter{j: j}, Store: st, Hasher: fakeHasher{}, Metrics: m,
		Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	want := msgs[len(msgs)-1].Offset + 1
	if err := runConsumer(t, c, func() bool { return src.committed()[partitionKey{DefaultAccessTopic, 0}] == want }); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.sizes)
}

// TestBacklogBatches: a consumer that is behind (the fetches' high
// watermark shows at least batch_size more messages waiting) grows its
// batch up to backlog_batch_size; once fewer than batch_size wait, the
// batch closes at batch_size again, and a consumer that has caught up
// (every message the last of its fetch) keeps batches of batch_size.
func TestBacklogBatches(t *testing.T) {
	ts := testNow.Add(-time.Minute)
	mk := func(hwm func(off int64) int64) []kafka.Message {
		var msgs []kafka.Message
		for i := range 50 {
			m := msg(DefaultAccessTopic, 0, int64(i), accessJSON("e"+itoa(i), ts, "u"))
			m.HighWaterMark = hwm(int64(i))
			msgs = append(msgs, m)
		}
		return msgs
	}
	// A linger longer than the test's batches take to fill: they close by
	// count, except the last.
	cfg := Config{BatchSize: 10, BacklogBatchSize: 30, Linger: 2 * time.Second}

	// Behind: all 50 were in Kafka before the first fetch. Offset i has
	// 49-i messages after it: 30 (lag still 20), then 11 (at offset 40
	// fewer than 10 wait: back to batch_size, already reached), then the
	// rest at the linger.
	if got, want := runBatches(t, cfg, mk(func(int64) int64 { return 50 })), []int{30, 11, 9}; !slices.Equal(got, want) {
		t.Errorf("behind: inserts of %v events, want %v", got, want)
	}
	// Caught up: each message was the newest in Kafka when fetched.
	if got, want := runBatches(t, cfg, mk(func(off int64) int64 { return off + 1 })), []int{10, 10, 10, 10, 10}; !slices.Equal(got, want) {
		t.Errorf("caught up: inserts of %v events, want %v", got, want)
	}
	// Behind by little (less than batch_size waiting): batch_size.
	if got, want := runBatches(t, cfg, mk(func(off int64) int64 { return off + 5 })), []int{10, 10, 10, 10, 10}; !slices.Equal(got, want) {
		t.Errorf("a few behind: inserts of %v events, want %v", got, want)
	}
}

// TestBacklogBatchLingers: a batch of a consumer that is behind waits past
// its linger for more messages (up to ten lingers) instead of closing at
// batch_size; with none coming it still closes.
func TestBacklogBatchLingers(t *testing.T) {
	ts := testNow.Add(-time.Minute)
	var msgs []kafka.Message
	for i := range 15 {
		m := msg(DefaultAccessTopic, 0, int64(i), accessJSON("e"+itoa(i), ts, "u"))
		m.HighWaterMark = 1000 // far behind, but only 15 arrive
		msgs = append(msgs, m)
	}
	cfg := Config{BatchSize: 10, BacklogBatchSize: 100, Linger: 20 * time.Millisecond}
	if got, want := runBatches(t, cfg, msgs), []int{15}; !slices.Equal(got, want) {
		t.Errorf("inserts of %v events, want %v", got, want)
	}
}
