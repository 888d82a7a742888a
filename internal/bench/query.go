package bench

// Query measures the investigation queries on a large data set: it loads synthetic events (10 million by default) into a scratch
// ClickHouse database, then times the actor-history query, the data-subject
// report and the weekly report the way the pages and the CLI run them. Its
// last line is "history_p95_ms=<n> dsar_p95_ms=<n> weekly_ms=<n>"; the line
// before it gives the load rate and the bytes on disk per event. Run it with
// `make bench-query` (BENCH_EVENTS=n for another count).

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/chatwarden/chatwarden/dashboards"
	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/internal/progress"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/report"
	"github.com/chatwarden/chatwarden/store"
)

func Query(ctx context.Context, e *Env, args []string) error {
	fs := e.flags("query")
	addr := fs.String("addr", envOr("CHATWARDEN_CLICKHOUSE_ADDR", "127.0.0.1:9000"), "ClickHouse native address")
	db := fs.String("database", "bench_query", "scratch database (dropped and re-created)")
	events := fs.Uint64("events", 10_000_000, "events to load")
	runs := fs.Int("runs", 50, "queries per measurement")
	keep := fs.Bool("keep", false, "keep the database afterwards")
	cluster := fs.String("cluster", "", "clickhouse.cluster: load and query through the cluster's Distributed tables")
	detectShards := fs.Int("detect-shards", 0, "also time one detection cycle for each of this many detection shards (0: none)")
	reuse := fs.Bool("reuse", false, "use the database an earlier -keep run loaded as it is: no drop, no load, no alerts written (migrate still runs, back-filling any new rollup); implies -keep")
	weeklyRuns := fs.Int("weekly-runs", 3, "weekly reports timed (the median is printed)")
	queryLog := fs.Bool("query-log", false, "log the bench's queries (clickhouse.log_queries) and print ClickHouse's wall and CPU per query of the weekly report from system.query_log (single server only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *queryLog && *cluster != "" {
		return fmt.Errorf("-query-log: only on a single server (each node has its own query log)")
	}
	cfg := store.Config{Addr: *addr, Database: *db, Cluster: *cluster, QueryTimeout: 10 * time.Minute, LogQueries: *queryLog}
	s, err := store.Open(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	if !*reuse {
		if err := s.DropDatabase(ctx); err != nil {
			return err
		}
		s.Close()
		if s, err = store.Open(ctx, cfg, nil); err != nil {
			return err
		}
	}
	if !*keep && !*reuse {
		defer s.DropDatabase(context.Background()) //nolint:errcheck // best effort
	}
	if _, err := s.Migrate(ctx, time.Now()); err != nil {
		return err
	}
	week := report.Week{Year: 2026, Num: 47}
	from, to := week.Start(), week.End()
	now := to.Add(time.Hour)
	if *reuse {
		return queryRuns(ctx, e, s, queryOptions{addr: *addr, runs: *runs, weeklyRuns: *weeklyRuns, queryLog: *queryLog, detectShards: *detectShards}, week, now)
	}
	fmt.Fprintf(e.Stderr, "loading %d events over %s into %s ...\n", *events, week, *db)
	start := time.Now()
	bar := progress.New(e.Stderr, "bench-query load", "events", progress.Options{})
	err = s.LoadSyntheticEvents(ctx, *events, from, to, func(done uint64) {
		bar.Update(int64(done), float64(done)/float64(*events))
	})
	bar.Done()
	if err != nil {
		return err
	}
	loadTime := time.Since(start)
	fmt.Fprintf(e.Stderr, "loaded in %s\n", loadTime.Round(time.Second))
	// Bytes on disk per event: every table of the database (the raw
	// events and what the materialized views fill) and the raw events alone.
	if *cluster != "" {
		// On a cluster every node holds its shard's part: system.parts
		// of each node (the connected one sees only its own).
		b := &bench{e: e, name: "bench-query"}
		if err := b.clusterParts(ctx, *db, int(*events)); err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "load_events=%d load_eps=%.0f\n", *events, float64(*events)/loadTime.Seconds())
	} else {
		sizes, err := s.TableDiskBytes(ctx)
		if err != nil {
			return err
		}
		var total uint64
		for _, b := range sizes {
			total += b
		}
		per := func(b uint64) float64 { return float64(b) / float64(max(*events, 1)) }
		fmt.Fprintf(e.Stdout, "load_events=%d load_eps=%.0f disk_bytes=%d bytes_per_event=%.1f events_bytes_per_event=%.1f\n",
			*events, float64(*events)/loadTime.Seconds(), total, per(total), per(sizes["events"]))
	}
	if err := loadAlerts(ctx, s, from); err != nil {
		return err
	}
	return queryRuns(ctx, e, s, queryOptions{addr: *addr, runs: *runs, weeklyRuns: *weeklyRuns, queryLog: *queryLog, detectShards: *detectShards}, week, now)
}

