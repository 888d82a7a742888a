package ingest

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// fakeHasher marks hashed values so that tests see what was pseudonymized.
type fakeHasher struct{}

func (fakeHasher) HashTenant(_, s string) string {
	if s == "" {
		return ""
	}
	return "H(" + s + ")"
}

// journal records the order of side effects across fakes.
type journal struct {
	mu    sync.Mutex
	steps []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	j.steps = append(j.steps, s)
	j.mu.Unlock()
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.steps...)
}

type fakeSource struct {
	j       *journal
	msgs    chan Fetched
	mu      sync.Mutex
	gen     int32 // the live generation
	commits map[partitionKey]int64
	failN   int // commit failures to return first
}

func newFakeSource(j *journal, msgs ...kafka.Message) *fakeSource {
	s := &fakeSource{j: j, gen: 1, msgs: make(chan Fetched, len(msgs)+10), commits: map[partitionKey]int64{}}
	for _, m := range msgs {
		s.msgs <- Fetched{Message: m, Generation: 1}
	}
	return s
}

func (s *fakeSource) Fetch(ctx context.Context) (Fetched, error) {
	select {
	case m, ok := <-s.msgs:
		if !ok {
			return Fetched{}, io.EOF
		}
		return m, nil
	case <-ctx.Done():
		return Fetched{}, ctx.Err()
	}
}

func (s *fakeSource) Hold(_ context.Context, fn func(gen int32, commit CommitFunc) error) error {
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	return fn(gen, func(_ context.Context, msgs []kafka.Message) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.failN > 0 {
			s.failN--
			return kafka.RebalanceInProgress
		}
		for _, m := range msgs {
			k := partitionKey{m.Topic, m.Partition}
			if m.Offset+1 > s.commits[k] {
				s.commits[k] = m.Offset + 1
			}
		}
		s.j.add("commit")
		return nil
	})
}

func (s *fakeSource) Fence(context.Context, int32, []kafka.Message) error { return nil }

func (s *fakeSource) committed() map[partitionKey]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[partitionKey]int64{}
	for k, v := range s.commits {
		out[k] = v
	}
	return out
}

type fakeWriter struct {
	j    *journal
	mu   sync.Mutex
	msgs []kafka.Message
}

func (w *fakeWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	w.mu.Lock()
	w.msgs = append(w.msgs, msgs...)
	w.mu.Unlock()
	w.j.add("dead_letter_topic")
	return nil
}

type fakeStore struct {
	j        *journal
	mu       sync.Mutex
	events   []models.Event
	consents []models.Consent
	dead     []store.DeadLetter
	marks    []store.OffsetRange
	failN    int   // InsertEvents failures to return first
	failErr  error // the error returned
	inserts  int
}

func (s *fakeStore) ExistingEventIDs(_ context.Context, ids []string) (map[string]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	have := map[string]bool{}
	for _, e := range s.events {
		have[e.EventID] = true
	}
	out := map[string]bool{}
	for _, id := range ids {
		if have[id] {
			out[id] = true
		}
	}
	return out, nil
}

// CompletePartialInsert finds the stored ids; the fake has no views to
// complete.
func (s *fakeStore) CompletePartialInsert(ctx context.Context, ids []string, _, _ time.Time) (store.PartialInsert, error) {
	stored, err := s.ExistingEventIDs(ctx, ids)
	return store.PartialInsert{Stored: stored}, err
}

func (s *fakeStore) InsertEvents(_ context.Context, evs []models.Event, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failN > 0 {
		s.failN--
		return s.failErr
	}
	s.inserts++
	s.events = append(s.events, evs...)
	s.j.add("insert_events")
	return nil
}

func (s *fakeStore) InsertConsents(_ context.Context, cs []models.Consent, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.consents = append(s.consents, cs...)
	s.j.add("insert_consents")
	return nil
}

func (s *fakeStore) InsertDeadLetters(_ context.Context, dls []store.DeadLetter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = append(s.dead, dls...)
	s.j.add("insert_dead_letters")
	return nil
}

