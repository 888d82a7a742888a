package bench

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/internal/progress"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// Ingest measures ingest end to end on the local stack: it produces
// a simulated events file to fresh topics, times a `chatwarden ingest`
// process consuming all of it into a fresh database, then times ClickHouse's
// own Kafka engine on the same topic and, when that cannot run,
// clickhouse-client loading the same events as JSONEachRow from a file.
// The last line it prints is the summary the Makefile target promises.
//
// The legs are timed in rounds (-rounds, default 2), the order alternating
// (round 1 ingest then engine, round 2 engine then ingest, ...) so that the
// order does not decide the ratio; before each leg the previous leg's
// database is dropped and the bench waits until the server runs no merge
// and no mutation (settle), so that no leg pays for another's parts.
func Ingest(ctx context.Context, e *Env, args []string) error {
	fs := e.flags("ingest")
	n := fs.Int("events", 1_000_000, "simulated events to generate (ignored with -file)")
	file := fs.String("file", "", "events JSONL file (default: generate .bench/events-N.jsonl with chatwarden simulate)")
	engineWait := fs.Duration("engine-timeout", 60*time.Second, "how long the Kafka engine may go without progress")
	keep := fs.Bool("keep", false, "keep the bench databases and topics")
	batchSize := fs.Int("batch-size", 0, "ingest.batch_size for the run (default: the configured one)")
	backlogBatch := fs.Int("backlog-batch-size", 0, "ingest.backlog_batch_size for the run (default: the configured one)")
	ingestOnly := fs.Bool("ingest-only", false, "measure chatwarden ingest only (no Kafka engine, no JSONEachRow baseline)")
	cpuProfile := fs.String("cpuprofile", "", "write the chatwarden ingest process's Go CPU profile to this file (the first ingest leg's)")
	instances := fs.Int("instances", 1, "chatwarden ingest processes, in one consumer group")
	addr := fs.String("addr", "", "ClickHouse native address (default: CHATWARDEN_CLICKHOUSE_ADDR)")
	cluster := fs.String("cluster", "", "clickhouse.cluster of the run: migrate and ingest on that cluster (needs -ingest-only)")
	queryLog := fs.Bool("query-log", false, "log chatwarden ingest's queries (clickhouse.log_queries) and print ClickHouse's CPU per kind of query from system.query_log, and the server's merges meanwhile")
	rounds := fs.Int("rounds", 2, "rounds of the ingest and Kafka engine legs, the order alternating (round 1 ingest first, round 2 the engine first, ...)")
	settle := fs.Duration("settle-timeout", 3*time.Minute, "before each leg, how long to wait for the server's merges and mutations to finish (then the leg starts anyway, saying so)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *instances < 1 {
		return fmt.Errorf("-instances must be at least 1, got %d", *instances)
	}
	if *rounds < 1 {
		return fmt.Errorf("-rounds must be at least 1, got %d", *rounds)
	}
	if *cluster != "" && !*ingestOnly {
		return fmt.Errorf("-cluster needs -ingest-only (the Kafka engine and JSONEachRow baselines run on one server)")
	}
	c := settingsFromEnv()
	if *addr != "" {
		c.ClickHouse.Addr = *addr
	}
	c.ClickHouse.Cluster = *cluster
	c.ClickHouse.LogQueries = *queryLog
	b := &bench{e: e, self: e.Chatwarden, cfg: c, id: strconv.FormatInt(time.Now().Unix(), 36), instances: *instances,
		settleTimeout: *settle, keep: *keep}

	// 1. The events.
	if *file == "" {
		*file = filepath.Join(".bench", fmt.Sprintf("events-%d.jsonl", *n))
		if _, err := os.Stat(*file); err != nil {
			if err := os.MkdirAll(filepath.Dir(*file), 0o755); err != nil {
				return err
			}
			b.say("generating %d simulated events into %s", *n, *file)
			if err := b.self_(ctx, nil, "simulate", "-out-events", *file+".tmp", "-events", strconv.Itoa(*n)); err != nil {
				return err
			}
			if err := os.Rename(*file+".tmp", *file); err != nil {
				return err
			}
		}
	}
	lines, err := countLines(*file)
	if err != nil {
		return err
	}

	// 2. Fresh topics.
	ic := c.Ingest.WithDefaults()
	ic.AccessTopic = "bench-" + b.id + "-access"
	ic.ConsentTopic = "bench-" + b.id + "-consent"
	ic.DeadLetterTopic = "bench-" + b.id + "-deadletter"
	ic.Group = "bench-" + b.id
	if *batchSize > 0 {
		ic.BatchSize = *batchSize
	}
	if *backlogBatch > 0 {
		ic.BacklogBatchSize = *backlogBatch
	} else {
		ic.BacklogBatchSize = 0 // the process's default for its batch_size
	}
	b.cfg.Ingest = ic
	if err := ingest.CreateTopics(ctx, ic, ingest.TopicSpec{Name: ic.AccessTopic, Partitions: 4},
		ingest.TopicSpec{Name: ic.ConsentTopic, Partitions: 2}, ingest.TopicSpec{Name: ic.DeadLetterTopic, Partitions: 2}); err != nil {
		return err
	}
	defer func() {
		if !b.keep {
			b.deleteTopics()
		}
	}()
	dir, err := os.MkdirTemp("", "chatwarden-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b.dir = dir

	// 3. Produce.
	f, err := os.Open(*file)
	if err != nil {
		return err
	}
	p, err := ingest.NewProducer(ic, "")
	if err != nil {
		f.Close()
		return err
	}
	start := time.Now()
	ps, err := p.ProduceJSONL(ctx, f, 0, nil)
	f.Close()
	p.Close()
	if err != nil {
		return err
	}
	b.say("produced %d messages (%d access, %d consent) in %s: %.0f msg/s",
		ps.Access+ps.Consents, ps.Access, ps.Consents, time.Since(start).Round(time.Millisecond), float64(ps.Access+ps.Consents)/time.Since(start).Seconds())

	// 4. chatwarden ingest alone.
	if *ingestOnly {
		db := "bench_" + b.id + "_ingest"
		ingestEPS, rssMB, err := b.ingestLeg(ctx, db, "", lines, ps.Access, *cpuProfile)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "ingest_eps=%.0f rss_mb=%.0f instances=%d\n", ingestEPS, rssMB, b.instances)
		return nil
	}

	// 5. The same events flattened to the events table's columns (outside
	// any timing), for ClickHouse's own loaders.
	flat := *file + ".flat.jsonl"
	nFlat, err := flatten(*file, flat)
	if err != nil {
		return err
	}
	defer os.Remove(flat)
	// 6. clickhouse-client loading them as JSONEachRow: the storage leg's
	// own limit, printed for reference, and what every table of the Kafka
	// engine's legs must hold at their end.
	dbBase := "bench_" + b.id + "_jsoneachrow"
	baseEPS, want, err := b.jsonEachRowLeg(ctx, dbBase, flat, nFlat)
	if err != nil {
		return err
	}
	b.say("clickhouse-client JSONEachRow from a file: %.0f events/s", baseEPS)
	// The Kafka engine's topic, produced once for every round.
	if err := b.produceFlat(ctx, flat); err != nil {
		return err
	}

	// 7. The rounds: chatwarden ingest and ClickHouse's Kafka engine,
	// the order alternating.
	rs, err := b.rounds(ctx, *rounds, roundLegs{lines: lines, access: ps.Access, flat: nFlat, want: want, cpuProfile: *cpuProfile, engineWait: *engineWait})
	if err != nil {
		return err
	}
	ingestSec, engineSec, rssMB, ratios, engineErr := rs.ingestSec, rs.engineSec, rs.rssMB, rs.ratios, rs.engineErr
	ingestEPS := float64(lines) * float64(*rounds) / ingestSec
	if engineErr == nil {
		engineEPS := float64(nFlat) * float64(*rounds) / engineSec
		fmt.Fprintf(e.Stdout, "ingest_eps=%.0f kafka_engine_eps=%.0f ratio=%.2f rss_mb=%.0f round_ratios=%s\n",
			ingestEPS, engineEPS, ingestEPS/engineEPS, rssMB, strings.Join(ratios, ","))
		return nil
	}
	b.say("ClickHouse Kafka engine leg failed: %v", engineErr)
	b.say("baseline instead: clickhouse-client loading the same events as JSONEachRow from a file")
	fmt.Fprintf(e.Stdout, "ingest_eps=%.0f jsoneachrow_eps=%.0f ratio=%.2f rss_mb=%.0f\n", ingestEPS, baseEPS, ingestEPS/baseEPS, rssMB)
	return nil
}

