package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/internal/slackfake"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// DetectLateness is how long after a window ends serve's detection waits
// for ingest (cmd/chatwarden's detectLateness; a test there keeps the two
// equal). Latency prints it with the window detector's figures.
const DetectLateness = 5 * time.Second

// Slack channels of the latency benchmark: event-rule alerts, the window
// detectors' alerts on the sample actors, and everything else (bots' other
// findings, the readiness probe), so that one kind never waits for the
// other's per-channel rate limit.
const (
	benchChanRules  = "CBENCHRULES"
	benchChanWindow = "CBENCHWINDOW"
	benchChanOther  = "CBENCHOTHER"
)

// Latency measures end-to-end alert latency: an event produced to
// Kafka until its Slack message reaches a slacktest server, through the real
// serve components (ingest, event rules, window detectors, alerting) of a
// `chatwarden serve` child process against the local Kafka and ClickHouse,
// on a scratch database and topics. The window detector's samples are
// measured twice, on two sets of warmed actors: with streaming detection
// (serve's default, window_stream_p95_ms) and, serve restarted with
// detect.stream_every: -1s, with the window detectors alone
// (window_p95_ms).
func Latency(ctx context.Context, e *Env, args []string) error {
	fs := e.flags("latency")
	samples := fs.Int("samples", 16, "samples per kind (event rule, window detector)")
	window := fs.Duration("window", time.Minute, "detection window (detect.window)")
	historyDays := fs.Int("history-days", 4, "days of baseline history inserted before serve starts")
	keep := fs.Bool("keep", false, "keep the scratch database and topics")
	verbose := fs.Bool("v", false, "log serve's info messages")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *samples < 1 || *historyDays < 3 {
		return fmt.Errorf("bench-latency: -samples must be >= 1 and -history-days >= 3 (detection warm-up)")
	}
	c := settingsFromEnv() // CHATWARDEN_* (stack addresses)
	id := benchID()
	brokers := c.Ingest.Brokers
	if len(brokers) == 0 {
		brokers = []string{"127.0.0.1:9092"}
	}
	chAddr := c.ClickHouse.Addr
	if chAddr == "" {
		chAddr = "127.0.0.1:9000"
	}
	ic := ingest.Config{Brokers: brokers, AccessTopic: "bench-latency-" + id + "-access",
		ConsentTopic: "bench-latency-" + id + "-consent", DeadLetterTopic: "bench-latency-" + id + "-deadletter",
		Group: "bench-latency-" + id}
	db := "bench_latency_" + id
	fmt.Fprintf(e.Stdout, "bench-latency: database %s, topics bench-latency-%s-*, window %s, %d samples per kind\n", db, id, *window, *samples)

	st, cleanup, err := scratch(ctx, e, ic, store.Config{Addr: chAddr, Database: db}, *keep)
	if err != nil {
		return err
	}
	defer cleanup()

	// Baseline history of the window actors: a steady 5 records every 10
	// minutes for historyDays, so each is warm (its own baseline) when serve
	// starts and back-fills detection from actor_minute. The first set is
	// measured with streaming detection (serve's default), the second with
	// the window detectors alone (detect.stream_every: -1s).
	streamActors := make([]string, *samples)
	winActors := make([]string, *samples)
	for i := range winActors {
		streamActors[i] = fmt.Sprintf("lat-stream-%03d", i)
		winActors[i] = fmt.Sprintf("lat-agent-%03d", i)
	}
	start := time.Now()
	hctx, cancelHistory := context.WithTimeout(ctx, 2*time.Minute)
	n, err := benchHistory(hctx, st, append(slices.Clone(streamActors), winActors...), *historyDays, time.Now().UTC())
	cancelHistory()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "history: %d events for %d actors over %d days inserted in %s\n", n, len(streamActors)+len(winActors), *historyDays, time.Since(start).Round(time.Millisecond))

	// Slack: a slacktest server recording when each message arrives.
	arrivals := newArrivalLog()
	rec := slackfake.New(arrivals.add)
	defer rec.Close()

	dir, err := os.MkdirTemp("", "chatwarden-bench-latency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	prod, err := ingest.NewProducer(ic, "")
	if err != nil {
		return err
	}
	defer prod.Close()
	r := &latencyRun{e: e, prod: prod, arrivals: arrivals, window: *window}

	// serve with streaming detection (its default): the event rules, then
	// the window samples, detected on the open window.
	srv, err := r.startServe(ctx, st, dir, "stream", serveConfig{chAddr: chAddr, db: db, ic: ic, window: *window,
		historyDays: *historyDays, slackURL: rec.URL()}, *verbose)
	if err != nil {
		return err
	}
	defer func() { _ = srv.stop() }()
	ruleLat, ruleMissing, err := r.measureRules(ctx, *samples)
	if err != nil {
		return err
	}
	streamLat, streamMissing, err := r.measureWindows(ctx, streamActors)
	if err != nil {
		return err
	}
	if err := srv.stop(); err != nil {
		e.Log.Warn("stopping serve", "err", err)
	}
	// serve again with the window detectors alone (stream_every: -1s): the
	// window samples wait for their window to close.
	srv, err = r.startServe(ctx, st, dir, "window", serveConfig{chAddr: chAddr, db: db, ic: ic, window: *window,
		historyDays: *historyDays, slackURL: rec.URL(), noStream: true}, *verbose)
	if err != nil {
		return err
	}
	defer func() { _ = srv.stop() }()
	winLat, winMissing, err := r.measureWindows(ctx, winActors)
	if err != nil {
		return err
	}
	if err := srv.stop(); err != nil {
		e.Log.Warn("stopping serve", "err", err)
	}
	if len(ruleLat) == 0 || len(winLat) == 0 || len(streamLat) == 0 {
		return fmt.Errorf("no latency measured (event rule %d/%d, window %d/%d, window streaming %d/%d messages arrived)",
			len(ruleLat), *samples, len(winLat), *samples, len(streamLat), *samples)
	}
	fmt.Fprintf(e.Stdout, "event rule (bot_cross_customer, critical): n=%d missing=%d p50=%d ms p95=%d ms max=%d ms (target p95 <= 5000 ms)\n",
		len(ruleLat), ruleMissing, pct(ruleLat, 0.50).Milliseconds(), pct(ruleLat, 0.95).Milliseconds(), slices.Max(ruleLat).Milliseconds())
	fmt.Fprintf(e.Stdout, "window detector (window %s, lateness %s): n=%d missing=%d p50=%d ms p95=%d ms max=%d ms (target p95 <= %d ms)\n",
		*window, DetectLateness, len(winLat), winMissing, pct(winLat, 0.50).Milliseconds(), pct(winLat, 0.95).Milliseconds(),
		slices.Max(winLat).Milliseconds(), (*window + 10*time.Second).Milliseconds())
	fmt.Fprintf(e.Stdout, "window detector, streaming (window %s, stream_every 1s): n=%d missing=%d p50=%d ms p95=%d ms max=%d ms (target p95 <= 10000 ms)\n",
		*window, len(streamLat), streamMissing, pct(streamLat, 0.50).Milliseconds(), pct(streamLat, 0.95).Milliseconds(),
		slices.Max(streamLat).Milliseconds())
	fmt.Fprintf(e.Stdout, "event_rule_p95_ms=%d window_p95_ms=%d window_stream_p95_ms=%d\n", pct(ruleLat, 0.95).Milliseconds(),
		pct(winLat, 0.95).Milliseconds(), pct(streamLat, 0.95).Milliseconds())
	return nil
}

