//go:build drills

package drills

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
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/internal/subproc"
	"github.com/chatwarden/chatwarden/store"
)

// The drills' own stack: never the shared one on 9092/9000.
const (
	kafkaPort     = "19092"
	kafkaCtrlPort = "19093"
	chPort        = "19000"
	chHTTPPort    = "18123"
	// chDataSize is the tmpfs the drills' ClickHouse keeps its data on, so
	// that the disk-full drill can fill it.
	chDataSize = "768m"
)

var (
	repoRoot string
	stackDir string
	binPath  string

	resultsMu sync.Mutex
	results   []result
)

// result is one drill's figures, a row of the table.
type result struct {
	Drill       string
	Injected    string
	Produced    int // messages produced (valid + malformed + alert-raising)
	Stored      uint64
	DeadLetters uint64
	Duplicates  uint64
	AlertsLost  int
	SlackDouble int
	Recovery    time.Duration
	Outcome     string
}

func record(r result) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	results = append(results, r)
}

func TestMain(m *testing.M) {
	os.Exit(mainRun(m))
}

func mainRun(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = filepath.Dir(wd)
	stackDir = os.Getenv("DRILLS_STACK_DIR")
	if stackDir == "" {
		stackDir = filepath.Join(repoRoot, ".stack-drills")
	}
	if err := setUpStack(); err != nil {
		fmt.Fprintln(os.Stderr, "drills: setting up the drill stack:", err)
		return 1
	}
	keep := os.Getenv("DRILLS_KEEP_STACK") != ""
	defer func() {
		if keep {
			fmt.Fprintln(os.Stderr, "drills: DRILLS_KEEP_STACK set, the drill stack keeps running under", stackDir)
			return
		}
		tearDownStack()
	}()
	os.Setenv("CHATWARDEN_KAFKA_BROKERS", "127.0.0.1:"+kafkaPort)
	os.Setenv("CHATWARDEN_CLICKHOUSE_ADDR", "127.0.0.1:"+chPort)
	bin, err := os.MkdirTemp("", "chatwarden-drills-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(bin)
	if binPath, err = subproc.Build(repoRoot, bin); err != nil {
		fmt.Fprintf(os.Stderr, "drills: %v\n", err)
		return 1
	}
	code := m.Run()
	writeTable()
	return code
}

// baseEnv is the environment every drill subprocess starts from, built
// from scratch: the caller's PATH, HOME and temporary folder, and nothing
// else. An exported CHATWARDEN_* variable (a relative
// CHATWARDEN_PSEUDONYM_KEY_FILE, a log level, another database) or a
// JAVA/KAFKA setting of the caller must not change what a drill's
// subprocess does.
func baseEnv() []string { return subproc.Env() }

// stackCmd runs scripts/stack.sh SUB on the drill stack.
func stackCmd(sub string) error {
	cmd := exec.Command("bash", filepath.Join(repoRoot, "scripts/stack.sh"), sub)
	cmd.Env = append(baseEnv(),
		"CHATWARDEN_STACK_DIR="+stackDir,
		"CHATWARDEN_KAFKA_PORT="+kafkaPort,
		"CHATWARDEN_KAFKA_CONTROLLER_PORT="+kafkaCtrlPort,
		"CHATWARDEN_CH_PORT="+chPort,
		"CHATWARDEN_CH_HTTP_PORT="+chHTTPPort,
		// Parts merged away are deleted after 15 s instead of 8 minutes:
		// under serve's small batches (linger 50 ms) every merge rewrites
		// the day's part, and the 8 minutes of superseded copies filled
		// the 768 MB tmpfs within one drill (the 3b failure of issue 10
		// item 13).
		"CHATWARDEN_CH_OLD_PARTS_LIFETIME=15",
		"CHATWARDEN_KAFKA_HEAP_OPTS=-Xms256m -Xmx512m",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("stack.sh %s: %w\n%s", sub, err, out)
	}
	return nil
}

// chDataDir is the drill ClickHouse's data folder (a tmpfs).
func chDataDir() string { return filepath.Join(stackDir, "clickhouse", "data") }

func setUpStack() error {
	if err := os.MkdirAll(filepath.Join(stackDir, "kafka"), 0o755); err != nil {
		return err
	}
	// Share the Kafka jars of the main stack instead of fetching them again.
	libs := filepath.Join(stackDir, "kafka", "libs")
	shared := filepath.Join(repoRoot, ".stack", "kafka", "libs")
	if _, err := os.Lstat(libs); os.IsNotExist(err) {
		if _, err := os.Stat(shared); err == nil {
			if err := os.Symlink(shared, libs); err != nil {
				return err
			}
		}
	}
	// ClickHouse's data on a tmpfs of its own (the disk-full drill fills it),
	// fresh for every run: a run that was killed (a test binary timeout
	// skips the tear-down) may have left its servers, a filler file, a
	// read-only bind mount or its databases behind.
	if err := os.MkdirAll(chDataDir(), 0o755); err != nil {
		return err
	}
	if exec.Command("mountpoint", "-q", chDataDir()).Run() == nil {
		fmt.Fprintln(os.Stderr, "drills: a drill tmpfs is still mounted (an earlier run was killed); stopping its servers and starting from an empty one")
		for _, sub := range []string{"kafka-stop", "ch-stop"} {
			if err := stackCmd(sub); err != nil {
				fmt.Fprintln(os.Stderr, "drills:", err)
			}
		}
		// Inner bind mounts first (the read-only drill), then the tmpfs.
		for exec.Command("umount", "-R", chDataDir()).Run() == nil && exec.Command("mountpoint", "-q", chDataDir()).Run() == nil {
		}
		if exec.Command("mountpoint", "-q", chDataDir()).Run() == nil {
			return fmt.Errorf("cannot unmount the old drill tmpfs %s", chDataDir())
		}
		if err := os.RemoveAll(chDataDir()); err != nil {
			return err
		}
		if err := os.MkdirAll(chDataDir(), 0o755); err != nil {
			return err
		}
	}
	if exec.Command("mountpoint", "-q", chDataDir()).Run() != nil {
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+chDataSize, "tmpfs", chDataDir()).CombinedOutput(); err != nil {
			return fmt.Errorf("mounting a tmpfs for ClickHouse's data (the drills run as root): %w: %s", err, out)
		}
	}
	if err := stackCmd("kafka-start"); err != nil {
		return err
	}
	return stackCmd("ch-start")
}