// roundLegs is what each round's legs work on.
type roundLegs struct {
	lines, access, flat int // messages, access events, flat rows
	want                engineWant
	cpuProfile          string
	engineWait          time.Duration
}

// roundTotals sums the rounds: each leg's seconds, ingest's largest peak
// RSS, each round's ratio, and the Kafka engine's error (no more engine
// legs after one failed).
type roundTotals struct {
	ingestSec, engineSec, rssMB float64
	ratios                      []string
	engineErr                   error
}

// rounds times n rounds of the chatwarden ingest and Kafka engine legs,
// ingest first in odd rounds, the engine first in even ones.
func (b *bench) rounds(ctx context.Context, n int, l roundLegs) (roundTotals, error) {
	var t roundTotals
	for r := 1; r <= n; r++ {
		var ingestEPS, engineEPS float64
		runIngest := func() error {
			prof := ""
			if r == 1 {
				prof = l.cpuProfile
			}
			eps, rss, err := b.ingestLeg(ctx, fmt.Sprintf("bench_%s_ingest_r%d", b.id, r), fmt.Sprintf("-r%d", r), l.lines, l.access, prof)
			ingestEPS, t.rssMB = eps, max(t.rssMB, rss)
			return err
		}
		runEngine := func() error {
			if t.engineErr == nil {
				engineEPS, t.engineErr = b.engineLeg(ctx, fmt.Sprintf("bench_%s_kafka_engine_r%d", b.id, r), fmt.Sprintf("-r%d", r), l.want, l.flat, l.engineWait)
			}
			return nil
		}
		legs := []func() error{runIngest, runEngine}
		first := "chatwarden ingest"
		if r%2 == 0 {
			legs[0], legs[1], first = legs[1], legs[0], "the Kafka engine"
		}
		b.say("round %d of %d: %s first", r, n, first)
		for _, leg := range legs {
			if err := leg(); err != nil {
				return t, err
			}
		}
		t.ingestSec += float64(l.lines) / ingestEPS
		if t.engineErr == nil {
			t.engineSec += float64(l.flat) / engineEPS
			t.ratios = append(t.ratios, fmt.Sprintf("%.2f", ingestEPS/engineEPS))
			b.say("round %d: ingest_eps=%.0f kafka_engine_eps=%.0f ratio=%.2f", r, ingestEPS, engineEPS, ingestEPS/engineEPS)
		}
	}
	return t, nil
}