// startServe writes serve's configuration for one phase of the run
// (named what) into dir, starts serve, and returns once detection has its
// baselines and ingest is consuming (a probe event is in ClickHouse).
func (r *latencyRun) startServe(ctx context.Context, st *store.Store, dir, what string, sc serveConfig, verbose bool) (*serveProc, error) {
	pdir := filepath.Join(dir, what)
	if err := os.MkdirAll(pdir, 0o700); err != nil {
		return nil, err
	}
	cfgFile, err := writeServeConfig(pdir, sc)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	srv, err := startServe(r.e, cfgFile, verbose)
	if err != nil {
		return nil, err
	}
	if err := srv.waitReady(5 * time.Minute); err != nil {
		_ = srv.stop()
		return nil, err
	}
	// Ingest is consuming once a probe event is in ClickHouse.
	probe := benchEvent("probe", "lat-probe", models.ActorHuman, time.Now().UTC())
	if _, err := r.produce(ctx, probe); err != nil {
		_ = srv.stop()
		return nil, fmt.Errorf("producing the probe event: %w", err)
	}
	if err := waitStored(ctx, st, probe.EventID, 2*time.Minute); err != nil {
		_ = srv.stop()
		return nil, err
	}
	fmt.Fprintf(r.e.Stdout, "serve (%s) ready in %s (baselines back-filled, ingest consuming)\n", what, time.Since(start).Round(time.Millisecond))
	return srv, nil
}

