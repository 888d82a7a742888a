package ingest

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/models"
)

// ambiguousStore stores a batch and then reports a broken connection, once:
// the answer of a successful insert lost on the way back.
type ambiguousStore struct {
	*fakeStore
	lost bool
}

func (s *ambiguousStore) InsertEvents(ctx context.Context, evs []models.Event, at time.Time) error {
	if err := s.fakeStore.InsertEvents(ctx, evs, at); err != nil {
		return err
	}
	if !s.lost {
		s.lost = true
		return io.ErrUnexpectedEOF
	}
	return nil
}

// TestAmbiguousInsertNotDuplicated (issue 10 item 7): an insert whose
// answer is lost (the rows did land) is retried only with the events that
// are not stored yet, so no event is stored twice.
func TestAmbiguousInsertNotDuplicated(t *testing.T) {
	j := &journal{}
	ts := testNow.Add(-time.Minute)
	src := newFakeSource(j, msg(DefaultAccessTopic, 0, 0, accessJSON("a1", ts, "u")), msg(DefaultAccessTopic, 0, 1, accessJSON("a2", ts, "u")))
	st := &ambiguousStore{fakeStore: &fakeStore{j: j}}
	c, _ := New(Config{BatchSize: 2, MaxBackoff: 10 * time.Millisecond}, Deps{Source: src, DeadLetters: &fakeWriter{j: j}, Store: st,
		Hasher: fakeHasher{}, Now: func() time.Time { return testNow }})
	if err := runConsumer(t, c, func() bool { return src.committed()[partitionKey{DefaultAccessTopic, 0}] == 2 }); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, e := range st.events {
		ids[e.EventID]++
	}
	if ids["a1"] != 1 || ids["a2"] != 1 || len(st.events) != 2 {
		t.Fatalf("stored %v, want a1 and a2 once each", ids)
	}
}

// fencedSource is a source whose generation ended (a rebalance completed
// without this member, which held its batch past the rebalance timeout):
// every commit fails with ErrGenerationEnded.
type fencedSource struct {
	*fakeSource
	commits atomic.Int32
}

func (s *fencedSource) Fence(context.Context, int32, []kafka.Message) error {
	s.commits.Add(1)
	return errors.Join(kafka.IllegalGeneration, ErrGenerationEnded)
}

// TestFencedBatchNotInserted (issue 10 item 7): a batch whose consumer
// group generation ended before its insert (another member owns the
// partitions now and re-reads them) is not inserted, so two members never
// insert the same batch.
func TestFencedBatchNotInserted(t *testing.T) {
	j := &journal{}
	ts := testNow.Add(-time.Minute)
	src := &fencedSource{fakeSource: newFakeSource(j, msg(DefaultAccessTopic, 0, 5, accessJSON("f1", ts, "u")))}
	st := &fakeStore{j: j}
	m := NewMetrics(nil)
	c, _ := New(Config{BatchSize: 1}, Deps{Source: src, DeadLetters: &fakeWriter{j: j}, Store: st, Hasher: fakeHasher{}, Metrics: m,
		Now: func() time.Time { return testNow }})
	ctx, stop := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for src.commits.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	stop()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(st.events) != 0 {
		t.Fatalf("inserted %d events of a fenced generation", len(st.events))
	}
	if src.commits.Load() == 0 {
		t.Fatal("the generation was never checked before the insert")
	}
}