// ingestLeg migrates db, waits for the server to settle, times chatwarden
// ingest consuming the bench's topics into db as consumer group
// <group><suffix>, checks what it stored, and drops db (unless -keep).
func (b *bench) ingestLeg(ctx context.Context, db, suffix string, lines, access int, cpuProfile string) (eps, rssMB float64, err error) {
	saved := b.cfg.Ingest
	b.cfg.Ingest.Group += suffix
	defer func() { b.cfg.Ingest = saved }()
	cfgFile, err := b.writeConfig(b.dir)
	if err != nil {
		return 0, 0, err
	}
	if err := b.migrate(ctx, db, cfgFile); err != nil {
		return 0, 0, err
	}
	if !b.keep {
		defer b.dropDatabase(db)
	}
	b.settle(ctx, "chatwarden ingest into "+db)
	eps, rssMB, err = b.timeIngest(ctx, db, cfgFile, lines, cpuProfile)
	if err != nil {
		return 0, 0, err
	}
	if err := b.checkStored(ctx, db, access); err != nil {
		return 0, 0, err
	}
	if b.cfg.ClickHouse.LogQueries && b.cfg.ClickHouse.Cluster == "" {
		b.partsSummary(ctx, db)
	}
	if b.cfg.ClickHouse.Cluster != "" {
		if err := b.clusterParts(ctx, db, access); err != nil {
			return 0, 0, err
		}
	}
	return eps, rssMB, nil
}

// migrate creates db with chatwarden migrate.
func (b *bench) migrate(ctx context.Context, db, cfgFile string) error {
	return b.self_(ctx, []string{"CHATWARDEN_CLICKHOUSE_DATABASE=" + db}, "migrate", "-config", cfgFile)
}

// jsonEachRowLeg migrates db, waits for the server to settle, times
// clickhouse-client inserting the flat events, and returns events per
// second and what each table of the Kafka engine's legs must hold at the
// end (the same rows, inserted into events); it drops db (unless -keep).
func (b *bench) jsonEachRowLeg(ctx context.Context, db, flat string, n int) (float64, engineWant, error) {
	cfgFile, err := b.writeConfig(b.dir)
	if err != nil {
		return 0, engineWant{}, err
	}
	if err := b.migrate(ctx, db, cfgFile); err != nil {
		return 0, engineWant{}, err
	}
	if !b.keep {
		defer b.dropDatabase(db)
	}
	b.settle(ctx, "clickhouse-client JSONEachRow into "+db)
	eps, err := b.jsonEachRow(ctx, db, flat, n)
	if err != nil {
		return 0, engineWant{}, err
	}
	views, err := b.engineViews(ctx, db)
	if err != nil {
		return 0, engineWant{}, err
	}
	w := engineWant{tables: append([]string{"events"}, engineTargets(views)...)}
	sums, err := b.tableSums(ctx, db, w.tables)
	if err != nil {
		return 0, engineWant{}, err
	}
	if w.sums, err = sums(); err != nil {
		return 0, engineWant{}, err
	}
	if b.cfg.ClickHouse.LogQueries {
		b.partsSummary(ctx, db)
	}
	return eps, w, nil
}

// engineWant is what every table of a Kafka engine leg's database must
// hold at its end: per table, its rows or aggregated event count
// (tableSums).
type engineWant struct {
	tables []string
	sums   []int
}

// engineLeg migrates db, times the Kafka engine into it (kafkaEngine) as
// consumer group <flat group><suffix>, and drops db (unless -keep).
func (b *bench) engineLeg(ctx context.Context, db, suffix string, want engineWant, n int, wait time.Duration) (float64, error) {
	cfgFile, err := b.writeConfig(b.dir)
	if err != nil {
		return 0, err
	}
	if err := b.migrate(ctx, db, cfgFile); err != nil {
		return 0, err
	}
	if !b.keep {
		defer b.dropDatabase(db)
	}
	eps, err := b.kafkaEngine(ctx, db, "bench-"+b.id+"-kafka-engine"+suffix, want, n, wait)
	if err == nil && b.cfg.ClickHouse.LogQueries {
		b.partsSummary(ctx, db)
	}
	return eps, err
}

// settle waits until the server runs no merge and no mutation, for at
// most the bench's settle timeout, and says what it waited for: a leg
// must not pay for the merges of another leg's (or an earlier run's)
// parts. Other users' merges on a shared server count too; when they do
// not stop, the leg starts anyway at the timeout, and the bench says so.
func (b *bench) settle(ctx context.Context, before string) {
	start := time.Now()
	seen := map[string]bool{}
	var last string
	for {
		out, err := b.clickhouse(ctx, "system", `SELECT concat(database, '.', table, ' (merge)') FROM system.merges
UNION ALL SELECT concat(database, '.', table, ' (mutation ', mutation_id, ')') FROM system.mutations WHERE is_done = 0`, nil)
		if err != nil {
			b.say("settling before %s: %v", before, err)
			return
		}
		if out == "" {
			break
		}
		last = out
		for _, l := range strings.Split(out, "\n") {
			seen[l] = true
		}
		if time.Since(start) > b.settleTimeout {
			b.say("settling before %s: still running after %s, starting anyway: %s", before, b.settleTimeout, strings.ReplaceAll(last, "\n", ", "))
			return
		}
		if !sleepCtx(ctx, 500*time.Millisecond) {
			return
		}
	}
	if len(seen) == 0 {
		b.say("settled before %s: no merge or mutation running (%s)", before, loadAvg())
		return
	}
	names := slices.Sorted(maps.Keys(seen))
	if len(names) > 6 {
		names = append(names[:6], fmt.Sprintf("and %d more", len(seen)-6))
	}
	b.say("settled before %s: waited %s for %s (%s)", before, time.Since(start).Round(100*time.Millisecond), strings.Join(names, ", "), loadAvg())
}