// queryOptions are Query's flags that queryRuns uses.
type queryOptions struct {
	addr             string
	runs, weeklyRuns int
	queryLog         bool
	detectShards     int
}

// queryRuns times the investigation queries and the weekly report of week
// on the data s holds and prints the summary line.
func queryRuns(ctx context.Context, e *Env, s *store.Store, o queryOptions, week report.Week, now time.Time) error {
	from, to := week.Start(), week.End()
	actors, err := s.SampleActors(ctx, from, to, 500)
	if err != nil {
		return err
	}
	subjects, err := s.SampleSubjects(ctx, to.Add(-24*time.Hour), to, 500)
	if err != nil {
		return err
	}
	if len(actors) == 0 || len(subjects) == 0 {
		return fmt.Errorf("no actors or subjects to sample")
	}
	rng := rand.New(rand.NewPCG(1, 2))

	// Actor history: the last 24 hours of one actor, the page's default.
	hist, err := measure(max(o.runs, 1), func() error {
		a := actors[rng.IntN(len(actors))]
		_, _, err := s.History(ctx, store.HistoryFilter{ActorID: a, From: to.Add(-24 * time.Hour), To: to, Limit: store.DefaultHistoryLimit})
		return err
	})
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	// Data-subject report: 90 days of one customer.
	dsar, err := measure(max(o.runs, 1), func() error {
		sub := subjects[rng.IntN(len(subjects))]
		_, err := dashboards.SubjectReportOf(ctx, s, nil, []string{sub}, to.Add(-90*24*time.Hour), to)
		return err
	})
	if err != nil {
		return fmt.Errorf("dsar: %w", err)
	}
	rep := &report.Reporter{Events: s, Risk: s, Shares: s, Alerts: report.StoreAlerts(s)}
	// The weekly reports start on a whole second: the query log's
	// query_start_time tells theirs from the queries before.
	weeklyStart := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(weeklyStart))
	ports := map[int]bool{}
	var summary string
	weekly, err := measure(max(o.weeklyRuns, 1), func() error {
		sum, err := rep.Weekly(ctx, week, now)
		if err == nil {
			summary = sum.Paragraph
		}
		// The store's pooled connections stay open: their ports tell
		// the bench's queries in the query log.
		connPorts(os.Getpid(), chPort(o.addr), ports)
		return err
	})
	if err != nil {
		return fmt.Errorf("weekly: %w", err)
	}
	fmt.Fprintf(e.Stderr, "weekly summary: %s\n", summary)
	if o.queryLog {
		b := &bench{e: e, name: "bench-query"}
		b.cfg.ClickHouse.Addr = o.addr
		b.weeklyQueries(ctx, weeklyStart, ports, len(weekly))
	}
	fmt.Fprintf(e.Stderr, "history: p50 %s p95 %s (%d runs); dsar: p50 %s p95 %s; weekly: median of %d %s\n",
		percentile(hist, 50), percentile(hist, 95), len(hist), percentile(dsar, 50), percentile(dsar, 95), len(weekly), percentile(weekly, 50))
	detect := ""
	if o.detectShards > 0 {
		cycle, perActor, err := detectCycles(ctx, e, s, o.detectShards, to)
		if err != nil {
			return err
		}
		detect = fmt.Sprintf(" detect_cycle_ms=%d detect_state_bytes_per_actor=%.0f", cycle.Milliseconds(), perActor)
	}
	fmt.Fprintf(e.Stdout, "history_p95_ms=%d dsar_p95_ms=%d weekly_ms=%d%s\n", percentile(hist, 95).Milliseconds(), percentile(dsar, 95).Milliseconds(), percentile(weekly, 50).Milliseconds(), detect)
	return nil
}

