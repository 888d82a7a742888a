package detect

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// streamEvents are n of a1's events of records each, stored at window
// i's start plus at, with distinct customers named prefix-0, prefix-1, ...
// (none when prefix is empty).
func streamEvents(i int64, at time.Duration, n int, records uint64, prefix string) []models.Event {
	evs := make([]models.Event, n)
	for j := range evs {
		evs[j] = models.Event{EventID: fmt.Sprintf("s-%d-%s-%d", i, at, j), TS: windowAt(i).Add(at), Tenant: "default",
			Actor: models.Actor{ID: "a1", Type: models.ActorHuman, Role: "support"}, Records: records}
		if prefix != "" {
			evs[j].SubjectID = fmt.Sprintf("%s-%d", prefix, j)
		}
	}
	return evs
}

// sentFindings collects the findings sent, retractions included.
type sentFindings []models.Finding

func (l *sentFindings) sink(_ context.Context, fs ...models.Finding) error {
	*l = append(*l, fs...)
	return nil
}

// of returns the findings of detector about a1 in the window starting at start.
func (l sentFindings) of(detector string, start time.Time) []models.Finding {
	var out []models.Finding
	for _, f := range l {
		if f.Detector == detector && f.ActorID == "a1" && f.WindowStart.Equal(start) {
			out = append(out, f)
		}
	}
	return out
}