// dropDatabase drops db (on the cluster, when the bench runs on one).
func (b *bench) dropDatabase(db string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if b.cfg.ClickHouse.Cluster != "" {
		cfg := b.cfg.ClickHouse
		cfg.Database = db
		if s, err := store.Open(ctx, cfg, nil); err == nil {
			_ = s.DropDatabase(ctx)
			s.Close()
		}
		return
	}
	if _, err := b.clickhouse(ctx, "default", "DROP DATABASE IF EXISTS "+db, nil); err != nil {
		b.say("dropping %s: %v", db, err)
	}
}

type bench struct {
	e    *Env
	self string
	cfg  settings
	id   string
	// instances is how many chatwarden ingest processes timeIngest runs.
	instances int
	// name prefixes what say prints (default bench-ingest).
	name string
	// settleTimeout bounds settle's wait; keep keeps the databases and
	// topics; dir holds the configuration files.
	settleTimeout time.Duration
	keep          bool
	dir           string
	// flatTopic is the Kafka engine's topic (produceFlat).
	flatTopic string
}

// writeConfig writes the configuration file the bench's chatwarden
// processes (migrate, ingest) read: its topics and group, and the
// ClickHouse cluster when there is one. It returns its path.
func (b *bench) writeConfig(dir string) (string, error) {
	ic := b.cfg.Ingest
	yaml := fmt.Sprintf("ingest:\n  access_topic: %s\n  consent_topic: %s\n  dead_letter_topic: %s\n  group: %s\n  batch_size: %d\n",
		ic.AccessTopic, ic.ConsentTopic, ic.DeadLetterTopic, ic.Group, ic.BatchSize)
	if ic.BacklogBatchSize > 0 {
		// Only when asked for: an older chatwarden (-chatwarden, for a
		// side-by-side run) does not know the field.
		yaml += fmt.Sprintf("  backlog_batch_size: %d\n", ic.BacklogBatchSize)
	}
	if b.cfg.ClickHouse.Cluster != "" || b.cfg.ClickHouse.LogQueries {
		yaml += "clickhouse:\n"
	}
	if b.cfg.ClickHouse.Cluster != "" {
		yaml += fmt.Sprintf("  cluster: %s\n  query_timeout: 5m\n", b.cfg.ClickHouse.Cluster)
	}
	if b.cfg.ClickHouse.LogQueries {
		yaml += "  log_queries: true\n"
	}
	f := filepath.Join(dir, "chatwarden.yaml")
	return f, os.WriteFile(f, []byte(yaml), 0o600)
}

func (b *bench) say(format string, args ...any) {
	fmt.Fprintf(b.e.Stdout, cmp.Or(b.name, "bench-ingest")+": "+format+"\n", args...)
}

// self_ runs this binary with args and extra environment.
func (b *bench) self_(ctx context.Context, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, b.self, args...)
	cmd.Env = append(append(os.Environ(), b.env()...), env...)
	cmd.Stdout, cmd.Stderr = io.Discard, b.e.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running chatwarden %s: %w", args[0], err)
	}
	return nil
}

// env passes the bench's ingest settings to child processes.
func (b *bench) env() []string {
	env := []string{"CHATWARDEN_KAFKA_BROKERS=" + strings.Join(b.cfg.Ingest.Brokers, ",")}
	if b.cfg.ClickHouse.Addr != "" {
		env = append(env, "CHATWARDEN_CLICKHOUSE_ADDR="+b.cfg.ClickHouse.Addr)
	}
	if os.Getenv("CHATWARDEN_PSEUDONYM_KEY") == "" && b.cfg.Pseudonym.KeyFile == "" {
		key := make([]byte, 32)
		_, _ = rand.Read(key)
		env = append(env, "CHATWARDEN_PSEUDONYM_KEY="+hex.EncodeToString(key)) // a throwaway key
	}
	return env
}

