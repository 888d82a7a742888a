package ingest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
)

// blockedStore holds every InsertEvents until open is closed: ClickHouse
// slower than Kafka.
type blockedStore struct {
	Store
	open    chan struct{}
	once    sync.Once
	blocked chan struct{} // closed at the first insert
}

func (s *blockedStore) InsertEvents(ctx context.Context, evs []models.Event, at time.Time) error {
	s.once.Do(func() { close(s.blocked) })
	select {
	case <-s.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.Store.InsertEvents(ctx, evs, at)
}

// liveHeap is the test process's live heap after a forced collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// vmRSS returns a /proc/self/status line (VmRSS, VmHWM) for the log.
func vmRSS(field string) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			return strings.TrimSpace(strings.TrimPrefix(l, field+":"))
		}
	}
	return "?"
}

// TestMemoryBoundedByBytes (issue 10 item 5) floods the real broker with
// 300 messages of 1 MB (valid events padded with an unknown field) while
// ClickHouse is slow (every insert held), with ingest.max_buffer_bytes
// 64 MiB. Before, batches (20,000), queues (4,096) and partition readers
// (1,000 each) counted messages, so ingest pulled all 300 MB in. Now the
// live heap of this process (measured in-process after a forced GC, every
// 250 ms while inserts are held) must stay under the budget plus 100 MiB;
// then, inserts released, every event is stored and committed.
func TestMemoryBoundedByBytes(t *testing.T) {
	const n, size = 300, 1_000_000
	const budget = 64 << 20
	cfg := testConfig(t)
	cfg.BatchSize = 20000
	cfg.MaxBufferBytes = budget
	cfg.MaxMessageBytes = 2 << 20
	now := time.Now().UTC()
	w := &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.AccessTopic, BatchBytes: 2 << 20, BatchSize: 1,
		RequiredAcks: kafka.RequireOne, Balancer: &kafka.RoundRobin{}, Async: false}
	pad := strings.Repeat("x", size-600)
	var msgs []kafka.Message
	for i := range n {
		v := strings.Replace(accessJSON(fmt.Sprintf("mem-%d", i), now, "agent-m"), `{`, `{"transcript":"`+pad+`",`, 1)
		msgs = append(msgs, kafka.Message{Value: []byte(v)})
		if len(msgs) == 20 || i == n-1 {
			for try := 0; ; try++ {
				err := w.WriteMessages(t.Context(), msgs...)
				if err == nil {
					break
				}
				if !errors.Is(err, kafka.UnknownTopicOrPartition) || try == 50 { // a new topic takes a moment to appear
					t.Fatalf("producing 1 MB messages: %v", err)
				}
				time.Sleep(200 * time.Millisecond)
			}
			msgs = msgs[:0]
		}
	}
	w.Close()
	msgs, pad = nil, ""
	base := liveHeap()

	real := storetest.New(t)
	st := &blockedStore{Store: real, open: make(chan struct{}), blocked: make(chan struct{})}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	errc := make(chan error, 1)
	m := NewMetrics(nil)
	go func() { errc <- Run(ctx, cfg, st, testPseudonymizer(t), nil, m, nil) }()
	select {
	case <-st.blocked:
	case err := <-errc:
		t.Fatalf("ingest stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("no insert within 60 s")
	}
	var peak uint64
	for range 40 { // 10 s of a held insert: the pipeline fills up to its budget
		peak = max(peak, liveHeap())
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("max_buffer_bytes %d MiB: live heap before ingest %d MiB, peak while inserts were held %d MiB; VmRSS %s, VmHWM %s",
		budget>>20, base>>20, peak>>20, vmRSS("VmRSS"), vmRSS("VmHWM"))
	if limit := uint64(budget + 100<<20); peak > limit {
		t.Errorf("live heap peaked at %d MiB with inserts held, over the budget + 100 MiB (%d MiB)", peak>>20, limit>>20)
	}
	close(st.open)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ls, err := GroupLag(t.Context(), cfg, cfg.Group, cfg.AccessTopic)
		lag := int64(-1)
		if err == nil && len(ls) > 0 {
			lag = 0
			for _, l := range ls {
				lag += l.Lag
			}
		}
		if lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag %d two minutes after the inserts were released", lag)
		}
		time.Sleep(250 * time.Millisecond)
	}
	stop()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	sum, err := real.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != n || sum.DistinctIDs != n {
		t.Fatalf("stored %d events (%d distinct), want %d", sum.Events, sum.DistinctIDs, n)
	}
}