// scratch creates the run's topics and migrated database; cleanup closes
// the store and, unless keep, drops both.
func scratch(ctx context.Context, e *Env, ic ingest.Config, sc store.Config, keep bool) (*store.Store, func(), error) {
	setupCtx, cancelSetup := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelSetup()
	if err := ingest.CreateTopics(setupCtx, ic, ingest.TopicSpec{Name: ic.AccessTopic, Partitions: 4},
		ingest.TopicSpec{Name: ic.ConsentTopic, Partitions: 2}, ingest.TopicSpec{Name: ic.DeadLetterTopic, Partitions: 2}); err != nil {
		return nil, nil, fmt.Errorf("creating topics (is Kafka at %v running?): %w", ic.Brokers, err)
	}
	st, err := store.Open(setupCtx, sc, nil)
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() {
		defer st.Close()
		if keep {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := st.DropDatabase(cctx); err != nil {
			e.Log.Warn("dropping the scratch database", "database", sc.Database, "err", err)
		}
		if err := ingest.DeleteTopics(cctx, ic, ic.AccessTopic, ic.ConsentTopic, ic.DeadLetterTopic); err != nil {
			e.Log.Warn("deleting the scratch topics", "err", err)
		}
	}
	if _, err := st.Migrate(setupCtx, time.Now()); err != nil {
		cleanup()
		return nil, nil, err
	}
	return st, cleanup, nil
}

// serveConfig is what writeServeConfig puts in serve's configuration.
type serveConfig struct {
	chAddr, db  string
	ic          ingest.Config
	window      time.Duration
	historyDays int
	slackURL    string
	// noStream turns streaming detection off (detect.stream_every: -1s).
	noStream bool
}

// writeServeConfig writes serve's configuration for the run into dir: the
// scratch database and topics, a throwaway pseudonym key, the detection
// window (streaming on or off), and Slack at the recorder with the
// benchmark's channels.
func writeServeConfig(dir string, sc serveConfig) (string, error) {
	streamEvery := "1s"
	if sc.noStream {
		streamEvery = "-1s"
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keyFile := filepath.Join(dir, "pseudonym.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)), 0o600); err != nil {
		return "", err
	}
	cfgFile := filepath.Join(dir, "chatwarden.yaml")
	yaml := fmt.Sprintf(`clickhouse:
  addr: %s
  database: %s
pseudonym:
  key_file: %s
ingest:
  brokers: [%s]
  access_topic: %s
  consent_topic: %s
  dead_letter_topic: %s
  group: %s
  session_timeout: 6s
serve:
  addr: 127.0.0.1:0
detect:
  window: %s
  stream_every: %s
  backfill_days: %d
  severities:
    bot_cross_customer: critical
alert:
  default_channel: %s
  routes:
    - channel: %s
      detectors: [bot_cross_customer]
    - channel: %s
      tenants: [probe, chatwarden]
    - channel: %s
      actor_types: [bot]
  self:
    check_every: 1h
  slack:
    token: xoxb-bench-latency
    api_url: %s
`, sc.chAddr, sc.db, keyFile, strings.Join(sc.ic.Brokers, ", "), sc.ic.AccessTopic, sc.ic.ConsentTopic, sc.ic.DeadLetterTopic,
		sc.ic.Group, sc.window, streamEvery, sc.historyDays+1, benchChanWindow, benchChanRules, benchChanOther, benchChanOther, sc.slackURL)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		return "", err
	}
	return cfgFile, nil
}

// serveProc is a `chatwarden serve` child process.
type serveProc struct {
	cmd      *exec.Cmd
	ready    chan struct{}
	served   chan error
	stopOnce sync.Once
	stopErr  error
}

// startServe starts serve with cfgFile, its log copied to e.Stderr (see
// watchLog), and watches for detection's "baselines ready".
func startServe(e *Env, cfgFile string, verbose bool) (*serveProc, error) {
	p := &serveProc{ready: make(chan struct{}), served: make(chan error, 1)}
	p.cmd = exec.Command(e.Chatwarden, "serve", "-config", cfgFile)
	p.cmd.Env = append(os.Environ(), "CHATWARDEN_LOG_LEVEL=info")
	p.cmd.Stdout = e.Stderr
	logs, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting chatwarden serve: %w", err)
	}
	var readyOnce sync.Once
	go func() {
		watchLog(logs, e.Stderr, verbose, "detection baselines ready", func() { readyOnce.Do(func() { close(p.ready) }) })
		p.served <- p.cmd.Wait()
	}()
	return p, nil
}

// waitReady waits until detection has its baselines.
func (p *serveProc) waitReady(timeout time.Duration) error {
	select {
	case <-p.ready:
		return nil
	case err := <-p.served:
		p.served <- err // for stop
		return fmt.Errorf("serve stopped before detection was ready: %w", err)
	case <-time.After(timeout):
		_ = p.stop()
		return fmt.Errorf("detection baselines not ready after %s", timeout)
	}
}