func (s *fakeStore) MarkBatches(_ context.Context, rs []store.OffsetRange, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marks = append(s.marks, rs...)
	for _, r := range rs {
		if r.Judged {
			s.j.add("mark_judged")
		} else {
			s.j.add("mark_batch")
		}
	}
	return nil
}

func (s *fakeStore) BatchMarks(_ context.Context, topic string, partition int32, first, last int64) ([]store.OffsetRange, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.OffsetRange
	for _, r := range s.marks {
		if r.Topic == topic && r.Partition == partition && r.Last >= first && r.First <= last {
			out = append(out, r)
		}
	}
	return out, nil
}

func msg(topic string, part int, off int64, v string) kafka.Message {
	return kafka.Message{Topic: topic, Partition: part, Offset: off, Value: []byte(v), HighWaterMark: off + 1}
}

func TestDecodeBatch(t *testing.T) {
	ts := testNow.Add(-time.Minute)
	bads := badMessages(testNow)
	var msgs []kafka.Message
	msgs = append(msgs,
		msg(DefaultAccessTopic, 0, 0, accessJSON("a", ts, "u1")),
		msg(DefaultAccessTopic, 0, 1, accessJSON("b", ts, "u1")),
		msg(DefaultAccessTopic, 1, 0, accessJSON("a", ts, "u1")), // repeated id
		msg(DefaultConsentTopic, 0, 0, consentJSON("s1", ts, false)),
		msg(DefaultConsentTopic, 0, 1, accessJSON("c", ts, "u1")), // an access event on the consent topic
	)
	for i, b := range bads {
		msgs = append(msgs, msg(DefaultAccessTopic, 2, int64(i), b.value))
	}
	c, err := New(Config{}, Deps{Source: newFakeSource(&journal{}), DeadLetters: &fakeWriter{}, Store: &fakeStore{}, Hasher: fakeHasher{}})
	if err != nil {
		t.Fatal(err)
	}
	b := decodeBatch(c, msgs, testNow)

	t.Run("unique events, pseudonymized", func(t *testing.T) {
		if len(b.events) != 2 || b.dupes != 1 {
			t.Fatalf("got %d events, %d dupes; want 2, 1", len(b.events), b.dupes)
		}
		e := b.events[0]
		if e.EventID != "a" || e.SubjectID != "H(cust-a)" || e.Conversation.SubjectID != "H(cust-a)" || e.Resource.ID != "H(rec-a)" {
			t.Fatalf("ids not pseudonymized: %+v", e)
		}
		if e.Actor.ID != "u1" || e.Conversation.ID != "conv-1" {
			t.Fatalf("non-customer ids changed: %+v", e)
		}
	})
	t.Run("consent pseudonymized", func(t *testing.T) {
		if len(b.consents) != 1 || b.consents[0].SubjectID != "H(s1)" || b.consents[0].Granted {
			t.Fatalf("consents: %+v", b.consents)
		}
	})
	t.Run("dead letters", func(t *testing.T) {
		if len(b.rows) != len(bads)+1 || len(b.dead) != len(b.rows) {
			t.Fatalf("got %d rows, %d topic messages; want %d", len(b.rows), len(b.dead), len(bads)+1)
		}
		// the access event on the consent topic fails consent validation
		if b.rows[0].Topic != DefaultConsentTopic || b.rows[0].Reason != string(models.ReasonMissingField) {
			t.Fatalf("access event on consent topic: %+v", b.rows[0])
		}
		for i, want := range bads {
			row, dm := b.rows[i+1], b.dead[i+1]
			if row.Reason != string(want.reason) || row.Field != want.field || row.Offset != int64(i) || row.Partition != 2 {
				t.Errorf("%s: row %+v", want.reason, row)
			}
			h := map[string]string{}
			for _, x := range dm.Headers {
				h[x.Key] = string(x.Value)
			}
			if h["reason"] != string(want.reason) || h["field"] != want.field || h["source_topic"] != DefaultAccessTopic ||
				h["source_partition"] != "2" || h["source_offset"] != itoa(i) || h["detail"] == "" {
				t.Errorf("%s: headers %v", want.reason, h)
			}
			if string(dm.Value) != want.dlqValue() {
				t.Errorf("%s: dead-letter value is not the original bytes", want.reason)
			}
		}
	})
}

