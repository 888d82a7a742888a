package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/sim"
	"github.com/chatwarden/chatwarden/store"
)

// BenchmarkInsertViewsCPU measures where ClickHouse's CPU goes when events
// are inserted (issue 12: the INSERTs into events and its materialized
// views are most of the server's CPU in the eval replay and make
// bench-ingest). The same realistic rows (the simulator's default traffic,
// 120 actors, from its second day; subject, conversation subject and
// resource ids pseudonymized as the replay does) are inserted as one
// INSERT of blocks of 20,000 rows (one stream of a split insert:
// store.InsertEventsOneInsert) into several freshly migrated databases in
// turn: "all" with every view, "events" with none, and "no_<view>" with
// every view but that one, so that a view's cost is all's CPU minus
// no_<view>'s. Each INSERT's CPU is read from the server's query_log by
// query id (user + system time, ProfileEvents: the events table's part and
// every view's run in the query's threads; background merges are not in
// it). Reported per database, the median over the rounds: CPU µs per
// event (<db>_cpu_us/ev); with BENCH_VIEWS_DETAIL=1 also system CPU, soft
// page faults per 1,000 events and wall time.
//
// BENCH_VIEWS_ORDER=1 compares the rows grouped by actor (what
// InsertEvents sends, store.actorOrder) with the rows in their order (as
// before it): "all" and "events" against "all_input_order" and
// "events_input_order".
//
// BENCH_VIEWS_SETTINGS="name:setting=N,...;name2:..." compares insert
// settings instead of views: "all" and one database per named set, every
// view in each. BENCH_VIEWS_ROWS is the rows per INSERT (default 80,000,
// a stream of the eval replay's inserts). One server only: query_log is
// per server.
//
//	go test -run '^$' -bench BenchmarkInsertViewsCPU -benchtime 8x ./store/
//	BENCH_VIEWS_ORDER=1 go test -run '^$' -bench BenchmarkInsertViewsCPU -benchtime 8x ./store/
//	BENCH_VIEWS_DETAIL=1 BENCH_VIEWS_SETTINGS='pvp:parallel_view_processing=1' \
//	  go test -run '^$' -bench BenchmarkInsertViewsCPU -benchtime 8x ./store/
func BenchmarkInsertViewsCPU(b *testing.B) {
	rows := benchRows(b, "BENCH_VIEWS_ROWS", 80_000)
	evs := simEvents(b, rows)
	ctx := context.Background()
	if storetest.Cluster() != "" {
		b.Fatal("BenchmarkInsertViewsCPU reads one server's query_log: run it on one server, not on a cluster")
	}
	open := func(name string, drop func(views []string) []string) insertVariant {
		cfg := storetest.Config(b)
		s := storetest.Open(b, cfg)
		for _, v := range drop(eventViews(b, cfg)) {
			storetest.Exec(b, cfg, "DROP TABLE "+cfg.Database+"."+v)
		}
		return insertVariant{name: name, cfg: cfg, s: s}
	}
	vs := []insertVariant{
		open("all", func([]string) []string { return nil }),
		open("events", func(views []string) []string { return views }),
	}
	if os.Getenv("BENCH_VIEWS_ORDER") != "" {
		for _, name := range []string{"all", "events"} {
			v := open(name+"_input_order", func(views []string) []string {
				if name == "events" {
					return views
				}
				return nil
			})
			v.inputOrder = true
			vs = append(vs, v)
		}
	} else if sets := os.Getenv("BENCH_VIEWS_SETTINGS"); sets != "" {
		vs = vs[:1]
		for _, def := range strings.Split(sets, ";") {
			name, kvs, _ := strings.Cut(def, ":")
			v := open(name, func([]string) []string { return nil })
			v.settings = clickhouse.Settings{}
			for _, kv := range strings.Split(kvs, ",") {
				k, val, _ := strings.Cut(kv, "=")
				n, err := strconv.Atoi(val)
				if err != nil {
					b.Fatalf("BENCH_VIEWS_SETTINGS %q: %v", def, err)
				}
				v.settings[k] = n
			}
			vs = append(vs, v)
		}
	} else {
		for _, v := range eventViews(b, vs[0].cfg) {
			vs = append(vs, open("no_"+v, func([]string) []string { return []string{v} }))
		}
	}
	st := benchInsertCPU(ctx, b, evs, vs)
	for i, v := range vs {
		b.ReportMetric(st[i].cpu, v.name+"_cpu_us/ev")
		if os.Getenv("BENCH_VIEWS_DETAIL") != "" {
			b.ReportMetric(st[i].sys, v.name+"_sys_us/ev")
			b.ReportMetric(st[i].faults, v.name+"_faults/kev")
			b.ReportMetric(st[i].wall, v.name+"_wall_us/ev")
		}
	}
}

// insertVariant is a database that benchInsertCPU inserts into, with the
// settings of its INSERTs.
type insertVariant struct {
	name     string
	cfg      store.Config
	s        *store.Store
	settings clickhouse.Settings
	// inputOrder inserts the rows in their order, not grouped by actor.
	inputOrder bool
}