// TestOpenWindowBeyondTheBarFiresBeforeItCloses (issue 12): a1 (support,
// about 5 records a minute) starts pulling records 5 s into a window. The
// records stored so far are judged every stream_every against the same bar
// as the window's volume check: 15 records are below it (nothing), 615 at
// 10 s are beyond it, and volume_spike fires then, on the open window,
// before it closes; more events in the window raise nothing twice. When
// the window closes, its own finding (900 records) confirms the early one:
// the same fingerprint (alerting folds it into the one alert, see
// alert.TestOpenWindowFindingThenWindowIsOneAlert), no retraction, and the
// window's counts are dropped.
func TestOpenWindowBeyondTheBarFiresBeforeItCloses(t *testing.T) {
	fx, spike := reopenFixture(t)
	var got sentFindings
	e, err := New(Config{}, fx, Options{Findings: got.sink})
	if err != nil {
		t.Fatal(err)
	}
	e.StartAt(monday.Add(time.Minute))
	start := windowAt(spike)
	if err := e.Advance(t.Context(), start); err != nil {
		t.Fatal(err)
	}
	if n := len(got.of(DetVolumeSpike, start)); n != 0 {
		t.Fatalf("the spike's window fired before any of its events: %v", got)
	}
	e.NoteEvents(streamEvents(spike, 5*time.Second, 3, 5, ""))
	if err := e.Stream(t.Context(), start.Add(6*time.Second)); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("15 records so far (below the bar) fired: %+v", got)
	}
	e.NoteEvents(streamEvents(spike, 10*time.Second, 20, 30, ""))
	detected := start.Add(11 * time.Second)
	if err := e.Stream(t.Context(), detected); err != nil {
		t.Fatal(err)
	}
	early := got.of(DetVolumeSpike, start)
	if len(early) != 1 {
		t.Fatalf("615 records 10 s into the window: %d volume_spike findings, want 1 (all sent: %+v)", len(early), got)
	}
	f := early[0]
	if !f.OpenWindow || !f.DetectedAt.Equal(detected) || !f.WindowEnd.Equal(start.Add(11*time.Second)) ||
		f.Evidence.Observed != 615 || f.Retract {
		t.Errorf("early finding: open %v detected %v window %v..%v observed %v retract %v; want open at %v, window to %v, 615 records",
			f.OpenWindow, f.DetectedAt, f.WindowStart, f.WindowEnd, f.Evidence.Observed, f.Retract, detected, start.Add(11*time.Second))
	}
	if f.Fingerprint() != models.Fingerprint(DetVolumeSpike, "default", "a1") {
		t.Errorf("early finding's fingerprint %s is not the actor's volume_spike fingerprint", f.Fingerprint())
	}
	e.NoteEvents(streamEvents(spike, 20*time.Second, 5, 30, ""))
	if err := e.Stream(t.Context(), start.Add(21*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := len(got.of(DetVolumeSpike, start)); n != 1 {
		t.Errorf("more records in the same open window: %d findings, want still 1", n)
	}
	if err := e.Advance(t.Context(), start.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	all := got.of(DetVolumeSpike, start)
	if len(all) != 2 || all[1].OpenWindow || all[1].Retract || !all[1].WindowEnd.Equal(start.Add(time.Minute)) {
		t.Fatalf("after the window closed: %+v, want the early finding then the window's own", all)
	}
	if all[1].Fingerprint() != f.Fingerprint() {
		t.Errorf("the window's finding has fingerprint %s, the early one %s: two alerts", all[1].Fingerprint(), f.Fingerprint())
	}
	for name, c := range map[string]float64{
		"chatwarden_detect_stream_findings_total":    testutil.ToFloat64(e.metrics.streamFindings.WithLabelValues(DetVolumeSpike)),
		"chatwarden_detect_stream_confirmed_total":   testutil.ToFloat64(e.metrics.streamConfirmed.WithLabelValues(DetVolumeSpike)),
		"chatwarden_detect_stream_unconfirmed_total": 1 - testutil.ToFloat64(e.metrics.streamUnconfirmed.WithLabelValues(DetVolumeSpike)),
	} {
		if c != 1 {
			t.Errorf("%s{detector=volume_spike}: want 1 (0 unconfirmed), got %v", name, c)
		}
	}
	if n := testutil.ToFloat64(e.metrics.streamActors); n != 0 {
		t.Errorf("chatwarden_detect_stream_actors %v after the window closed, want 0", n)
	}
	// A late event re-opens the window: the finding raised early is not
	// raised a third time.
	e.NoteEvents([]models.Event{lateEvent(spike)})
	if err := e.Advance(t.Context(), start.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := len(got.of(DetVolumeSpike, start)); n != 2 {
		t.Errorf("the re-opened window raised volume_spike again: %d findings", n)
	}
}

// TestOpenWindowNotConfirmedIsRetracted: enumeration fires on the open
// window (40 distinct customers 10 s in, against a1's none), but the
// window's evaluation does not raise it (here the closed window's
// aggregate holds none of those events): a retraction is sent for it, so
// that alerting closes the alert the early finding opened.
func TestOpenWindowNotConfirmedIsRetracted(t *testing.T) {
	fx, spike := reopenFixture(t)
	var got sentFindings
	e, err := New(Config{}, fx, Options{Findings: got.sink})
	if err != nil {
		t.Fatal(err)
	}
	e.StartAt(monday.Add(time.Minute))
	start := windowAt(spike - 30) // an ordinary window of a1's
	if err := e.Advance(t.Context(), start); err != nil {
		t.Fatal(err)
	}
	e.NoteEvents(streamEvents(spike-30, 10*time.Second, 40, 1, "cust"))
	if err := e.Stream(t.Context(), start.Add(12*time.Second)); err != nil {
		t.Fatal(err)
	}
	early := got.of(DetEnumeration, start)
	if len(early) != 1 || !early[0].OpenWindow || early[0].Evidence.Observed != 40 {
		t.Fatalf("enumeration on the open window: %+v, want one finding of 40 customers", early)
	}
	if err := e.Advance(t.Context(), start.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	all := got.of(DetEnumeration, start)
	if len(all) != 2 || !all[1].Retract || !all[1].WindowEnd.Equal(early[0].WindowEnd) || all[1].Fingerprint() != early[0].Fingerprint() {
		t.Fatalf("after the window closed without confirming it: %+v, want the early finding then its retraction", all)
	}
	if n := testutil.ToFloat64(e.metrics.streamUnconfirmed.WithLabelValues(DetEnumeration)); n != 1 {
		t.Errorf("chatwarden_detect_stream_unconfirmed_total{detector=enumeration} %v, want 1", n)
	}
}

// TestStreamCountsBounded: counts are kept for at most stream_max_actors
// (actor, open window) pairs (the rest counted as dropped events, as are
// events more than streamHorizon windows ahead) and distinct customers up
// to stream_max_subjects; nothing is kept with streaming off, for late
// events, or before detection started.
func TestStreamCountsBounded(t *testing.T) {
	fx, spike := reopenFixture(t)
	e, err := New(Config{StreamMaxActors: 2, StreamMaxSubjects: 5}, fx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.NoteEvents(streamEvents(spike, time.Second, 3, 1, "c"))
	if e.open.n != 0 {
		t.Fatalf("%d counts held before detection started", e.open.n)
	}
	e.StartAt(monday.Add(time.Minute))
	if err := e.Advance(t.Context(), windowAt(spike)); err != nil {
		t.Fatal(err)
	}
	evs := streamEvents(spike, time.Second, 12, 1, "c")                // a1: 12 customers
	evs = append(evs, streamEvents(spike+1, time.Second, 1, 1, "")...) // a1 in the next window
	other := streamEvents(spike, 2*time.Second, 4, 1, "")
	for i := range other {
		other[i].Actor.ID = "a9" // a third pair: over the bound
	}
	evs = append(evs, other...)
	evs = append(evs, lateEvent(spike-3))
	evs = append(evs, streamEvents(spike+streamHorizon+1, time.Second, 1, 1, "")...) // a clock far ahead
	e.NoteEvents(evs)
	if n := testutil.ToFloat64(e.metrics.streamDropped); n != 5 {
		t.Errorf("chatwarden_detect_stream_dropped_events_total %v, want a9's 4 and the one far ahead", n)
	}
	rows := e.takeOpen(e.closed.Load())
	if len(rows) != 2 || rows[0].row.Subjects != 5 || rows[0].row.Records != 12 || rows[1].row.Records != 1 {
		t.Errorf("open counts %+v, want a1's two windows, the first capped at 5 customers and 12 records", rows)
	}
	if len(e.takeOpen(e.closed.Load())) != 0 {
		t.Errorf("counts taken twice without new events")
	}
	off, err := New(Config{StreamEvery: -1}, fx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	off.StartAt(monday.Add(time.Minute))
	if err := off.Advance(t.Context(), windowAt(spike)); err != nil {
		t.Fatal(err)
	}
	off.NoteEvents(streamEvents(spike, time.Second, 3, 1000, ""))
	if off.open.n != 0 {
		t.Errorf("streaming off: %d counts held", off.open.n)
	}
}

func TestStreamConfigValidated(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string
	}{
		{"every too short", Config{StreamEvery: time.Millisecond}, "detect.stream_every"},
		{"every longer than the window", Config{StreamEvery: 2 * time.Minute}, "detect.stream_every"},
		{"actors", Config{StreamMaxActors: -1}, "detect.stream_max_actors"},
		{"subjects", Config{StreamMaxSubjects: MaxStreamSubjects + 1}, "detect.stream_max_subjects"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Validate() = %v, want an error naming %s", err, tc.field)
			}
		})
	}
	if err := (Config{StreamEvery: -1}).Validate(); err != nil {
		t.Errorf("stream_every -1 (off): %v", err)
	}
}

// TestStreamCountsOnlyTheShardsActors: an engine of shard 0 of 2 counts
// the open-window events of the actors store.Shard.Owns gives it, not the
// other shard's, with either shard key (one server's, a cluster's).
func TestStreamCountsOnlyTheShardsActors(t *testing.T) {
	for _, key := range []store.ShardKey{store.ShardByActor, store.ShardByTenantActor} {
		t.Run(fmt.Sprintf("key %d", key), func(t *testing.T) {
			fx, spike := reopenFixture(t)
			e, err := New(Config{Shard: 0, Shards: 2}, fx, Options{ShardKey: key})
			if err != nil {
				t.Fatal(err)
			}
			e.StartAt(monday.Add(time.Minute))
			if err := e.Advance(t.Context(), windowAt(spike)); err != nil {
				t.Fatal(err)
			}
			var evs []models.Event
			want := map[string]bool{}
			for i := range 20 {
				ev := streamEvents(spike, time.Second, 1, 1, "")[0]
				ev.Actor.ID = fmt.Sprintf("agent-%d", i)
				evs = append(evs, ev)
				want[ev.Actor.ID] = (store.Shard{Index: 0, Count: 2, Key: key}).Owns(ev.Tenant, ev.Actor.ID)
			}
			e.NoteEvents(evs)
			got := map[string]bool{}
			for _, r := range e.takeOpen(e.closed.Load()) {
				got[r.row.ActorID] = true
			}
			n := 0
			for a, owned := range want {
				if got[a] != owned {
					t.Errorf("%s: counted %v, owned by shard 0 %v", a, got[a], owned)
				}
				if owned {
					n++
				}
			}
			if n == 0 || n == len(want) {
				t.Fatalf("the fixture's actors all fall in one shard (%d of %d): pick others", n, len(want))
			}
		})
	}
}

// TestStreamAtCloseLeavesWindowVerdictsAlone: judging each window as
// streaming would have on its open window (Options.StreamAtClose, what
// eval replays) changes none of the window detectors' findings; on the
// hard negatives it raises nothing, on a one-window attack it fires (a
// sustained rise over a rolling span is the closed window's to see), and
// every finding it raises its window confirms (no retraction).
func TestStreamAtCloseLeavesWindowVerdictsAlone(t *testing.T) {
	four := days(4, workday(normal))
	for _, tc := range []struct {
		name, fixture string
		kind          string // "window": a one-window attack; "span": a rolling-span one; "negative"
	}{
		{"volume spike on one window", team(four+" "+workday(normal), four+" "+workday("(5*100 900 5*379)")), "window"},
		{"enumeration in one window", team(four+" "+workday(normal), four+" "+workday(normal)) +
			"actor=a1 role=support subjects: " + days(4, workday("(1 2)*240")) + " " + workday("(1 2)*50 90 (1 2)*214 1") + "\n", "window"},
		{"a new account's first quarter hour", team(four+" "+workday(normal), four+" "+workday(normal)) +
			"actor=h1 role=support records: " + days(4, "-*1440") + " " + workday("5*100 80*15 5*365") + "\n", "span"},
		{"hard negative: promotion day doubles everyone", team(four+" "+workday(double), four+" "+workday(double)), "negative"},
		{"hard negative: new hire", team(four+" "+workday(normal), four+" "+workday(normal)) +
			"actor=h1 role=support records: " + days(4, "-*1440") + " " + workday(normal) + "\n", "negative"},
		{"hard negative: month-end batch job", "actor=svc type=service role=etl records: (-*120 (2000 1800 2200)*20 -*1260)*4 -*120 (6000 5400 6600)*20 -*1260\n" +
			"actor=svc type=service role=etl subjects: (-*120 (200 180 220)*20 -*1260)*4 -*120 (600 540 660)*20 -*1260\n", "negative"},
		{"hard negative: a marketer's largest segment pull", marketers(days(5, workday("1*120 200 1*119 1*60 300 1*59 1*60 250 1*59")) + " " +
			workday("1*120 600 1*359")), "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(streamAtClose bool) (window, open []string, retracted int) {
				fx := parseFixture(t, monday, tc.fixture)
				var got sentFindings
				e, err := New(Config{}, fx, Options{Findings: got.sink, StreamAtClose: streamAtClose})
				if err != nil {
					t.Fatal(err)
				}
				e.StartAt(monday.Add(time.Minute))
				end := monday.Add(time.Duration(fx.last+1) * time.Minute).Truncate(time.Hour).Add(time.Hour)
				if err := e.Advance(t.Context(), end); err != nil {
					t.Fatal(err)
				}
				for _, f := range got {
					k := f.Detector + " " + f.ActorID + " " + f.WindowStart.Format("Mon 15:04")
					switch {
					case f.Retract:
						retracted++
					case f.OpenWindow:
						open = append(open, k)
					default:
						window = append(window, k)
					}
				}
				return window, open, retracted
			}
			before, _, _ := run(false)
			after, open, retracted := run(true)
			if !slices.Equal(before, after) {
				t.Errorf("window findings changed:\n without %v\n with    %v", before, after)
			}
			if tc.kind == "negative" && len(open) > 0 {
				t.Errorf("hard negative: open-window findings %v", open)
			}
			if tc.kind == "window" && len(open) == 0 {
				t.Errorf("one-window attack: no open-window finding (window findings %v)", after)
			}
			for _, k := range open {
				if !slices.Contains(after, k) {
					t.Errorf("open-window finding %s not confirmed by its window", k)
				}
			}
			if retracted > 0 {
				t.Errorf("%d retractions", retracted)
			}
		})
	}
}