// decodeBatch decodes and gathers msgs as one batch of generation 1.
func decodeBatch(c *Consumer, msgs []kafka.Message, now time.Time) batchResult {
	fs := make([]Fetched, len(msgs))
	for i, m := range msgs {
		fs[i] = Fetched{Message: m, Generation: 1}
	}
	res, evs := c.decodeAll(fs, now)
	b, _ := gather(&pendingBatch{msgs: fs, res: res, evs: evs, now: now}, 1)
	return b
}

func itoa(i int) string { return strconv.Itoa(i) }

// runConsumer runs c until the source is drained and stored, then stops it.
func runConsumer(t *testing.T, c *Consumer, done func() bool) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	deadline := time.Now().Add(2 * time.Minute) // generous: a limit for a stuck run, not a speed target
	for !done() {
		select {
		case err := <-errc:
			cancel()
			return err
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("consumer did not finish in 2 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	return <-errc
}

func TestRunOrderAndCommit(t *testing.T) {
	ts := testNow.Add(-time.Minute)
	j := &journal{}
	var msgs []kafka.Message
	for i := range 7 {
		msgs = append(msgs, msg(DefaultAccessTopic, i%2, int64(i/2), accessJSON("e"+itoa(i%5), ts, "u")))
	}
	msgs = append(msgs, msg(DefaultAccessTopic, 0, 4, "not json"))
	src := newFakeSource(j, msgs...)
	st := &fakeStore{j: j}
	st.events = []models.Event{{EventID: "e0"}} // already stored: redelivery
	w := &fakeWriter{j: j}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	var observed []string
	c, err := New(Config{BatchSize: 3, Linger: 20 * time.Millisecond},
		Deps{Source: src, DeadLetters: w, Store: st, Hasher: fakeHasher{}, Metrics: m, Now: func() time.Time { return testNow },
			Observer: func(_ context.Context, now time.Time, evs []models.Event, _ []models.Consent) {
				if !now.Equal(testNow) {
					t.Errorf("observer now = %v", now)
				}
				for _, e := range evs {
					observed = append(observed, e.EventID)
				}
				j.add("observe")
			}})
	if err != nil {
		t.Fatal(err)
	}
	err = runConsumer(t, c, func() bool {
		cm := src.committed()
		return cm[partitionKey{DefaultAccessTopic, 0}] == 5 && cm[partitionKey{DefaultAccessTopic, 1}] == 3
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, e := range st.events {
		ids[e.EventID]++
	}
	for _, id := range []string{"e0", "e1", "e2", "e3", "e4"} {
		if ids[id] != 1 {
			t.Errorf("event %s stored %d times", id, ids[id])
		}
	}
	if len(observed) != 4 {
		t.Errorf("observed %v, want the 4 new events", observed)
	}
	if len(st.dead) != 1 || st.dead[0].Reason != "bad_json" || len(w.msgs) != 1 {
		t.Errorf("dead letters: table %+v topic %d", st.dead, len(w.msgs))
	}
	// Every insert and observation comes before the commit of its batch.
	steps := j.list()
	last := ""
	for _, s := range steps {
		if s == "commit" && last == "" {
			t.Fatalf("commit before any write: %v", steps)
		}
		last = s
	}
	if steps[len(steps)-1] != "commit" {
		t.Fatalf("last step %q, want commit: %v", steps[len(steps)-1], steps)
	}
	if got := testutil.ToFloat64(m.Duplicates); got != 3 {
		t.Errorf("duplicates metric = %v, want 3 (e0 stored, e0 and e1 repeated)", got)
	}
	if got := testutil.ToFloat64(m.DeadLetters.WithLabelValues("bad_json")); got != 1 {
		t.Errorf("dead letter metric = %v", got)
	}
}

func TestRetryThenSucceed(t *testing.T) {
	j := &journal{}
	src := newFakeSource(j, msg(DefaultAccessTopic, 0, 0, accessJSON("r1", testNow.Add(-time.Minute), "u")))
	st := &fakeStore{j: j, failN: 2, failErr: errors.New("dial tcp 127.0.0.1:9000: connection refused")}
	m := NewMetrics(nil)
	c, _ := New(Config{BatchSize: 1}, Deps{Source: src, DeadLetters: &fakeWriter{j: j}, Store: st, Hasher: fakeHasher{}, Metrics: m, Now: func() time.Time { return testNow }})
	if err := runConsumer(t, c, func() bool { return src.committed()[partitionKey{DefaultAccessTopic, 0}] == 1 }); err != nil {
		t.Fatal(err)
	}
	if len(st.events) != 1 || st.inserts != 1 {
		t.Fatalf("stored %d events in %d inserts", len(st.events), st.inserts)
	}
	if got := testutil.ToFloat64(m.Retries.WithLabelValues("insert_events")); got != 2 {
		t.Fatalf("retries = %v, want 2", got)
	}
}

func TestPermanentErrorCommitsNothing(t *testing.T) {
	j := &journal{}
	src := newFakeSource(j, msg(DefaultAccessTopic, 0, 0, accessJSON("p1", testNow.Add(-time.Minute), "u")))
	perm := &permanentErr{Code: 60, Message: "unknown table"}
	st := &fakeStore{j: j, failN: 1000, failErr: perm}
	c, _ := New(Config{BatchSize: 1}, Deps{Source: src, DeadLetters: &fakeWriter{j: j}, Store: st, Hasher: fakeHasher{}, Now: func() time.Time { return testNow }})
	err := c.Run(t.Context())
	if !errors.As(err, &perm) {
		t.Fatalf("Run = %v, want the permanent error", err)
	}
	if len(src.committed()) != 0 {
		t.Fatalf("committed %v after a failed insert", src.committed())
	}
}

// permanentErr is a ClickHouse exception that store.IsRetryable rejects.
type permanentErr = clickhouse.Exception

func TestShutdownFlushesPartialBatch(t *testing.T) {
	j := &journal{}
	src := newFakeSource(j, msg(DefaultAccessTopic, 3, 41, accessJSON("s1", testNow.Add(-time.Minute), "u")))
	st := &fakeStore{j: j}
	const linger = 2 * time.Second // the longest ingest.linger allowed
	c, _ := New(Config{BatchSize: 100, Linger: linger}, Deps{Source: src, DeadLetters: &fakeWriter{j: j}, Store: st, Hasher: fakeHasher{}, Now: func() time.Time { return testNow }})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	started := time.Now()
	go func() { errc <- c.Run(ctx) }()
	// Fetched (not a fixed 100 ms: a slow run may not have fetched yet), then
	// a moment in the batch, waiting for linger.
	for deadline := time.Now().Add(2 * time.Minute); len(src.msgs) > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the message was not fetched in 2 minutes")
		}
	}
	time.Sleep(100 * time.Millisecond)
	// Only while the linger cannot have passed (a run starved for 2 s under
	// load flushes on linger, as it should).
	if len(st.events) != 0 && time.Since(started) < linger {
		t.Fatal("flushed before linger")
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(st.events) != 1 || src.committed()[partitionKey{DefaultAccessTopic, 3}] != 42 {
		t.Fatalf("after shutdown: %d events, commits %v", len(st.events), src.committed())
	}
}

func TestFailedCommitCarriesOver(t *testing.T) {
	j := &journal{}
	ts := testNow.Add(-time.Minute)
	src := newFakeSource(j, msg(DefaultAccessTopic, 0, 0, accessJSON("f1", ts, "u")))
	src.failN = 3 // the first batch's commit is given up
	st := &fakeStore{j: j}
	m := NewMetrics(nil)
	c, _ := New(Config{BatchSize: 1}, Deps{Source: src, DeadLetters: &fakeWriter{j: j}, Store: st, Hasher: fakeHasher{}, Metrics: m, Now: func() time.Time { return testNow }})
	go func() {
		for testutil.ToFloat64(m.CommitFailures) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		src.msgs <- Fetched{Message: msg(DefaultAccessTopic, 1, 0, accessJSON("f2", ts, "u")), Generation: 1}
	}()
	if err := runConsumer(t, c, func() bool { return len(src.committed()) == 2 }); err != nil {
		t.Fatal(err)
	}
	cm := src.committed()
	if cm[partitionKey{DefaultAccessTopic, 0}] != 1 || cm[partitionKey{DefaultAccessTopic, 1}] != 1 {
		t.Fatalf("commits %v: the failed partition-0 commit must ride with the next batch", cm)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"defaults", Config{}, ""},
		{"bad broker", Config{Brokers: []string{"kafka"}}, "ingest.brokers[0]"},
		{"same topics", Config{AccessTopic: "x", ConsentTopic: "x"}, "ingest.access_topic"},
		{"linger too long", Config{Linger: 5 * time.Second}, "ingest.linger"},
		{"session too short", Config{SessionTimeout: time.Second}, "ingest.session_timeout"},
		{"huge messages", Config{MaxMessageBytes: 1 << 30}, "ingest.max_message_bytes"},
		{"tiny buffer", Config{MaxBufferBytes: 1 << 20}, "ingest.max_buffer_bytes"},
		{"buffer under eight messages", Config{MaxBufferBytes: 32 << 20, MaxMessageBytes: 8 << 20}, "ingest.max_buffer_bytes"},
		{"huge key limit", Config{MaxKeyBytes: 1 << 20}, "ingest.max_key_bytes"},
		{"backlog batch under batch_size", Config{BatchSize: 50000, BacklogBatchSize: 40000}, "ingest.backlog_batch_size"},
		{"backlog batch under the default batch_size", Config{BacklogBatchSize: 1000}, "ingest.backlog_batch_size"},
		{"huge backlog batch", Config{BacklogBatchSize: 2_000_000}, "ingest.backlog_batch_size"},
		{"batch_size over the default backlog batch", Config{BatchSize: 200_000}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("got %v, want an error naming %s", err, tt.field)
			}
		})
	}
}

