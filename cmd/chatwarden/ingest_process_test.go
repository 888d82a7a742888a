package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/internal/subproc"
	"github.com/chatwarden/chatwarden/store"
)

// These tests run the real binary against the stack's Kafka and ClickHouse,
// each with its own topics, group and database.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// chatwardenBinary builds the command once per test run.
func chatwardenBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "chatwarden-bin-")
		if buildErr != nil {
			return
		}
		binPath, buildErr = subproc.Build("../..", buildDir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// ingestEnv is one test's topics, group, database and config file.
type ingestEnv struct {
	cfg     ingest.Config
	store   *store.Store
	cfgFile string
	env     []string
}

func newIngestEnv(t *testing.T) *ingestEnv {
	t.Helper()
	cfg := testTopics(t, "test", 4, 2, 2)
	brokers := cfg.Brokers
	st := storetest.New(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	dir := t.TempDir()
	file := filepath.Join(dir, "chatwarden.yaml")
	yaml := fmt.Sprintf(`ingest:
  access_topic: %s
  consent_topic: %s
  dead_letter_topic: %s
  group: %s
  batch_size: 2000
  linger: 50ms
  session_timeout: 6s
`, cfg.AccessTopic, cfg.ConsentTopic, cfg.DeadLetterTopic, cfg.Group)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	// From scratch: an exported CHATWARDEN_* variable must not change
	// what the subprocess does.
	env := subproc.Env(
		"CHATWARDEN_KAFKA_BROKERS="+strings.Join(brokers, ","),
		"CHATWARDEN_CLICKHOUSE_ADDR="+storetest.Addr(),
		"CHATWARDEN_CLICKHOUSE_DATABASE="+st.Database(),
		"CHATWARDEN_PSEUDONYM_KEY="+hex.EncodeToString(key))
	return &ingestEnv{cfg: cfg, store: st, cfgFile: file, env: env}
}

// Generous limits for the waits of these tests: each wait returns as soon
// as its condition holds, so the limit only decides when a stuck run gives
// up; under a load average of 30 a process start, a group join after a
// session timeout and 60,000 inserts can take minutes (TestCrashRecovery
// once timed out at 40 s).
const (
	progressWait = 5 * time.Minute // for events to be stored, an instance to start ingesting
	exitWait     = 2 * time.Minute // for a signalled process to exit
)

// writeEvent writes the valid event prefix-i, as produce and stream send it.
func writeEvent(w io.Writer, now time.Time, prefix string, i int) error {
	_, err := fmt.Fprintf(w, `{"event_id":"%s-%d","ts":%q,"actor":{"id":"agent-%d","type":"human","role":"agent"},"action":"read","store":"crm","resource":{"type":"customer_profile","id":"r-%d"},"subject_id":"c-%d","fields":["email"]}`+"\n",
		prefix, i, now.Add(-time.Duration(i%3600)*time.Second).Format(time.RFC3339), i%97, i, i%5000)
	return err
}

// produce sends n valid events with ids prefix-0..n-1 at rate per second
// (0: at once).
func (ie *ingestEnv) produce(t *testing.T, ctx context.Context, prefix string, n, rate int) error {
	var buf bytes.Buffer
	now := time.Now().UTC()
	for i := range n {
		_ = writeEvent(&buf, now, prefix, i)
	}
	p, err := ingest.NewProducer(ie.cfg, "")
	if err != nil {
		return err
	}
	defer p.Close()
	_, err = p.ProduceJSONL(ctx, &buf, rate, nil)
	return err
}

// stream sends valid events prefix-0, prefix-1, ... at rate per second
// until stop is closed, then at least tail more, and returns how many it
// sent: events are flowing whenever stop is still open, however slow the
// machine is.
func (ie *ingestEnv) stream(ctx context.Context, prefix string, rate int, stop <-chan struct{}, tail int) (int, error) {
	pr, pw := io.Pipe()
	now := time.Now().UTC()
	go func() {
		left := -1 // events still to write after stop; -1 while stop is open
		for i := 0; left != 0; i++ {
			if left < 0 {
				select {
				case <-stop:
					left = tail
				default:
				}
			} else {
				left--
			}
			if writeEvent(pw, now, prefix, i) != nil {
				return // the producer gave up
			}
		}
		pw.Close()
	}()
	p, err := ingest.NewProducer(ie.cfg, "")
	if err != nil {
		pr.Close()
		return 0, err
	}
	defer p.Close()
	st, err := p.ProduceJSONL(ctx, pr, rate, nil)
	pr.Close() // unblocks the writer if the producer stopped early
	return int(st.Access), err
}

// proc is a running `chatwarden ingest`.
type proc struct {
	*subproc.Proc
	metrics string
}

func (ie *ingestEnv) start(t *testing.T) *proc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return &proc{Proc: subproc.Start(t, "ingest", chatwardenBinary(t), ie.env, "ingest", "-config", ie.cfgFile, "-metrics-addr", addr),
		metrics: addr}
}

// metricsText returns p's /metrics page.
func (p *proc) metricsText(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// eventsIn returns chatwarden_ingest_events_total of p, or -1 if unreadable.
func (p *proc) eventsIn() float64 {
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "chatwarden_ingest_events_total "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// stop sends sig and waits for the process to exit.
func (p *proc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	return p.Stop(t, sig, exitWait)
}

// waitFor is subproc.WaitFor.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	subproc.WaitFor(t, timeout, what, cond)
}

func (ie *ingestEnv) summary(t *testing.T) store.Summary {
	t.Helper()
	s, err := ie.store.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (ie *ingestEnv) lag(t *testing.T) int64 {
	t.Helper()
	ls, err := ingest.GroupLag(t.Context(), ie.cfg, ie.cfg.Group, ie.cfg.AccessTopic)
	if err != nil {
		return -1
	}
	var lag int64
	for _, l := range ls {
		lag += l.Lag
	}
	return lag
}

// checkExactlyOnce checks that all n events are stored once and committed.
func (ie *ingestEnv) checkExactlyOnce(t *testing.T, n int) {
	t.Helper()
	waitFor(t, progressWait, fmt.Sprintf("%d events stored and committed", n), func() bool {
		return ie.summary(t).DistinctIDs >= uint64(n) && ie.lag(t) == 0
	})
	s := ie.summary(t)
	if s.Events != uint64(n) || s.DistinctIDs != uint64(n) {
		t.Fatalf("stored %d rows with %d distinct ids, want %d of each (lost or duplicated)", s.Events, s.DistinctIDs, n)
	}
}

// TestCrashRecovery SIGKILLs ingest mid-stream and restarts it: nothing may
// be lost (offsets are committed only after the insert) or duplicated
// (redelivered events are dropped by event_id).
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	ie := newIngestEnv(t)
	const n = 60000
	if err := ie.produce(t, t.Context(), "crash", n, 0); err != nil {
		t.Fatal(err)
	}
	p1 := ie.start(t)
	waitFor(t, progressWait, "the first events stored", func() bool { return ie.summary(t).Events >= n/5 })
	_ = p1.stop(t, syscall.SIGKILL)
	killedAt := ie.summary(t).Events
	if killedAt >= n {
		t.Fatalf("all %d events were stored before the kill; the test proves nothing", n)
	}
	t.Logf("killed with %d of %d events stored", killedAt, n)

	p2 := ie.start(t)
	ie.checkExactlyOnce(t, n)
	// `chatwarden ingest` exposes the same process-level metrics as serve.
	text := p2.metricsText(t)
	for _, want := range []string{"chatwarden_build_info{", "go_goroutines ", "process_resident_memory_bytes ", "chatwarden_ingest_source_last_event_timestamp_seconds{store="} {
		if !strings.Contains(text, want) {
			t.Errorf("ingest /metrics has no %q", want)
		}
	}
	if err := p2.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// TestRebalance runs two ingest instances in one group while events stream
// in: the second joins mid-stream (a rebalance under load), then the first
// stops gracefully and the second takes over its partitions.
func TestRebalance(t *testing.T) {
	t.Parallel()
	ie := newIngestEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Events stream in (4,000 a second) until A has stopped, then for
	// about 2 s more: B joins and A stops under traffic however long the
	// starts and the rebalance take (a fixed 40,000 could all be stored
	// before a slow rebalance finished).
	stopStream := make(chan struct{})
	type streamed struct {
		n   int
		err error
	}
	prod := make(chan streamed, 1)
	go func() {
		n, err := ie.stream(ctx, "rebal", 4000, stopStream, 8000)
		prod <- streamed{n, err}
	}()

	a := ie.start(t)
	waitFor(t, progressWait, "instance A ingesting", func() bool { return a.eventsIn() > 0 })
	b := ie.start(t)
	waitFor(t, progressWait, "instance B ingesting after the rebalance", func() bool { return b.eventsIn() > 0 })
	if err := a.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("instance A graceful stop: %v", err)
	}
	close(stopStream)
	t.Logf("A stopped with %d events stored, events still streaming", ie.summary(t).DistinctIDs)
	r := <-prod
	if r.err != nil {
		t.Fatal(r.err)
	}
	ie.checkExactlyOnce(t, r.n)
	if err := b.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("instance B graceful stop: %v", err)
	}
}