// detectCycles builds one detection engine per detection shard over s,
// lets each learn the 6 hours before the last window before to, then times
// one cycle (Advance to to: the last window's aggregate query and its
// evaluation). It returns the slowest shard's cycle and the detection
// state per actor: the heap the engines hold after learning, over the
// actors they hold.
func detectCycles(ctx context.Context, e *Env, s *store.Store, shards int, to time.Time) (time.Duration, float64, error) {
	var slowest time.Duration
	var heap, actors float64
	for i := range shards {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		eng, err := detect.New(detect.Config{Shard: i, Shards: shards}, s, detect.Options{ShardKey: s.ShardKey()})
		if err != nil {
			return 0, 0, err
		}
		w := eng.Window()
		if err := eng.Learn(ctx, to.Add(-6*time.Hour-w), to.Add(-w)); err != nil {
			return 0, 0, fmt.Errorf("detection shard %d: learning: %w", i, err)
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		t := time.Now()
		if err := eng.Advance(ctx, to); err != nil {
			return 0, 0, fmt.Errorf("detection shard %d: cycle: %w", i, err)
		}
		d := time.Since(t)
		fmt.Fprintf(e.Stderr, "detection shard %d of %d: %d actors, cycle (window %s) %s, heap after learning %d bytes\n",
			i, shards, eng.Actors(), w, d.Round(time.Millisecond), int64(after.HeapAlloc)-int64(before.HeapAlloc))
		slowest = max(slowest, d)
		heap += float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
		actors += float64(eng.Actors())
		runtime.KeepAlive(eng)
	}
	return slowest, heap / max(actors, 1), nil
}

// loadAlerts writes 300 alerts spread over the week, with state changes,
// and hourly risk scores, so that the weekly report has flagged windows and
// risk to measure.
func loadAlerts(ctx context.Context, s *store.Store, from time.Time) error {
	dets := []string{"volume_spike", "enumeration", "off_hours", "consent_withdrawn", "purpose_category", "vendor_scope"}
	var rows []store.AlertRow
	var changes []store.AlertChange
	for i := range 300 {
		first := from.Add(time.Duration(i) * 33 * time.Minute)
		a := models.Alert{ID: fmt.Sprintf("bench-%d", i), Detector: dets[i%len(dets)], Tenant: "default", ActorID: fmt.Sprintf("actor-%d", i%150),
			Severity: models.Severity(i % 5), Status: models.AlertStatuses[i%4], FirstSeen: first, LastSeen: first.Add(20 * time.Minute), Findings: 1 + i%4,
			Latest: models.Finding{WindowStart: first, WindowEnd: first.Add(20 * time.Minute), Summary: "bench"}}
		rows = append(rows, store.AlertRow{Alert: a, Version: 1})
		changes = append(changes, store.AlertChange{AlertID: a.ID, At: first.Add(time.Duration(5+i%60) * time.Minute), Status: models.StatusAcknowledged})
	}
	if err := s.PutAlerts(ctx, rows); err != nil {
		return err
	}
	if err := s.PutAlertChanges(ctx, changes); err != nil {
		return err
	}
	// Hourly risk scores of the first 120 alerted actors (the rest fall back
	// to their alert count), as detection writes them.
	var risk []store.ActorRisk
	for h := range 7 * 24 {
		for a := range 120 {
			risk = append(risk, store.ActorRisk{TS: from.Add(time.Duration(h) * time.Hour), Tenant: "default", ActorID: fmt.Sprintf("actor-%d", a),
				ActorType: "human", Score: float64((a*7+h)%50) + 0.5, Findings: uint32(1 + a%5), TopDetector: dets[a%len(dets)], MaxSeverity: models.Severity(a % 5)})
		}
	}
	return s.InsertActorRisk(ctx, risk)
}

func measure(n int, f func() error) ([]time.Duration, error) {
	var ds []time.Duration
	for range n {
		t := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(t))
	}
	slices.Sort(ds)
	return ds, nil
}

func percentile(ds []time.Duration, p int) time.Duration {
	i := (len(ds)*p + 99) / 100
	return ds[max(0, min(len(ds)-1, i-1))]
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