// timeIngest runs b.instances `chatwarden ingest` processes (one consumer
// group) with cfgFile until together they have committed lines messages,
// and returns events per second and the largest peak RSS in MiB.
func (b *bench) timeIngest(ctx context.Context, db, cfgFile string, lines int, cpuProfile string) (eps, rssMB float64, err error) {
	type proc struct {
		cmd    *exec.Cmd
		addr   string
		exited chan error
	}
	var procs []*proc
	defer func() {
		for _, p := range procs {
			if p.cmd.ProcessState == nil {
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
	}()
	logQueries := b.cfg.ClickHouse.LogQueries && b.cfg.ClickHouse.Cluster == ""
	var counters0 map[string]float64
	ports, rport := map[int]bool{}, chPort(b.cfg.ClickHouse.WithDefaults().Addr)
	if logQueries {
		counters0 = b.serverCounters(ctx)
	}
	chCPU0, kafkaCPU0 := procCPU(stackPID("clickhouse")), procCPU(stackPID("kafka"))
	start := time.Now()
	for i := range b.instances {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		addr := ln.Addr().String()
		ln.Close()
		args := []string{"ingest", "-config", cfgFile, "-metrics-addr", addr}
		if cpuProfile != "" && i == 0 {
			args = append(args, "-cpuprofile", cpuProfile)
		}
		cmd := exec.CommandContext(ctx, b.self, args...)
		cmd.Env = append(append(os.Environ(), b.env()...), "CHATWARDEN_CLICKHOUSE_DATABASE="+db, "CHATWARDEN_LOG_LEVEL=warn")
		cmd.Stderr = b.e.Stderr
		if err := cmd.Start(); err != nil {
			return 0, 0, err
		}
		p := &proc{cmd: cmd, addr: addr, exited: make(chan error, 1)}
		go func() { p.exited <- cmd.Wait() }()
		procs = append(procs, p)
	}
	last, lastChange := -1.0, time.Now()
	bar := progress.New(b.e.Stderr, "chatwarden ingest", "messages", progress.Options{})
	for {
		got := 0.0
		for _, p := range procs {
			select {
			case err := <-p.exited:
				p.exited <- err
				return 0, 0, fmt.Errorf("ingest exited early: %w", err)
			default:
			}
			got += max(scrape(p.addr, "chatwarden_ingest_messages_total"), 0)
			if logQueries {
				connPorts(p.cmd.Process.Pid, rport, ports)
			}
		}
		bar.Update(int64(got), got/float64(lines))
		if got >= float64(lines) {
			bar.Done()
			break
		}
		if got != last {
			last, lastChange = got, time.Now()
		}
		if time.Since(lastChange) > 60*time.Second {
			return 0, 0, fmt.Errorf("ingest stalled at %.0f of %d messages", got, lines)
		}
		// Every 100 ms (the Kafka engine's count is polled every 200 ms):
		// each scrape costs the timed process a /metrics rendering and
		// its /proc reads; at 20 ms that was a third of ingest's CPU
		// (`-cpuprofile`: 3.6 s of 10.4 s in promhttp and the process
		// collector, 200k events).
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return 0, 0, ctx.Err()
		}
	}
	el := time.Since(start)
	var ownCPU float64
	for _, p := range procs {
		rssMB = max(rssMB, vmHWM(p.cmd.Process.Pid))
		ownCPU += procCPU(p.cmd.Process.Pid)
	}
	chCPU, kafkaCPU := procCPU(stackPID("clickhouse"))-chCPU0, procCPU(stackPID("kafka"))-kafkaCPU0
	var batches, inserting float64
	for _, p := range procs {
		batches += max(scrape(p.addr, "chatwarden_ingest_batches_total"), 0)
		inserting += max(scrape(p.addr, "chatwarden_ingest_insert_duration_seconds_sum"), 0)
	}
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		if err := <-p.exited; err != nil {
			return 0, 0, fmt.Errorf("ingest exit: %w", err)
		}
	}
	eps = float64(lines) / el.Seconds()
	b.say("chatwarden ingest x%d: %d messages in %s (from process start, group join included): %.0f events/s, peak RSS %.0f MiB, %.0f batches (%.0f messages each), %.1f s in their event inserts",
		b.instances, lines, el.Round(time.Millisecond), eps, rssMB, batches, float64(lines)/max(batches, 1), inserting)
	if b.cfg.ClickHouse.Cluster != "" {
		b.say("CPU seconds meanwhile: ingest %.1f (%s); the cluster's servers are not the stack's and are not counted", ownCPU, loadAvg())
		return eps, rssMB, nil
	}
	if logQueries {
		b.queryKinds(ctx, start, ports, counters0, b.serverCounters(ctx))
	}
	total := ownCPU + chCPU + kafkaCPU
	b.say("CPU seconds meanwhile: ingest %.1f, clickhouse-server %.1f, kafka %.1f (servers include other load on the machine, %s); "+
		"on %d otherwise idle cores that CPU bounds ingest at %.0f events/s",
		ownCPU, chCPU, kafkaCPU, loadAvg(), runtime.NumCPU(), float64(lines)/total*float64(runtime.NumCPU()))
	return eps, rssMB, nil
}