func tearDownStack() {
	for _, sub := range []string{"kafka-stop", "ch-stop"} {
		if err := stackCmd(sub); err != nil {
			fmt.Fprintln(os.Stderr, "drills:", err)
		}
	}
	if out, err := exec.Command("umount", chDataDir()).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "drills: umount %s: %v %s\n", chDataDir(), err, out)
	}
}

// writeTable prints the figures and writes them to stackDir/drills.md.
func writeTable() {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return
	}
	var b strings.Builder
	b.WriteString("| drill | injected | produced | stored | dead letters | duplicates visible | alerts lost | Slack double posts | recovery | outcome |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %d | %.1f s | %s |\n", r.Drill, r.Injected, r.Produced,
			r.Stored, r.DeadLetters, r.Duplicates, r.AlertsLost, r.SlackDouble, r.Recovery.Seconds(), r.Outcome)
	}
	fmt.Print("\n" + b.String())
	file := filepath.Join(stackDir, "drills.md")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "drills:", err)
		return
	}
	fmt.Println("drills: table written to", file)
}

// --- one drill's topics, group, database and configuration

type drill struct {
	id      string
	icfg    ingest.Config
	st      *store.Store
	cfgFile string
	env     []string
	slack   *fakeSlack // nil unless the drill has Slack

	peakMu sync.Mutex
	peak   uint64 // the most of the ClickHouse tmpfs used during the drill, bytes
}

