package detect

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// benchAggregates serves one prepared window.
type benchAggregates struct{ rows []store.WindowActivity }

func (b *benchAggregates) WindowAggregates(_ context.Context, from, to time.Time, _ time.Duration, _ store.Shard) ([]store.WindowActivity, error) {
	return b.rows, nil
}
func (b *benchAggregates) RecentSubjects(context.Context, time.Time, time.Time, time.Time, store.Shard) ([]store.SubjectCounts, error) {
	return nil, nil
}
func (b *benchAggregates) TopSubjects(context.Context, string, string, time.Time, time.Time, int) ([]string, error) {
	return nil, nil
}
func (b *benchAggregates) SubjectsOutsideConversation(context.Context, string, string, time.Time, time.Time) (uint64, error) {
	return 0, nil
}

func (b *benchAggregates) SubjectsRead(context.Context, string, string, time.Time, time.Time) (uint64, error) {
	return 0, nil
}

// cpuTime returns the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// warmState is a plausible week of history for one actor.
func warmState(i int, role string, lastSeen int64) *actorState {
	st := &actorState{Type: "human", Role: role, FirstSeen: 1, LastSeen: lastSeen, ActiveWindows: 2400, ActiveDays: 5, HowTot: 2400,
		Stores: []string{"crm", "orders"}, ResourceTypes: []string{"customer_profile", "order"},
		Categories: []string{"name", "email", "order_history"}, Countries: []string{"US"}, LastCountry: "US",
		RecMax: 40, SpanMax: 150}
	for k := 0; k < ringLen; k++ {
		st.Records.add(float64(3 + (i+k)%5))
		st.Subjects.add(float64(1 + (i+k)%3))
		st.Span.add(float64(60 + (i+k)%20))
		st.HourSubj.add(float64(8 + (i+k)%6))
	}
	for h := 0; h < 168; h++ {
		if h%24 >= 9 && h%24 < 17 && h/24 < 5 {
			st.How.add(h, 300, -1) // 60 windows of 5 records
			i, _ := st.How.index(h)
			st.How.Bins[i].N = 60
		}
	}
	return st
}

// BenchmarkDetectCycle measures one detection cycle (every window
// detector, learning and peer statistics) over 100,000 active actors
// (BENCH_ACTORS sets another count) whose aggregates are generated
// directly, and reports the time per cycle and the heap in use (the
// engine's state for every actor included): heap-MB as the runtime holds
// it after the cycles (garbage not yet collected included), live-MB after a
// collection.
func BenchmarkDetectCycle(b *testing.B) {
	actors := 100_000
	if v := os.Getenv("BENCH_ACTORS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("BENCH_ACTORS=%q: want a positive number of actors", v)
		}
		actors = n
	}
	start := time.Date(2026, 1, 6, 10, 0, 0, 0, time.UTC) // Tuesday, working hours
	rows := make([]store.WindowActivity, actors)
	roles := []string{"support-eu", "support-us", "billing", "fraud", "chat-assistant"}
	for i := range rows {
		rows[i] = store.WindowActivity{WindowStart: start, Tenant: "default", ActorID: fmt.Sprintf("actor-%06d", i),
			ActorType: "human", ActorRole: roles[i%len(roles)], Events: 4, Records: uint64(3 + i%6), Subjects: uint64(1 + i%3),
			Stores: []string{"crm"}, ResourceTypes: []string{"customer_profile"}, Categories: []string{"name", "email"},
			Countries: []string{"US"}}
		if i%1000 == 0 { // a few anomalies, so findings are built too
			rows[i].Records, rows[i].Subjects = 5000, 400
		}
	}
	agg := &benchAggregates{rows: rows}
	e, err := New(Config{}, agg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range rows {
		st := warmState(i, rows[i].ActorRole, start.Add(-time.Minute).Unix())
		e.sets.internAll(st) // as Restore does
		e.actors[actorKey{"default", rows[i].ActorID}] = st
	}
	e.recomputePeers()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime()
	b.ResetTimer()
	var findings int
	for n := 0; n < b.N; n++ {
		ws := start.Add(time.Duration(n) * time.Minute)
		for i := range rows {
			rows[i].WindowStart = ws
		}
		e.opt.Findings = func(_ context.Context, fs ...models.Finding) error {
			findings += len(fs)
			if n == 0 && testing.Verbose() {
				by := map[string]int{}
				for _, f := range fs {
					by[f.Detector]++
				}
				b.Logf("findings by detector: %v", by)
			}
			return nil
		}
		if err := e.evaluate(context.Background(), ws, ws.Add(time.Minute), rows, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	// CPU time (all threads, the collector's included) per cycle: on a
	// loaded machine the wall time per cycle says more about the load.
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/cycle")
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapInuse)/(1<<20), "heap-MB")
	runtime.GC()
	var live runtime.MemStats
	runtime.ReadMemStats(&live)
	b.ReportMetric(float64(live.HeapInuse)/(1<<20), "live-MB")
	runtime.KeepAlive(e)
	runtime.KeepAlive(rows)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "alloc-MB/cycle")
	b.ReportMetric(float64(after.Sys)/(1<<20), "sys-MB")
	b.ReportMetric(float64(findings)/float64(b.N), "findings/cycle")
	b.ReportMetric(float64(actors), "actors")
}
