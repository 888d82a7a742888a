package ingest

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWatermarkLow: the low watermark is the oldest newest-event-time of
// the partitions behind; the brokers' view of which are behind wins over
// the last commits when they answer; nothing behind holds nothing back.
func TestWatermarkLow(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	a, b := partitionKey{"acc", 0}, partitionKey{"acc", 1}
	w := NewWatermark()
	if _, ok := w.Low(); ok {
		t.Fatal("an empty watermark holds back")
	}
	w.committed(a, t0.Add(-10*time.Minute), true)
	w.committed(b, t0, false)
	if low, ok := w.Low(); !ok || !low.Equal(t0.Add(-10*time.Minute)) {
		t.Fatalf("Low = %v %v, want the lagging partition's %v", low, ok, t0.Add(-10*time.Minute))
	}
	w.committed(a, t0.Add(-time.Minute), false)
	if _, ok := w.Low(); ok {
		t.Fatal("caught-up partitions hold back")
	}
	// After a pause nothing was committed yet, but the brokers know.
	w.lag = func(context.Context) ([]PartitionLag, error) {
		return []PartitionLag{{Topic: "acc", Partition: 0, Lag: 0}, {Topic: "acc", Partition: 1, Lag: 500}}, nil
	}
	if low, ok := w.Low(); !ok || !low.Equal(t0) {
		t.Fatalf("Low with partition 1 behind per the brokers = %v %v, want %v", low, ok, t0)
	}
	// A partition behind with nothing stored yet holds at the oldest known.
	w.lag = func(context.Context) ([]PartitionLag, error) {
		return []PartitionLag{{Topic: "acc", Partition: 2, Lag: 5}}, nil
	}
	if low, ok := w.Low(); !ok || !low.Equal(t0.Add(-time.Minute)) {
		t.Fatalf("Low with an unknown partition behind = %v %v, want %v", low, ok, t0.Add(-time.Minute))
	}
	// Brokers unreachable: the last commits decide.
	w.lag = func(context.Context) ([]PartitionLag, error) { return nil, errors.New("refused") }
	if _, ok := w.Low(); ok {
		t.Fatal("with the brokers away and every partition caught up at its last commit, Low holds back")
	}
	var nilW *Watermark
	if _, ok := nilW.Low(); ok {
		t.Fatal("a nil watermark holds back")
	}
}

// TestWatermarkFollowsCommits: the consumer records each committed
// partition's newest event time and whether messages remained behind it.
func TestWatermarkFollowsCommits(t *testing.T) {
	j := &journal{}
	old := testNow.Add(-10 * time.Minute)
	m1 := msg(DefaultAccessTopic, 0, 0, accessJSON("w1", old, "u"))
	m1.HighWaterMark = 100 // 99 more to read
	m2 := msg(DefaultAccessTopic, 1, 0, accessJSON("w2", testNow.Add(-time.Minute), "u"))
	src := newFakeSource(j, m1, m2)
	wm := NewWatermark()
	c, _ := New(Config{BatchSize: 2}, Deps{Source: src, DeadLetters: &fakeWriter{j: j}, Store: &fakeStore{j: j}, Hasher: fakeHasher{},
		Now: func() time.Time { return testNow }, Watermark: wm})
	if err := runConsumer(t, c, func() bool { return len(src.committed()) == 2 }); err != nil {
		t.Fatal(err)
	}
	if low, ok := wm.Low(); !ok || !low.Equal(old) {
		t.Fatalf("Low = %v %v, want partition 0's %v (behind)", low, ok, old)
	}
}