// checkStored verifies the ingested database holds each access event once.
func (b *bench) checkStored(ctx context.Context, db string, want int) error {
	cfg := b.cfg.ClickHouse
	cfg.Database = db
	s, err := store.Open(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	sum, err := s.Summary(ctx)
	if err != nil {
		return err
	}
	var dead uint64
	for _, n := range sum.DeadLetters {
		dead += n
	}
	b.say("stored %d events (%d distinct ids), %d dead letters", sum.Events, sum.DistinctIDs, dead)
	if sum.DistinctIDs != sum.Events || sum.Events+dead < uint64(want) {
		return fmt.Errorf("stored %d events with %d distinct ids and %d dead letters, want %d", sum.Events, sum.DistinctIDs, dead, want)
	}
	return nil
}

// clickhouse runs clickhouse-client with a query and optional stdin.
func (b *bench) clickhouse(ctx context.Context, db, query string, stdin io.Reader) (string, error) {
	host, port, err := net.SplitHostPort(b.cfg.ClickHouse.WithDefaults().Addr)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "clickhouse-client", "--host", host, "--port", port, "--database", db, "--query", query)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("clickhouse-client: %w: %s", err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// kafkaEngine measures ClickHouse's own Kafka table engine on the same
// events: the engine has no validation, pseudonymization, dedupe or nested
// JSON, so it reads the events flattened to the events table's columns
// (what a producer would have to send it) from a topic of its own, through
// materialized views into the same events table and the same view tables
// that chatwarden ingest fills (event_ids, events_by_subject, actor_minute,
// ...), as consumer group group of the topic produceFlat wrote. It returns
// events per second, timed until every one of those tables holds what the
// JSONEachRow leg's database held (w: the same rows inserted into events).
// The timer starts once the server has settled (no merge or mutation
// running).
//
// The view tables need views of their own on the Kafka table: a
// materialized view writing TO events does not run events' own views on
// 18.16 (its rows go straight into events' storage), so a single
// `kafka_flat -> events` view fills events alone, one of the tables
// chatwarden ingest writes (events and each of its views' tables: eight
// up to migration 0015, nine with 0016's actor_minute_exports). Each of events' views is copied with
// kafka_flat as its source (engineViews). Until they all exist, a view TO a
// table that does not exist holds the engine (on 18.16 it streams only when
// every view's target exists): dropping it starts the engine, and the
// timer, with every view in place.
func (b *bench) kafkaEngine(ctx context.Context, db, group string, w engineWant, want int, wait time.Duration) (float64, error) {
	ic := b.cfg.Ingest
	// A new group of the engine's librdkafka starts at the end of the
	// topic; commit the beginning for it first.
	if err := ingest.ResetGroupOffsets(ctx, ic, group, b.flatTopic, 0); err != nil {
		return 0, err
	}
	var created []string // views to drop, newest first
	defer func() {
		// Drop the views and the engine table while their topic still
		// exists: on 18.16 dropping a Kafka table whose topic is gone
		// hangs in librdkafka's consumer close.
		for _, v := range slices.Backward(created) {
			_, _ = b.clickhouse(context.Background(), db, "DROP TABLE IF EXISTS "+v, nil)
		}
		_, _ = b.clickhouse(context.Background(), db, "DROP TABLE IF EXISTS kafka_flat", nil)
	}()
	views, err := b.createEngine(ctx, db, b.flatTopic, group, &created)
	if err != nil {
		return 0, err
	}
	tables := append([]string{"events"}, engineTargets(views)...)
	if !slices.Equal(tables, w.tables) {
		return 0, fmt.Errorf("the Kafka engine's tables %v are not the JSONEachRow leg's %v", tables, w.tables)
	}
	wantSums := w.sums
	engineSums, err := b.tableSums(ctx, db, tables)
	if err != nil {
		return 0, err
	}
	b.settle(ctx, "the Kafka engine into "+db)
	errLog := filepath.Join(stackDir(), "clickhouse", "log", "clickhouse-server.err.log")
	logStart := fileSize(errLog)
	chCPU0 := procCPU(stackPID("clickhouse"))
	start := time.Now()
	if _, err := b.clickhouse(ctx, db, "DROP TABLE engine_gate", nil); err != nil {
		return 0, err
	}
	last, lastChange := -1, time.Now()
	var eventsDone time.Duration
	bar := progress.New(b.e.Stderr, "Kafka engine", "rows", progress.Options{})
	for {
		got := 0
		if eventsDone == 0 {
			out, err := b.clickhouse(ctx, db, "SELECT count() FROM events", nil)
			if err != nil {
				return 0, err
			}
			got, _ = strconv.Atoi(out)
			if got >= want {
				eventsDone = time.Since(start)
			}
		}
		if eventsDone > 0 {
			// Then until every view's table is complete (each view is
			// written after events, block by block).
			sums, err := engineSums()
			if err != nil {
				return 0, err
			}
			if slices.Equal(sums, wantSums) {
				bar.Done()
				el := time.Since(start)
				b.say("ClickHouse Kafka engine (1 consumer, flat JSONEachRow rows): %d events into events and its %d views' tables in %s (events alone complete at %s); clickhouse-server CPU seconds %.1f (%s)",
					want, len(views), el.Round(time.Millisecond), eventsDone.Round(time.Millisecond), procCPU(stackPID("clickhouse"))-chCPU0, loadAvg())
				return float64(want) / el.Seconds(), nil
			}
			for i := range sums {
				if sums[i] > wantSums[i] {
					return 0, fmt.Errorf("the Kafka engine's %s holds %d rows (or events), the JSONEachRow leg's %d: was it filled twice (a server whose views of events run for a view's inserts into events)?", tables[i], sums[i], wantSums[i])
				}
			}
			got = want
			for i := range sums {
				got += sums[i]
			}
		}
		bar.Update(int64(min(got, want)), float64(min(got, want))/float64(want))
		if got != last {
			last, lastChange = got, time.Now()
		}
		if time.Since(lastChange) > wait {
			return 0, fmt.Errorf("no progress for %s (%d of %d rows); ClickHouse server log says: %s", wait, got, want, kafkaLogLines(errLog, logStart))
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return 0, ctx.Err()
		}
	}
}

// produceFlat produces the flat events to the Kafka engine's topic, once
// for every round (each round's engine reads it as a group of its own).
func (b *bench) produceFlat(ctx context.Context, flat string) error {
	ic := b.cfg.Ingest
	topic := "bench-" + b.id + "-flat"
	if err := ingest.CreateTopics(ctx, ic, ingest.TopicSpec{Name: topic, Partitions: 4}); err != nil {
		return err
	}
	b.flatTopic = topic
	f, err := os.Open(flat)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := ingest.NewProducer(ic, topic)
	if err != nil {
		return err
	}
	defer p.Close()
	_, err = p.ProduceJSONL(ctx, f, 0, nil)
	return err
}

// createEngine creates, in db, the Kafka engine's table on topic (group
// group), the gate view that holds it, its view into events and the copies
// of events' views, appending each view it created to created; it returns
// the copies.
func (b *bench) createEngine(ctx context.Context, db, topic, group string, created *[]string) ([]engineView, error) {
	ic := b.cfg.Ingest
	views, err := b.engineViews(ctx, db)
	if err != nil {
		return nil, err
	}
	cols := "event_id String, ts DateTime, tenant String, actor_id String, actor_type String, actor_role String, " +
		"actor_vendor String, action String, store String, resource_type String, resource_id String, subject_id String, " +
		"records UInt64, bytes UInt64, fields Array(String), purpose String, conversation_id String, " +
		"conversation_subject_id String, tool String, result String, client_ip String, client_country String, " +
		"client_user_agent String, destination String, ingested_at DateTime"
	if _, err := b.clickhouse(ctx, db, fmt.Sprintf("CREATE TABLE kafka_flat (%s) ENGINE = Kafka('%s', '%s', '%s', 'JSONEachRow')",
		cols, strings.Join(ic.Brokers, ","), topic, group), nil); err != nil {
		return nil, err
	}
	// The gate first: a view TO a table that does not exist holds the
	// engine until it is dropped.
	stmts := []string{"CREATE MATERIALIZED VIEW engine_gate TO engine_gate_missing AS SELECT * FROM kafka_flat",
		"CREATE MATERIALIZED VIEW engine_mv TO events AS SELECT * FROM kafka_flat"}
	names := []string{"engine_gate", "engine_mv"}
	for _, v := range views {
		stmts, names = append(stmts, v.create), append(names, v.name)
	}
	for i, q := range stmts {
		if _, err := b.clickhouse(ctx, db, q, nil); err != nil {
			return nil, err
		}
		*created = append(*created, names[i])
	}
	return views, nil
}

// engineView is a copy of one of events' materialized views that reads
// from the Kafka engine's table instead.
type engineView struct {
	name, target, create string
}

// fromEvents matches the source of a view of events in its CREATE query
// as SHOW CREATE TABLE prints it (database-qualified).
var fromEvents = regexp.MustCompile(`(?i)\bFROM\s+([A-Za-z0-9_]+\.)?events\b`)

// engineViews returns, for each materialized view of db (events' views,
// from its migrations), the same view named engine_<name> reading from
// kafka_flat.
func (b *bench) engineViews(ctx context.Context, db string) ([]engineView, error) {
	out, err := b.clickhouse(ctx, db, fmt.Sprintf(
		"SELECT name FROM system.tables WHERE database = '%s' AND engine = 'MaterializedView' ORDER BY name", db), nil)
	if err != nil {
		return nil, err
	}
	var vs []engineView
	for _, name := range strings.Fields(out) {
		q, err := b.clickhouse(ctx, db, fmt.Sprintf("SHOW CREATE TABLE %s.%s FORMAT TabSeparatedRaw", db, name), nil)
		if err != nil {
			return nil, err
		}
		head := fmt.Sprintf("CREATE MATERIALIZED VIEW %s.%s TO %s.", db, name, db)
		rest, ok := strings.CutPrefix(q, head)
		if !ok {
			return nil, fmt.Errorf("view %s: not a materialized view TO a table of %s: %s", name, db, q)
		}
		target, _, _ := strings.Cut(rest, " ")
		if n := len(fromEvents.FindAllStringIndex(q, -1)); n != 1 {
			return nil, fmt.Errorf("view %s reads FROM events %d times, want once: %s", name, n, q)
		}
		q = fromEvents.ReplaceAllString(q, "FROM "+db+".kafka_flat")
		q = strings.Replace(q, head, fmt.Sprintf("CREATE MATERIALIZED VIEW %s.engine_%s TO %s.", db, name, db), 1)
		vs = append(vs, engineView{name: "engine_" + name, target: target, create: q})
	}
	return vs, nil
}

// engineTargets returns the distinct target tables of vs.
func engineTargets(vs []engineView) []string {
	var ts []string
	for _, v := range vs {
		if !slices.Contains(ts, v.target) {
			ts = append(ts, v.target)
		}
	}
	return ts
}

// tableSums returns a function that returns, per table of db, what its
// inserts added: the aggregated event count of an aggregating table (a sum
// state named events), else its rows. Each call is one query, so that
// polling costs the server one.
func (b *bench) tableSums(ctx context.Context, db string, tables []string) (func() ([]int, error), error) {
	out, err := b.clickhouse(ctx, db, fmt.Sprintf(
		"SELECT table FROM system.columns WHERE database = '%s' AND name = 'events' AND type = 'AggregateFunction(sum, UInt64)'", db), nil)
	if err != nil {
		return nil, err
	}
	agg := strings.Fields(out)
	exprs := make([]string, len(tables))
	for i, t := range tables {
		if slices.Contains(agg, t) {
			exprs[i] = fmt.Sprintf("(SELECT toUInt64(sumMerge(events)) FROM %s.%s)", db, t)
		} else {
			exprs[i] = fmt.Sprintf("(SELECT count() FROM %s.%s)", db, t)
		}
	}
	q := "SELECT " + strings.Join(exprs, ", ")
	return func() ([]int, error) {
		out, err := b.clickhouse(ctx, db, q, nil)
		if err != nil {
			return nil, err
		}
		fs := strings.Fields(out)
		if len(fs) != len(tables) {
			return nil, fmt.Errorf("table sums of %s: %q", db, out)
		}
		sums := make([]int, len(fs))
		for i, f := range fs {
			if sums[i], err = strconv.Atoi(f); err != nil {
				return nil, fmt.Errorf("table sums of %s: %q", db, out)
			}
		}
		return sums, nil
	}, nil
}

// jsonEachRow times clickhouse-client inserting the flattened events.
func (b *bench) jsonEachRow(ctx context.Context, db, flat string, n int) (float64, error) {
	f, err := os.Open(flat)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	chCPU0 := procCPU(stackPID("clickhouse"))
	start := time.Now()
	if _, err := b.clickhouse(ctx, db, "INSERT INTO events ("+flatColumns+") FORMAT JSONEachRow", bufio.NewReaderSize(f, 1<<20)); err != nil {
		return 0, err
	}
	el := time.Since(start)
	b.say("clickhouse-server CPU seconds for the JSONEachRow insert: %.1f (%s)", procCPU(stackPID("clickhouse"))-chCPU0, loadAvg())
	out, err := b.clickhouse(ctx, db, "SELECT count() FROM events", nil)
	if err != nil {
		return 0, err
	}
	b.say("clickhouse-client JSONEachRow: %s rows in %s", out, el.Round(time.Millisecond))
	return float64(n) / el.Seconds(), nil
}

const flatColumns = "event_id, ts, tenant, actor_id, actor_type, actor_role, actor_vendor, action, store, resource_type, resource_id, subject_id, records, bytes, fields, purpose, conversation_id, conversation_subject_id, tool, result, client_ip, client_country, client_user_agent, destination, ingested_at"

// flatten writes the valid access events of in as flat JSONEachRow rows.
func flatten(in, out string) (int, error) {
	f, err := os.Open(in)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	o, err := os.Create(out)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(o, 1<<20)
	enc := json.NewEncoder(w)
	now := time.Now()
	at := now.UTC().Format("2006-01-02 15:04:05")
	br := bufio.NewReaderSize(f, 1<<20)
	n := 0
	for {
		line, rerr := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 && models.SchemaOf(line) == models.SchemaAccess {
			ev, err := models.DecodeAccess(line, now, models.Limits{})
			if err == nil {
				n++
				fields := ev.Fields
				if fields == nil {
					fields = []string{}
				}
				if err := enc.Encode(map[string]any{
					"event_id": ev.EventID, "ts": ev.TS.UTC().Format("2006-01-02 15:04:05"), "tenant": ev.Tenant,
					"actor_id": ev.Actor.ID, "actor_type": ev.Actor.Type, "actor_role": ev.Actor.Role, "actor_vendor": ev.Actor.Vendor,
					"action": ev.Action, "store": ev.Store, "resource_type": ev.Resource.Type, "resource_id": ev.Resource.ID,
					"subject_id": ev.SubjectID, "records": ev.Records, "bytes": ev.Bytes, "fields": fields, "purpose": ev.Purpose,
					"conversation_id": ev.Conversation.ID, "conversation_subject_id": ev.Conversation.SubjectID, "tool": ev.Tool,
					"result": ev.Result, "client_ip": ev.Client.IP, "client_country": ev.Client.Country,
					"client_user_agent": ev.Client.UserAgent, "destination": ev.Destination, "ingested_at": at,
				}); err != nil {
					o.Close()
					return 0, err
				}
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			o.Close()
			return 0, rerr
		}
	}
	if err := w.Flush(); err != nil {
		o.Close()
		return 0, err
	}
	return n, o.Close()
}

// deleteTopics deletes the bench's topics.
func (b *bench) deleteTopics() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ic := b.cfg.Ingest
	topics := []string{ic.AccessTopic, ic.ConsentTopic, ic.DeadLetterTopic}
	if b.flatTopic != "" {
		topics = append(topics, b.flatTopic)
	}
	if err := ingest.DeleteTopics(ctx, ic, topics...); err != nil {
		b.say("deleting bench topics: %v", err)
	}
}

// scrape returns the value of an unlabelled metric at addr, or -1. It asks
// for the uncompressed text: gzip-compressing every scrape cost the timed
// process CPU that no Prometheus scraping every 15 s would.
func scrape(addr, name string) float64 {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return -1
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// vmHWM returns the peak resident set size of pid in MiB, or 0.
func vmHWM(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

func countLines(file string) (int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return 0, err
		}
	}
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

// kafkaLogLines returns the distinct Kafka-related lines the ClickHouse
// server logged since offset, shortened.
func kafkaLogLines(p string, offset int64) string {
	f, err := os.Open(p)
	if err != nil {
		return "(no server log at " + p + ")"
	}
	defer f.Close()
	_, _ = f.Seek(offset, io.SeekStart)
	seen := map[string]bool{}
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.Contains(strings.ToLower(l), "kafka") {
			continue
		}
		if i := strings.Index(l, "> "); i >= 0 {
			l = l[i+2:]
		}
		if len(l) > 300 {
			l = l[:300]
		}
		if !seen[l] && len(out) < 8 {
			seen[l] = true
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return "(no Kafka lines in " + p + ")"
	}
	return strings.Join(out, " | ")
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// stackDir is where scripts/stack.sh keeps the local stack:
// CHATWARDEN_STACK_DIR, as the script reads it, else .stack.
func stackDir() string {
	if d := os.Getenv("CHATWARDEN_STACK_DIR"); d != "" {
		return d
	}
	return ".stack"
}

// stackPID returns the pid scripts/stack.sh recorded for a server, or 0.
func stackPID(name string) int {
	dir := stackDir()
	for _, p := range []string{filepath.Join(dir, name, name+".pid"), filepath.Join(dir, name, "clickhouse.pid")} {
		if b, err := os.ReadFile(p); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				return pid
			}
		}
	}
	return 0
}

// procCPU returns the user+system CPU seconds pid has used, or 0.
func procCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// Fields after the parenthesized command name; utime and stime are
	// fields 14 and 15 of the whole line, in clock ticks (100 per second).
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(rest) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(rest[11], 64)
	st, _ := strconv.ParseFloat(rest[12], 64)
	return (u + st) / 100
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load unknown"
	}
	f := strings.Fields(string(b))
	return "load average " + f[0]
}
