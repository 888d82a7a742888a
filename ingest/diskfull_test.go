package ingest

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chatwarden/chatwarden/models"
)

// gatedStore fails InsertEvents with err while failing is set. With health
// set, it counts the retried attempts (each after an earlier failure) that
// found ingest reporting itself healthy.
type gatedStore struct {
	*fakeStore
	failing atomic.Bool
	err     error
	tries   atomic.Int32
	health  func() error
	healthy atomic.Int32
}

func (s *gatedStore) InsertEvents(ctx context.Context, evs []models.Event, at time.Time) error {
	if s.failing.Load() {
		if s.tries.Add(1) > 1 && s.health != nil && s.health() == nil {
			s.healthy.Add(1)
		}
		return s.err
	}
	return s.fakeStore.InsertEvents(ctx, evs, at)
}

// TestDiskFullRetriedUnhealthy (issue 10 item 13): a ClickHouse that
// reports its disk full (code 75, errno 28) or read-only (code 1000, what
// 18.16 answers on EROFS; code 242 a read-only table) must not stop ingest:
// it retries with back-off, commits nothing, reports itself unhealthy
// (Metrics.Health and chatwarden_ingest_store_failing) and resumes when the
// disk is writable again.
func TestDiskFullRetriedUnhealthy(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"disk full", &clickhouse.Exception{Code: 75, Name: "DB::ErrnoException",
			Message: "Cannot write to file /data/store/x.bin, errno: 28, strerror: No space left on device"}},
		{"read-only file", &clickhouse.Exception{Code: 1000, Name: "DB::Exception", Message: "File is read-only: /data/x"}},
		{"read-only table", &clickhouse.Exception{Code: 242, Name: "DB::Exception", Message: "Table is in readonly mode"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &journal{}
			src := newFakeSource(j, msg(DefaultAccessTopic, 0, 0, accessJSON("d1", testNow.Add(-time.Minute), "u")))
			m := NewMetrics(nil)
			st := &gatedStore{fakeStore: &fakeStore{j: j}, err: tc.err, health: m.Health}
			st.failing.Store(true)
			c, _ := New(Config{BatchSize: 1, MaxBackoff: 50 * time.Millisecond}, Deps{Source: src, DeadLetters: &fakeWriter{j: j},
				Store: st, Hasher: fakeHasher{}, Metrics: m, Now: func() time.Time { return testNow }})
			ctx, stop := context.WithCancel(t.Context())
			defer stop()
			errc := make(chan error, 1)
			go func() { errc <- c.Run(ctx) }()
			deadline := time.Now().Add(2 * time.Minute) // generous: a limit for a stuck run, not a speed target
			for st.tries.Load() < 5 {
				select {
				case err := <-errc:
					t.Fatalf("ingest stopped on %q: %v", tc.name, err)
				case <-time.After(20 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatal("no retries")
				}
			}
			if err := m.Health(); err == nil || !strings.Contains(err.Error(), "insert_events") {
				t.Errorf("Health while failing = %v, want an error naming insert_events", err)
			}
			// Between its attempts the insert re-fences; the fence's
			// success must not read as the insert's recovery.
			if n := st.healthy.Load(); n > 0 {
				t.Errorf("%d retried inserts found ingest reporting itself healthy", n)
			}
			if got := testutil.ToFloat64(m.StoreFailing); got != 1 {
				t.Errorf("store_failing while failing = %v, want 1", got)
			}
			if len(src.committed()) != 0 {
				t.Fatalf("committed %v while the insert fails", src.committed())
			}
			st.failing.Store(false)
			for src.committed()[partitionKey{DefaultAccessTopic, 0}] != 1 {
				select {
				case err := <-errc:
					t.Fatalf("ingest stopped: %v", err)
				case <-time.After(20 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatal("not committed after the disk came back")
				}
			}
			if err := m.Health(); err != nil {
				t.Errorf("Health after recovery = %v", err)
			}
			if got := testutil.ToFloat64(m.StoreFailing); got != 0 {
				t.Errorf("store_failing after recovery = %v, want 0", got)
			}
			stop()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}