// TestStaleGenerationDropped: messages fetched in a generation that ended
// before their batch was stored are neither inserted nor committed; the
// partition's new owner re-reads them.
func TestStaleGenerationDropped(t *testing.T) {
	j := &journal{}
	ts := testNow.Add(-time.Minute)
	src := newFakeSource(j)
	src.gen = 2
	src.msgs <- Fetched{Message: msg(DefaultAccessTopic, 0, 5, accessJSON("old", ts, "u")), Generation: 1}
	src.msgs <- Fetched{Message: msg(DefaultAccessTopic, 1, 9, accessJSON("new", ts, "u")), Generation: 2}
	st := &fakeStore{j: j}
	m := NewMetrics(nil)
	c, _ := New(Config{BatchSize: 2}, Deps{Source: src, DeadLetters: &fakeWriter{j: j}, Store: st, Hasher: fakeHasher{}, Metrics: m, Now: func() time.Time { return testNow }})
	if err := runConsumer(t, c, func() bool { return len(src.committed()) > 0 }); err != nil {
		t.Fatal(err)
	}
	if len(st.events) != 1 || st.events[0].EventID != "new" {
		t.Fatalf("stored %+v, want only the live generation's event", st.events)
	}
	cm := src.committed()
	if _, ok := cm[partitionKey{DefaultAccessTopic, 0}]; ok || cm[partitionKey{DefaultAccessTopic, 1}] != 10 {
		t.Fatalf("commits %v: the stale partition must not be committed", cm)
	}
	if got := testutil.ToFloat64(m.Stale); got != 1 {
		t.Fatalf("stale metric = %v", got)
	}
}