// sampleDisk records the peak use of the drill ClickHouse tmpfs every
// second until ctx ends.
func (d *drill) sampleDisk(ctx context.Context) {
	for {
		var st syscall.Statfs_t
		if syscall.Statfs(chDataDir(), &st) == nil {
			used := (st.Blocks - st.Bfree) * uint64(st.Bsize)
			d.peakMu.Lock()
			d.peak = max(d.peak, used)
			d.peakMu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// peakMB is the peak tmpfs use so far, in MB.
func (d *drill) peakMB() uint64 {
	d.peakMu.Lock()
	defer d.peakMu.Unlock()
	return d.peak >> 20
}

type drillOptions struct {
	slack          bool
	sessionTimeout time.Duration
	// backlogBatchSize is ingest.backlog_batch_size (0: the default,
	// 100,000).
	backlogBatchSize int
}

func newDrill(t *testing.T, o drillOptions) *drill {
	t.Helper()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	d := &drill{id: id}
	d.icfg = ingest.Config{
		Brokers:         []string{"127.0.0.1:" + kafkaPort},
		AccessTopic:     "drill-" + id + "-access",
		ConsentTopic:    "drill-" + id + "-consent",
		DeadLetterTopic: "drill-" + id + "-deadletter",
		Group:           "drill-" + id,
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := ingest.CreateTopics(ctx, d.icfg, ingest.TopicSpec{Name: d.icfg.AccessTopic, Partitions: 4},
		ingest.TopicSpec{Name: d.icfg.ConsentTopic, Partitions: 2}, ingest.TopicSpec{Name: d.icfg.DeadLetterTopic, Partitions: 2}); err != nil {
		t.Fatalf("creating the drill's topics on 127.0.0.1:%s: %v", kafkaPort, err)
	}
	t.Cleanup(func() {
		// Registered before the database (cleanups run last first): the
		// database is dropped, then the topics, then the disk checked.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := ingest.DeleteTopics(ctx, d.icfg, d.icfg.AccessTopic, d.icfg.ConsentTopic, d.icfg.DeadLetterTopic); err != nil {
			t.Logf("deleting the drill's topics: %v", err)
		}
		t.Logf("drill ClickHouse tmpfs after clean-up: %s", tmpfsUsage())
	})
	d.st = storetest.New(t)
	sctx, stopSampling := context.WithCancel(context.Background())
	t.Cleanup(stopSampling)
	go d.sampleDisk(sctx)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	st := o.sessionTimeout
	if st == 0 {
		st = 6 * time.Second
	}
	yaml := fmt.Sprintf(`ingest:
  access_topic: %s
  consent_topic: %s
  dead_letter_topic: %s
  group: %s
  batch_size: 2000
  linger: 50ms
  session_timeout: %s
  max_backoff: 2s
`, d.icfg.AccessTopic, d.icfg.ConsentTopic, d.icfg.DeadLetterTopic, d.icfg.Group, st)
	if o.backlogBatchSize > 0 {
		yaml += fmt.Sprintf("  backlog_batch_size: %d\n", o.backlogBatchSize)
	}
	if o.slack {
		d.slack = newFakeSlack(t)
		yaml += fmt.Sprintf(`alert:
  default_channel: C0DRILL
  slack:
    token: xoxb-drill
    api_url: %s
    timeout: 5s
`, d.slack.URL())
	}
	d.cfgFile = filepath.Join(t.TempDir(), "chatwarden.yaml")
	if err := os.WriteFile(d.cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	d.env = append(baseEnv(),
		"CHATWARDEN_KAFKA_BROKERS=127.0.0.1:"+kafkaPort,
		"CHATWARDEN_CLICKHOUSE_ADDR=127.0.0.1:"+chPort,
		"CHATWARDEN_CLICKHOUSE_DATABASE="+d.st.Database(),
		"CHATWARDEN_PSEUDONYM_KEY="+hex.EncodeToString(key))
	return d
}

// tmpfsUsage is the drill ClickHouse tmpfs's use, as df says it.
func tmpfsUsage() string {
	out, err := exec.Command("df", "-h", "--output=used,size,pcent", chDataDir()).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("df: %v %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(strings.Fields(lines[len(lines)-1]), " ")
}

// --- the workload

// malformed are the rejected messages every drill sends, one per reason.
var malformed = []struct {
	reason string
	line   func(id string, now time.Time) string
}{
	{"bad_json", func(id string, _ time.Time) string { return `{"event_id":"` + id + `","ts":` }},
	{"missing_field", func(id string, now time.Time) string {
		return fmt.Sprintf(`{"event_id":%q,"ts":%q,"actor":{"type":"human"},"action":"read","store":"crm","resource":{"type":"customer_profile"}}`, id, now.Format(time.RFC3339))
	}},
	{"bad_enum", func(id string, now time.Time) string {
		return fmt.Sprintf(`{"event_id":%q,"ts":%q,"actor":{"id":"a1","type":"human"},"action":"steal","store":"crm","resource":{"type":"customer_profile"}}`, id, now.Format(time.RFC3339))
	}},
	{"ts_future", func(id string, now time.Time) string {
		return fmt.Sprintf(`{"event_id":%q,"ts":%q,"actor":{"id":"a1","type":"human"},"action":"read","store":"crm","resource":{"type":"customer_profile"}}`, id, now.Add(72*time.Hour).Format(time.RFC3339))
	}},
	{"bad_type", func(id string, now time.Time) string {
		return fmt.Sprintf(`{"event_id":%q,"ts":%q,"actor":{"id":"a1","type":"human"},"action":"read","store":"crm","resource":{"type":"customer_profile"},"records":"many"}`, id, now.Format(time.RFC3339))
	}},
}

// workload is what a drill produces and expects back.
type workload struct {
	valid    int            // valid events (including the alert-raising ones)
	dead     map[string]int // malformed messages by reason
	exporter []string       // actors of bulk exports that must raise an alert each
	produced int
}

func newWorkload() *workload { return &workload{dead: map[string]int{}} }

// lines appends n valid events (prefix-0..n-1), a malformed message every
// badEvery valid ones (0: none), and one bulk export by each of exporters
// new actors spread through the lines.
func (w *workload) lines(prefix string, n, badEvery, exporters int) []byte {
	var buf bytes.Buffer
	now := time.Now().UTC()
	every := 0
	if exporters > 0 {
		every = max(1, n/exporters)
	}
	for i := range n {
		fmt.Fprintf(&buf, `{"event_id":"%s-%d","ts":%q,"actor":{"id":"agent-%d","type":"human","role":"agent"},"action":"read","store":"crm","resource":{"type":"customer_profile","id":"r-%d"},"subject_id":"c-%d","fields":["email"],"purpose":"support"}`+"\n",
			prefix, i, now.Add(-time.Duration(i%3600)*time.Second).Format(time.RFC3339), i%97, i, i%5000)
		w.valid++
		if badEvery > 0 && i%badEvery == badEvery-1 {
			k := (i / badEvery) % len(malformed)
			buf.WriteString(malformed[k].line(fmt.Sprintf("%s-bad-%d", prefix, i), now) + "\n")
			w.dead[malformed[k].reason]++
		}
		if every > 0 && i%every == every/2 && len(w.exporter) < exporters {
			actor := fmt.Sprintf("exporter%d-%s", len(w.exporter), prefix)
			fmt.Fprintf(&buf, `{"event_id":"%s-export-%d","ts":%q,"actor":{"id":%q,"type":"human","role":"agent"},"action":"export","store":"crm","resource":{"type":"customer_profile"},"records":50000,"fields":["email","phone"],"purpose":"support"}`+"\n",
				prefix, i, now.Format(time.RFC3339), actor)
			w.exporter = append(w.exporter, actor)
			w.valid++
		}
	}
	return buf.Bytes()
}

func (w *workload) deadTotal() int {
	n := 0
	for _, c := range w.dead {
		n += c
	}
	return n
}

// produce sends lines at rate messages per second (0: at once), retrying
// through broker outages until ctx ends (kafka-go's writer retries a
// batch; a batch it gives up on is sent again, and ingest drops the
// repeated ids).
func (d *drill) produce(ctx context.Context, data []byte, rate int) (int, error) {
	p, err := ingest.NewProducer(d.icfg, "")
	if err != nil {
		return 0, err
	}
	defer p.Close()
	st, err := p.ProduceJSONL(ctx, bytes.NewReader(data), rate, nil)
	return st.Lines, err
}

// produceAll produces the workload's lines, failing the test on error.
func (d *drill) produceAll(t *testing.T, w *workload, data []byte, rate int) {
	t.Helper()
	n, err := d.produce(t.Context(), data, rate)
	if err != nil {
		t.Fatalf("producing: %v", err)
	}
	w.produced += n
}

// --- the chatwarden process

// proc is a running `chatwarden ingest` or `chatwarden serve`.
type proc struct {
	*subproc.Proc
	metrics string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs `chatwarden <command>` (ingest or serve) with the drill's
// config and environment.
func (d *drill) start(t *testing.T, command string) *proc {
	t.Helper()
	addr := freeAddr(t)
	args := []string{command, "-config", d.cfgFile}
	if command == "serve" {
		args = append(args, "-addr", addr)
	} else {
		args = append(args, "-metrics-addr", addr)
	}
	p := &proc{Proc: subproc.Start(t, command, binPath, d.env, args...), metrics: addr}
	t.Cleanup(func() {
		tail := p.Tail(60)
		if t.Failed() {
			d.clickhouseState(t)
		}
		if !p.Exited() && t.Failed() {
			// A stall's evidence: every goroutine's stack (the Go runtime
			// prints them to stderr on SIGQUIT and exits).
			_ = p.Cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-p.Done():
			case <-time.After(15 * time.Second):
			}
		}
		// subproc.Start's own cleanup, after this one, kills the process
		// if it still runs.
		if t.Failed() {
			t.Logf("%s pid %d stderr before the stacks (last 60 lines):\n%s", p.Name, p.Cmd.Process.Pid, tail)
			file := filepath.Join(stackDir, fmt.Sprintf("%s-%s-%d.log", strings.NewReplacer("/", "_").Replace(t.Name()), p.Name, p.Cmd.Process.Pid))
			if err := os.WriteFile(file, []byte(p.Log()), 0o644); err == nil {
				t.Logf("%s's whole stderr (with its goroutines' stacks if it was still running): %s", p.Name, file)
			}
		}
	})
	return p
}

// clickhouseState logs what the drill ClickHouse is doing (a failed
// drill's evidence, taken before its process is stopped).
func (d *drill) clickhouseState(t *testing.T) {
	for _, q := range []string{
		"SELECT elapsed, query_id, substring(query, 1, 300) FROM system.processes WHERE query NOT LIKE '%system.processes%' FORMAT TSV",
		"SELECT database, table, elapsed, progress FROM system.merges FORMAT TSV",
		"SELECT table, count(), sum(rows) FROM system.parts WHERE active AND database = currentDatabase() GROUP BY table FORMAT TSV",
	} {
		cmd := exec.Command("clickhouse-client", "--host", "127.0.0.1", "--port", chPort, "--database", d.st.Database(), "-q", q)
		cmd.Env = baseEnv()
		out, err := cmd.CombinedOutput()
		t.Logf("ClickHouse at the failure: %s\n%s%v", q, out, err)
	}
}

// lastLine is the last stderr line (the error a failed command prints).
func (p *proc) lastLine() string { return p.Tail(1) }

// stop sends sig and waits up to 45 s for the process to exit.
func (p *proc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	return p.Stop(t, sig, 45*time.Second)
}

// metric returns the sum of a metric's samples on the process's /metrics
// (-1 if unreadable).
func (p *proc) metric(name string) float64 {
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum, found = sum+f, true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// healthz returns the status and body of the process's /healthz (0 if
// unreachable).
func (p *proc) healthz() (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.metrics + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor is subproc.WaitFor (polls every 100 ms).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	subproc.WaitFor(t, timeout, what, cond)
}

// --- measuring

func (d *drill) summary(t *testing.T) (store.Summary, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := d.st.Summary(ctx)
	return s, err == nil
}

func (d *drill) stored(t *testing.T) uint64 {
	s, _ := d.summary(t)
	return s.DistinctIDs
}

// lag is the group's lag on the access topic (-1 if unknown).
func (d *drill) lag(t *testing.T) int64 {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ls, err := ingest.GroupLag(ctx, d.icfg, d.icfg.Group, d.icfg.AccessTopic)
	if err != nil || len(ls) == 0 {
		return -1
	}
	var lag int64
	for _, l := range ls {
		if l.Lag < 0 {
			return -1
		}
		lag += l.Lag
	}
	return lag
}

// caughtUp waits until every valid event and dead letter of w is stored and
// the group's offsets are committed to the end; it returns when that was.
func (d *drill) caughtUp(t *testing.T, w *workload, timeout time.Duration) time.Time {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%d events and %d dead letters stored and committed", w.valid, w.deadTotal()), func() bool {
		s, ok := d.summary(t)
		if !ok || s.DistinctIDs < uint64(w.valid) {
			return false
		}
		var dl uint64
		for _, n := range s.DeadLetters {
			dl += n
		}
		return dl >= uint64(w.deadTotal()) && d.lag(t) == 0
	})
	return time.Now()
}

// verify checks the invariants every drill ends with and fills r's counts:
// every valid event stored exactly once, every malformed message
// dead-lettered with its reason (the dead_letters table and the dead-letter
// topic), and, when the drill has Slack, one alert per bulk exporter posted
// exactly once.
func (d *drill) verify(t *testing.T, w *workload, r *result) {
	t.Helper()
	s, ok := d.summary(t)
	if !ok {
		t.Fatal("reading the summary failed")
	}
	r.Produced = w.produced
	r.Stored = s.DistinctIDs
	r.Duplicates = s.Events - s.DistinctIDs
	if s.DistinctIDs != uint64(w.valid) || s.Events != uint64(w.valid) {
		t.Errorf("stored %d rows with %d distinct event ids, want %d of each (lost %d, duplicated %d)",
			s.Events, s.DistinctIDs, w.valid, int64(w.valid)-int64(s.DistinctIDs), r.Duplicates)
	}
	counts, err := d.st.DeadLetterCounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for reason, n := range counts {
		r.DeadLetters += n
		if int(n) != w.dead[reason] {
			t.Errorf("dead_letters holds %d with reason %s, want %d", n, reason, w.dead[reason])
		}
	}
	for reason, n := range w.dead {
		if _, ok := counts[reason]; !ok {
			t.Errorf("none of the %d %s messages is in dead_letters", n, reason)
		}
	}
	topic := d.deadLetterTopic(t)
	if len(topic.offsets) != w.deadTotal() {
		t.Errorf("dead-letter topic holds %d distinct source messages, want %d", len(topic.offsets), w.deadTotal())
	}
	for reason, n := range w.dead {
		if topic.reasons[reason] != n {
			t.Errorf("dead-letter topic holds %d distinct %s messages, want %d", topic.reasons[reason], reason, n)
		}
	}
	if topic.repeats > 0 {
		// At-least-once: a message dead-lettered before a crash and again
		// after it. Counted in the notes, not a failure.
		r.Outcome += fmt.Sprintf("; %d dead letters re-sent to the topic", topic.repeats)
	}
	if len(w.exporter) > 0 {
		d.verifyAlerts(t, w, r)
	}
	r.Outcome += fmt.Sprintf("; ClickHouse tmpfs peak %d MB", d.peakMB())
}

// dlq is what the dead-letter topic holds.
type dlq struct {
	offsets map[string]bool // source partition/offset
	reasons map[string]int  // distinct source messages per reason
	repeats int             // messages beyond the first per source offset
}

func (d *drill) deadLetterTopic(t *testing.T) dlq {
	t.Helper()
	out := dlq{offsets: map[string]bool{}, reasons: map[string]int{}}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for part := range 2 {
		conn, err := kafka.DialLeader(ctx, "tcp", "127.0.0.1:"+kafkaPort, d.icfg.DeadLetterTopic, part)
		if err != nil {
			t.Fatalf("reading the dead-letter topic: %v", err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{"127.0.0.1:" + kafkaPort}, Topic: d.icfg.DeadLetterTopic, Partition: part, MaxWait: 1500 * time.Millisecond}) // the broker waits 500 ms; the round trip may take 1 s (ingest.fetchRoundTrip)
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("reading the dead-letter topic: %v", err)
			}
			h := map[string]string{}
			for _, x := range m.Headers {
				h[x.Key] = string(x.Value)
			}
			key := h["source_partition"] + "/" + h["source_offset"]
			if out.offsets[key] {
				out.repeats++
			} else {
				out.offsets[key] = true
				out.reasons[h["reason"]]++
			}
			if m.Offset >= last-1 {
				break
			}
		}
		r.Close()
	}
	return out
}

// verifyAlerts checks that each exporter has an alert in ClickHouse and one
// Slack post (its group's message), counting what is lost or doubled.
func (d *drill) verifyAlerts(t *testing.T, w *workload, r *result) {
	t.Helper()
	rows, err := d.st.RecentAlerts(t.Context(), time.Now().Add(-24*time.Hour), time.Now().Add(time.Hour), 10000)
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]int{}
	for _, a := range rows {
		has[a.Alert.ActorID]++
	}
	for _, actor := range w.exporter {
		if has[actor] == 0 {
			r.AlertsLost++
			t.Errorf("no alert for the bulk export by %s", actor)
		}
	}
	if d.slack == nil {
		return
	}
	posts := d.slack.postsByMessage()
	for id, n := range posts {
		if n > 1 {
			r.SlackDouble += n - 1
			t.Errorf("Slack message %s posted %d times", id, n)
		}
	}
	byActor := d.slack.postsMentioning(w.exporter)
	for _, actor := range w.exporter {
		switch n := byActor[actor]; {
		case n == 0:
			if has[actor] > 0 {
				r.AlertsLost++
			}
			t.Errorf("no Slack message for the alert on %s", actor)
		case n > 1:
			t.Errorf("%d Slack posts for the alert on %s", n, actor)
		}
	}
}

// reasons lists w's dead-letter reasons, for logs.
func (w *workload) reasons() string {
	var ks []string
	for k, n := range w.dead {
		ks = append(ks, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}

var _ = io.EOF