// stop ends serve (SIGTERM, then a kill after 45 s) once and returns how
// it ended.
func (p *serveProc) stop() error {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case p.stopErr = <-p.served:
		case <-time.After(45 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.served
			p.stopErr = errors.New("serve did not stop within 45s")
		}
	})
	return p.stopErr
}

// latencyRun produces the samples and waits for their Slack messages.
type latencyRun struct {
	e        *Env
	prod     *ingest.Producer
	arrivals *arrivalLog
	window   time.Duration
}

// produce sends evs to Kafka and returns when it started sending.
func (r *latencyRun) produce(ctx context.Context, evs ...models.Event) (time.Time, error) {
	var b bytes.Buffer
	for i := range evs {
		line, err := json.Marshal(&evs[i])
		if err != nil {
			return time.Time{}, err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	t := time.Now()
	_, err := r.prod.ProduceJSONL(ctx, &b, 0, nil)
	return t, err
}

// measureRules: a bot reads a customer other than its conversation's
// authenticated customer (bot_cross_customer, configured critical). One
// sample at a time, a second apart (Slack's per-channel limit).
func (r *latencyRun) measureRules(ctx context.Context, samples int) (lat []time.Duration, missing int, err error) {
	for i := 0; i < samples; i++ {
		actor := fmt.Sprintf("lat-bot-%03d", i)
		ev := benchEvent("bench", actor, models.ActorBot, time.Now().UTC())
		ev.Tool, ev.Conversation = "lookup_customer", models.Conversation{ID: "conv-" + actor, SubjectID: "cust-auth-" + actor}
		ev.SubjectID = "cust-other-" + actor
		t, err := r.produce(ctx, ev)
		if err != nil {
			return nil, 0, fmt.Errorf("producing rule sample %d: %w", i, err)
		}
		at, ok := r.arrivals.wait(ctx, benchChanRules, actor, t, 30*time.Second)
		if !ok {
			missing++
			fmt.Fprintf(r.e.Stdout, "event_rule sample %2d %s: no Slack message within 30s\n", i, actor)
			continue
		}
		lat = append(lat, at.Sub(t))
		fmt.Fprintf(r.e.Stdout, "event_rule sample %2d %s: %d ms\n", i, actor, at.Sub(t).Milliseconds())
		time.Sleep(time.Second)
	}
	return lat, missing, nil
}

// measureWindows: each sample actor reads 1,500 records of 60 customers at
// once (its baseline is 5 records per active window): a volume spike /
// enumeration. Samples are spread evenly over the phases of the window (4
// per window, each at a random point of its quarter), because the wait
// until the window closes depends on the phase.
func (r *latencyRun) measureWindows(ctx context.Context, actors []string) (lat []time.Duration, missing int, err error) {
	perWindow := 4
	slot := r.window / time.Duration(perWindow)
	t0 := time.Now().Truncate(r.window).Add(r.window)
	time.Sleep(time.Until(t0))
	type winSample struct {
		actor string
		at    time.Time
	}
	var sent []winSample
	for i, actor := range actors {
		due := t0.Add(time.Duration(i)*slot + randDuration(slot))
		time.Sleep(time.Until(due))
		now := time.Now().UTC()
		evs := make([]models.Event, 60)
		for j := range evs {
			evs[j] = benchEvent("bench", actor, models.ActorHuman, now)
			evs[j].Records = 25
			evs[j].SubjectID = fmt.Sprintf("cust-%s-%02d", actor, j)
		}
		t, err := r.produce(ctx, evs...)
		if err != nil {
			return nil, 0, fmt.Errorf("producing window sample %d: %w", i, err)
		}
		sent = append(sent, winSample{actor, t})
		fmt.Fprintf(r.e.Stdout, "window sample %2d %s produced %.1fs into its window\n", i, actor, t.Sub(t.Truncate(r.window)).Seconds())
	}
	for i, s := range sent {
		at, ok := r.arrivals.wait(ctx, benchChanWindow, s.actor, s.at, time.Until(s.at.Add(2*r.window+30*time.Second)))
		if !ok {
			missing++
			fmt.Fprintf(r.e.Stdout, "window sample %2d %s: no Slack message within 2 windows + 30s\n", i, s.actor)
			continue
		}
		lat = append(lat, at.Sub(s.at))
		fmt.Fprintf(r.e.Stdout, "window sample %2d %s: %d ms (%s)\n", i, s.actor, at.Sub(s.at).Milliseconds(),
			strings.Join(r.arrivals.detectors(benchChanWindow, s.actor), ","))
	}
	return lat, missing, nil
}

// benchHistory inserts the window actors' steady baseline: one event of 5
// records every 10 minutes for days days before now.
func benchHistory(ctx context.Context, st *store.Store, actors []string, days int, now time.Time) (int, error) {
	from := now.Add(-time.Duration(days) * 24 * time.Hour).Truncate(10 * time.Minute)
	end := now.Add(-10 * time.Minute)
	var batch []models.Event
	n := 0
	for t := from; t.Before(end); t = t.Add(10 * time.Minute) {
		for _, a := range actors {
			ev := benchEvent("bench", a, models.ActorHuman, t)
			ev.SubjectID = fmt.Sprintf("cust-%s-%d", a, t.Unix()/600%7)
			batch = append(batch, ev)
		}
		if len(batch) >= 20000 {
			if err := st.InsertEvents(ctx, batch, now); err != nil {
				return n, fmt.Errorf("inserting history: %w", err)
			}
			n += len(batch)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		if err := st.InsertEvents(ctx, batch, now); err != nil {
			return n, fmt.Errorf("inserting history: %w", err)
		}
		n += len(batch)
	}
	return n, nil
}

// benchEvent is an ordinary support read of one customer profile.
func benchEvent(tenant, actor string, typ models.ActorType, ts time.Time) models.Event {
	return models.Event{EventID: "lat-" + benchID() + benchID(), TS: ts, Tenant: tenant,
		Actor: models.Actor{ID: actor, Type: typ, Role: "agent"}, Action: models.ActionRead, Store: "crm",
		Resource: models.Resource{Type: "customer_profile", ID: "prof-" + actor}, SubjectID: "cust-" + actor,
		Records: 5, Fields: []string{"name", "email"}, Purpose: "support", Result: models.ResultAllowed,
		Client: models.Client{IP: "10.0.0.1", Country: "US"}}
}

func waitStored(ctx context.Context, st *store.Store, eventID string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ids, err := st.ExistingEventIDs(ctx, []string{eventID})
		if err == nil && len(ids) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("probe event not in ClickHouse after %s (ingest not consuming?): %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// arrivalLog keeps the Slack calls the recorder received.
type arrivalLog struct {
	mu   sync.Mutex
	cond chan struct{} // closed and replaced on every arrival
	all  []slackfake.Arrival
}

func newArrivalLog() *arrivalLog { return &arrivalLog{cond: make(chan struct{})} }

func (l *arrivalLog) add(a slackfake.Arrival) {
	l.mu.Lock()
	l.all = append(l.all, a)
	close(l.cond)
	l.cond = make(chan struct{})
	l.mu.Unlock()
}

// mentions reports whether a's message names actor (shown as `actor`).
func mentions(a *slackfake.Arrival, actor string) bool {
	return strings.Contains(a.Text, actor) || strings.Contains(a.Blocks, actor)
}

// wait returns when the first message in channel naming actor arrived at
// or after since.
func (l *arrivalLog) wait(ctx context.Context, channel, actor string, since time.Time, timeout time.Duration) (time.Time, bool) {
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		for i := range l.all {
			a := &l.all[i]
			if a.Channel == channel && !a.At.Before(since) && mentions(a, actor) {
				l.mu.Unlock()
				return a.At, true
			}
		}
		cond := l.cond
		l.mu.Unlock()
		select {
		case <-cond:
		case <-deadline:
			return time.Time{}, false
		case <-ctx.Done():
			return time.Time{}, false
		}
	}
}

// detectors lists the detector names the first message about actor in
// channel shows.
func (l *arrivalLog) detectors(channel, actor string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for i := range l.all {
		a := &l.all[i]
		if a.Channel != channel || !mentions(a, actor) {
			continue
		}
		for _, d := range detect.KnownDetectors() {
			if strings.Contains(a.Text+a.Blocks, "`"+d+"`") {
				out = append(out, d)
			}
		}
		break
	}
	return out
}

// watchLog copies serve's log from r to out (every line when verbose, else
// warnings and errors only) and calls fire when a line carries msg. It
// reads r to its end, so that serve never blocks writing its log.
func watchLog(r io.Reader, out io.Writer, verbose bool, msg string, fire func()) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if strings.Contains(line, msg) {
				fire()
			}
			if verbose || strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") ||
				strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
				_, _ = io.WriteString(out, line)
			}
		}
		if err != nil {
			return
		}
	}
}

// pct is the nearest-rank percentile p of ds.
func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func randDuration(d time.Duration) time.Duration {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(d)))
	if err != nil {
		return 0
	}
	return time.Duration(n.Int64())
}

func benchID() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