// insertStats are the medians over the rounds of a variant's INSERTs: CPU
// (user + system), system CPU and wall time in µs per event, soft page
// faults per 1,000 events.
type insertStats struct{ cpu, sys, wall, faults float64 }

// benchInsertCPU inserts evs (fresh event ids each time) into each
// variant's database in turn, b.N rounds, one INSERT each (blocks of
// 20,000 rows), and returns each one's insertStats, read from
// system.query_log by query id.
func benchInsertCPU(ctx context.Context, b *testing.B, evs []models.Event, vs []insertVariant) []insertStats {
	n := len(vs)
	ids := make([][]string, n)
	round := 0
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	at := evs[len(evs)-1].TS.Add(time.Minute)
	for b.Loop() {
		round++
		for j := range evs {
			evs[j].EventID = fmt.Sprintf("r%d-%d", round, j)
		}
		// A different database first each round: none always runs
		// right after another's merges or a cold cache.
		for k := range n {
			i := (k + round) % n
			id := fmt.Sprintf("insertcpu-%s-%d-%d", run, round, i)
			set := clickhouse.Settings{"log_queries": 1}
			for k, v := range vs[i].settings {
				set[k] = v
			}
			qctx := clickhouse.Context(ctx, clickhouse.WithQueryID(id), clickhouse.WithSettings(set))
			if err := store.InsertEventsOneInsert(qctx, vs[i].s, evs, at, vs[i].inputOrder); err != nil {
				b.Fatalf("insert into %s: %v", vs[i].name, err)
			}
			ids[i] = append(ids[i], id)
		}
	}
	b.StopTimer()
	cfg := vs[0].cfg
	storetest.Exec(b, cfg, "SYSTEM FLUSH LOGS")
	event := func(name string) string {
		return "toUInt64(ProfileEvents.Values[indexOf(ProfileEvents.Names, '" + name + "')])"
	}
	out := make([]insertStats, n)
	per := float64(len(evs))
	for i := range n {
		var cpu, sys, wall, faults []float64
		for _, id := range ids[i] {
			q := func(expr string) float64 {
				return float64(storetest.Count(b, cfg, "SELECT "+expr+" FROM system.query_log WHERE type = 2 AND query_id = ?", id))
			}
			c := q(event("UserTimeMicroseconds") + " + " + event("SystemTimeMicroseconds"))
			if c == 0 {
				b.Fatalf("query %s: no CPU time in system.query_log", id)
			}
			cpu = append(cpu, c/per)
			sys = append(sys, q(event("SystemTimeMicroseconds"))/per)
			faults = append(faults, q(event("SoftPageFaults"))*1000/per)
			wall = append(wall, q("toUInt64(query_duration_ms)")*1000/per)
		}
		out[i] = insertStats{cpu: median(cpu), sys: median(sys), wall: median(wall), faults: median(faults)}
	}
	return out
}

// eventViews lists the materialized views of cfg's database (the views
// that the INSERTs into events run).
func eventViews(b *testing.B, cfg store.Config) []string {
	out := queryStrings(b, cfg, "SELECT name FROM system.tables WHERE database = ? AND engine = 'MaterializedView' ORDER BY name", cfg.Database)
	if len(out) == 0 {
		b.Fatalf("database %s has no materialized view", cfg.Database)
	}
	return out
}

// benchRows reads a row count from the environment variable name.
func benchRows(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// simEvents returns n access events of the simulator's default traffic
// (the eval scenario's world: 120 actors, two tenants), from its second
// simulated day on, with the customer and resource ids pseudonymized as
// the eval replay does.
func simEvents(b *testing.B, n int) []models.Event {
	g, err := sim.New(sim.Config{Seed: 1, Duration: 4 * 24 * time.Hour, HardNegatives: true})
	if err != nil {
		b.Fatal(err)
	}
	ps, err := pseudonym.New(pseudonym.Key{ID: 'a', Secret: []byte("bench-insert-views-0123456789abcdef")})
	if err != nil {
		b.Fatal(err)
	}
	from := g.Start().Add(24 * time.Hour)
	evs := make([]models.Event, 0, n)
	var batch sim.Batch
	for len(evs) < n && g.Next(&batch) {
		if batch.Minute.Before(from) {
			continue
		}
		for i := range batch.Lines {
			line := batch.Value(i)
			if bytes.Contains(line, []byte(`"granted":`)) {
				continue // a consent event
			}
			var e models.Event
			if err := json.Unmarshal(line, &e); err != nil {
				b.Fatalf("decoding %s: %v", line, err)
			}
			e.SubjectID = ps.Hash(e.SubjectID)
			e.Conversation.SubjectID = ps.Hash(e.Conversation.SubjectID)
			e.Resource.ID = ps.Hash(e.Resource.ID)
			if e.Tenant == "" {
				e.Tenant = "default"
			}
			evs = append(evs, e)
			if len(evs) == n {
				break
			}
		}
	}
	if len(evs) < n {
		b.Fatalf("the simulator gave %d events, want %d", len(evs), n)
	}
	return evs
}

// median returns the median of xs (sorted in place).
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
