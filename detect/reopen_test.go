package detect

import (
	"bytes"
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// heldAggregates serves the fixture without a1's rows in the held windows
// (by window index) until they are released: their events are still in a
// producer's outage buffer, or in Kafka behind a restart.
type heldAggregates struct {
	*fixture
	held map[int64]bool
}

func (h *heldAggregates) WindowAggregates(ctx context.Context, from, to time.Time, w time.Duration, s store.Shard) ([]store.WindowActivity, error) {
	rows, err := h.fixture.WindowAggregates(ctx, from, to, w, s)
	var out []store.WindowActivity
	for _, r := range rows {
		if r.ActorID == "a1" && h.held[int64(r.WindowStart.Sub(h.start)/w)] {
			continue
		}
		out = append(out, r)
	}
	return out, err
}

// reopenFixture is the volume spike of TestWatermarkHoldsWindowsDuringLag:
// a1 (support, about 5 records a minute) pulls 900 records in the window
// with index spike, on the fifth day.
func reopenFixture(t *testing.T) (fx *heldAggregates, spike int64) {
	four := days(4, workday(normal))
	fx = &heldAggregates{fixture: parseFixture(t, monday, team(four+" "+workday(normal), four+" "+workday("(5*100 900 5*379)"))),
		held: map[int64]bool{}}
	return fx, 4*1440 + 540 + 100
}

// windowAt is the start of the fixture window with index i.
func windowAt(i int64) time.Time { return monday.Add(time.Duration(i) * time.Minute) }

// lateEvent is one event of a1 stored late, in window i.
func lateEvent(i int64) models.Event {
	return models.Event{EventID: "late", TS: windowAt(i).Add(10 * time.Second), Tenant: "default", Actor: models.Actor{ID: "a1"}}
}

// findingLog collects "detector actor window-start" of every finding sent.
type findingLog []string

func (l *findingLog) sink(_ context.Context, fs ...models.Finding) error {
	for _, f := range fs {
		*l = append(*l, f.Detector+" "+f.ActorID+" "+f.WindowStart.Format("15:04"))
	}
	return nil
}

func (l findingLog) count(s string) int {
	n := 0
	for _, x := range l {
		if x == s {
			n++
		}
	}
	return n
}

func (l findingLog) about(actor string) []string {
	var out []string
	for _, x := range l {
		if strings.Contains(x, " "+actor+" ") {
			out = append(out, x)
		}
	}
	return out
}

// TestLateEventsReopenTheirWindow (issue 10 item 6): a1's volume spike is
// stored 20 minutes after its window was evaluated (the producer buffered
// it; ingest had no lag, so the watermark held nothing back). Before, the
// late events were only counted and the spike was never judged; now they
// re-open the window: it is evaluated again for a1, the spike fires once,
// and a second late arrival for the same window raises nothing twice.
func TestLateEventsReopenTheirWindow(t *testing.T) {
	fx, spike := reopenFixture(t)
	fx.held[spike] = true
	var got findingLog
	e, err := New(Config{}, fx, Options{Findings: got.sink})
	if err != nil {
		t.Fatal(err)
	}
	e.StartAt(monday.Add(time.Minute))
	now := windowAt(spike + 21)
	if err := e.Advance(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	want := "volume_spike a1 " + windowAt(spike).Format("15:04")
	if got.count(want) != 0 {
		t.Fatalf("the spike fired while its events were held: %v", got.about("a1"))
	}
	// The buffered events arrive and are stored: ingest's observer notes them.
	delete(fx.held, spike)
	e.NoteEvents([]models.Event{lateEvent(spike)})
	if n := testutil.ToFloat64(e.metrics.late); n != 1 {
		t.Errorf("chatwarden_detect_late_events_total %v, want 1", n)
	}
	now = now.Add(time.Minute)
	if err := e.Advance(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	if got.count(want) != 1 {
		t.Fatalf("%q fired %d times after the late events were stored, want once; a1's findings %v", want, got.count(want), got.about("a1"))
	}
	if n := testutil.ToFloat64(e.metrics.reopened); n != 1 {
		t.Errorf("chatwarden_detect_windows_reopened_total %v, want 1", n)
	}
	// More late events of the same window: re-opened again, nothing twice.
	before := len(got.about("a1"))
	e.NoteEvents([]models.Event{lateEvent(spike)})
	now = now.Add(time.Minute)
	if err := e.Advance(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	if after := got.about("a1"); len(after) != before {
		t.Errorf("the second re-open of the window raised %v again (before %d findings)", after[before:], before)
	}
	if n := testutil.ToFloat64(e.metrics.reopened); n != 2 {
		t.Errorf("chatwarden_detect_windows_reopened_total %v, want 2", n)
	}
}

// TestReopenBounded: a late event re-opens its window only within
// detect.reopen_windows of the last window evaluated (older ones are
// counted in chatwarden_detect_late_events_unreopened_total), and at most
// detect.reopen_per_cycle re-opened windows are evaluated per cycle, the
// oldest first; the rest wait for the next cycle.
func TestReopenBounded(t *testing.T) {
	fx, spike := reopenFixture(t)
	for _, i := range []int64{spike - 8, spike - 1, spike} {
		fx.held[i] = true
	}
	var got findingLog
	e, err := New(Config{ReopenWindows: 5, ReopenPerCycle: 1}, fx, Options{Findings: got.sink})
	if err != nil {
		t.Fatal(err)
	}
	e.StartAt(monday.Add(time.Minute))
	now := windowAt(spike + 2) // the spike's window is the second-last evaluated
	if err := e.Advance(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	clear(fx.held)
	e.NoteEvents([]models.Event{lateEvent(spike - 8), lateEvent(spike), lateEvent(spike - 1)})
	if n := testutil.ToFloat64(e.metrics.unreopened); n != 1 {
		t.Errorf("chatwarden_detect_late_events_unreopened_total %v, want 1 (the event 8 windows back)", n)
	}
	want := "volume_spike a1 " + windowAt(spike).Format("15:04")
	for cycle, wantReopened := range []float64{1, 2, 2} {
		now = now.Add(time.Minute)
		if err := e.Advance(t.Context(), now); err != nil {
			t.Fatal(err)
		}
		if n := testutil.ToFloat64(e.metrics.reopened); n != wantReopened {
			t.Errorf("after cycle %d: %v windows re-opened, want %v", cycle+1, n, wantReopened)
		}
		if fired, wantFired := got.count(want), int(wantReopened)-1; fired != wantFired {
			t.Errorf("after cycle %d: %q fired %d times, want %d", cycle+1, want, fired, wantFired)
		}
	}
}

// TestBacklogLearnedAtStartIsReopened: serve restarts behind a backlog.
// Its start-up back-fill learns (without findings) windows whose events
// ingest stored while it ran: those events are noted as late, and the
// first cycle re-opens their windows, so the spike in the backlog fires.
func TestBacklogLearnedAtStartIsReopened(t *testing.T) {
	fx, spike := reopenFixture(t)
	var got findingLog
	e, err := New(Config{}, fx, Options{Findings: got.sink})
	if err != nil {
		t.Fatal(err)
	}
	// Ingest stores the backlog (the spike among it) while detection starts.
	e.NoteEvents([]models.Event{lateEvent(spike), lateEvent(spike + 30)})
	now := windowAt(spike + 10)
	if err := e.Start(t.Context(), nil, now); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("the back-fill raised findings: %v", got)
	}
	if err := e.Advance(t.Context(), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	want := "volume_spike a1 " + windowAt(spike).Format("15:04")
	if got.count(want) != 1 {
		t.Errorf("%q fired %d times, want once; a1's findings %v", want, got.count(want), got.about("a1"))
	}
	// The event after the back-fill's end was not late: its window is
	// evaluated as usual, not re-opened.
	if n := testutil.ToFloat64(e.metrics.late); n != 1 {
		t.Errorf("chatwarden_detect_late_events_total %v, want 1", n)
	}
}

func TestReopenConfigValidated(t *testing.T) {
	for _, tc := range []struct {
		c     Config
		field string
	}{
		{Config{ReopenWindows: -2}, "detect.reopen_windows"},
		{Config{ReopenWindows: 1441}, "detect.reopen_windows"},
		{Config{ReopenPerCycle: -1}, "detect.reopen_per_cycle"},
		{Config{ReopenPerCycle: 1001}, "detect.reopen_per_cycle"},
	} {
		err := tc.c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: %v, want an error naming %s", tc.c, err, tc.field)
		}
	}
	for _, c := range []Config{{ReopenWindows: -1}, {ReopenWindows: 1440, ReopenPerCycle: 1000}} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// TestReopenLeavesBaselinesAlone: judging a re-opened window is
// detect-only. Two engines see the same data; one also gets a1's late
// events and re-opens the spike's window (the spike fires): afterwards
// both hold the same baselines, byte for byte.
func TestReopenLeavesBaselinesAlone(t *testing.T) {
	// one actor at a time, in key order: gob writes a map in its
	// iteration order, which differs from run to run
	actors := func(e *Engine) []byte {
		keys := slices.SortedFunc(maps.Keys(e.actors), func(a, b actorKey) int {
			return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Actor, b.Actor))
		})
		var out []byte
		for _, k := range keys {
			b, err := encodeSnapshot(&snapshot{Actors: map[actorKey]*actorState{k: e.actors[k]}})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
		return out
	}
	var engines [2]*Engine
	var got findingLog
	for i := range engines {
		fx, spike := reopenFixture(t)
		fx.held[spike] = true
		sink := (&findingLog{}).sink
		if i == 1 {
			sink = got.sink
		}
		e, err := New(Config{}, fx, Options{Findings: sink})
		if err != nil {
			t.Fatal(err)
		}
		e.StartAt(monday.Add(time.Minute))
		now := windowAt(spike + 21)
		if err := e.Advance(t.Context(), now); err != nil {
			t.Fatal(err)
		}
		delete(fx.held, spike)
		if i == 1 {
			e.NoteEvents([]models.Event{lateEvent(spike)})
		}
		if err := e.Advance(t.Context(), now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		engines[i] = e
	}
	if len(got.about("a1")) == 0 {
		t.Fatal("the re-opened window raised nothing: the test proves nothing")
	}
	if !bytes.Equal(actors(engines[0]), actors(engines[1])) {
		t.Error("re-opening a window changed the baselines")
	}
}

// TestReopenAfterRestartRaisesNothingTwice (issue 10 item 13): the findings
// raised for a window are remembered by the engine that raised them; after
// a restart, late events re-opening that window must not raise them again
// (a second row in the findings table, the actor's risk counted twice).
// The restarted engine asks Options.Raised, the findings table, what the
// window already has.
func TestReopenAfterRestartRaisesNothingTwice(t *testing.T) {
	fx, spike := reopenFixture(t)
	var got findingLog
	var stored []store.StoredFinding
	opts := Options{Findings: got.sink,
		Stored: func(_ context.Context, fs []store.StoredFinding) error { stored = append(stored, fs...); return nil },
		Raised: func(_ context.Context, end time.Time) ([]store.FindingKey, error) {
			var out []store.FindingKey
			for _, f := range stored {
				if f.WindowEnd.Equal(end) {
					out = append(out, store.FindingKey{Detector: f.Detector, Tenant: f.Tenant, ActorID: f.ActorID})
				}
			}
			return out, nil
		}}
	e, err := New(Config{}, fx, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.StartAt(monday.Add(time.Minute))
	now := windowAt(spike + 5)
	if err := e.Advance(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	want := "volume_spike a1 " + windowAt(spike).Format("15:04")
	if got.count(want) != 1 {
		t.Fatalf("%q fired %d times before the restart, want once; a1's findings %v", want, got.count(want), got.about("a1"))
	}
	// Restart while more of the spike window's events are still in
	// Kafka: ingest stores them as the new engine starts (its back-fill
	// leaves the window unlearned for a1 and re-opens it at the first
	// cycle).
	e2, err := New(Config{}, fx, opts)
	if err != nil {
		t.Fatal(err)
	}
	e2.NoteEvents([]models.Event{lateEvent(spike)})
	if err := e2.Start(t.Context(), nil, now); err != nil {
		t.Fatal(err)
	}
	if err := e2.Advance(t.Context(), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(e2.metrics.reopened); n != 1 {
		t.Errorf("chatwarden_detect_windows_reopened_total %v, want 1", n)
	}
	if got.count(want) != 1 {
		t.Errorf("%q fired %d times after the restart's re-open, want once; a1's findings %v", want, got.count(want), got.about("a1"))
	}
}
