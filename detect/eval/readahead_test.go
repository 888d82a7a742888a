package eval

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/store"
)

// fakeWindows is a windowSource whose rows are a function of the range
// asked; it records every read with the stored mark the test had set when
// the read started.
type fakeWindows struct {
	window time.Duration

	mu       sync.Mutex
	storedTo time.Time // every event before it is stored (the test's truth)
	reads    []fakeRead
	fail     int // the next fail reads fail
}

type fakeRead struct {
	kind     string
	from, to time.Time
	storedTo time.Time
}

func (f *fakeWindows) setStored(t time.Time) {
	f.mu.Lock()
	f.storedTo = t
	f.mu.Unlock()
}

func (f *fakeWindows) record(kind string, from, to time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, fakeRead{kind, from, to, f.storedTo})
	if f.fail > 0 {
		f.fail--
		return errors.New("read failed")
	}
	return nil
}

// rowsOf are the rows of [from, to): two actors in every window, one of
// them only in odd windows.
func (f *fakeWindows) rowsOf(from, to time.Time) []store.WindowActivity {
	var out []store.WindowActivity
	for ws := from; ws.Before(to); ws = ws.Add(f.window) {
		n := ws.Unix() / int64(f.window/time.Second)
		out = append(out, store.WindowActivity{WindowStart: ws, Tenant: "t1", ActorID: "a1", ActorType: "human",
			ActorRole: "support", Events: uint64(n%7 + 1), Records: uint64(n%5 + 1), Stores: []string{"crm"}})
		if n%2 == 1 {
			out = append(out, store.WindowActivity{WindowStart: ws, Tenant: "t1", ActorID: "a2", ActorType: "human",
				ActorRole: "support", Events: 3, Records: 3, Stores: []string{"orders"}})
		}
	}
	return out
}

func (f *fakeWindows) sharesOf(from, to time.Time) []store.DestinationActivity {
	var out []store.DestinationActivity
	for ws := from; ws.Before(to); ws = ws.Add(f.window) {
		out = append(out, store.DestinationActivity{WindowStart: ws, Tenant: "t1", ActorID: "a1", Destination: "acme-bpo", Events: 1, Records: 1})
	}
	return out
}

func (f *fakeWindows) WindowAggregates(_ context.Context, from, to time.Time, _ time.Duration, _ store.Shard) ([]store.WindowActivity, error) {
	if err := f.record("aggregates", from, to); err != nil {
		return nil, err
	}
	return f.rowsOf(from, to), nil
}

func (f *fakeWindows) DestinationWindows(_ context.Context, from, to time.Time, _ time.Duration, _ store.Shard) ([]store.DestinationActivity, error) {
	if err := f.record("shares", from, to); err != nil {
		return nil, err
	}
	return f.sharesOf(from, to), nil
}

// aheadAggregates is the engine's detect.Aggregates in the test: the
// read-ahead's window aggregates, each checked against the store's rows
// for the range asked.
type aheadAggregates struct {
	t     *testing.T
	ahead *readAhead
	f     *fakeWindows
	asked []fakeRead
}

func (x *aheadAggregates) WindowAggregates(ctx context.Context, from, to time.Time, window time.Duration, shard store.Shard) ([]store.WindowActivity, error) {
	x.asked = append(x.asked, fakeRead{kind: "aggregates", from: from, to: to})
	rows, err := x.ahead.windowAggregates(ctx, from, to, window, shard)
	if want := x.f.rowsOf(from, to); err == nil && !reflect.DeepEqual(rows, want) {
		x.t.Errorf("window aggregates %s..%s: got %d rows, the store's are %d (or differ)", from, to, len(rows), len(want))
	}
	return rows, err
}

func (x *aheadAggregates) RecentSubjects(context.Context, time.Time, time.Time, time.Time, store.Shard) ([]store.SubjectCounts, error) {
	return nil, nil
}

func (x *aheadAggregates) TopSubjects(context.Context, string, string, time.Time, time.Time, int) ([]string, error) {
	return nil, nil
}

func (x *aheadAggregates) SubjectsOutsideConversation(context.Context, string, string, time.Time, time.Time) (uint64, error) {
	return 0, nil
}

func (x *aheadAggregates) SubjectsRead(context.Context, string, string, time.Time, time.Time) (uint64, error) {
	return 0, nil
}

// TestReadAheadReadsOnlyWhatIsStored: a real engine Advancing in uneven
// steps (several batches in one step, none in another) gets exactly
// the rows and shares the store returns for every range it asks for, every
// one of them read ahead (the store is read once per range, never by the
// engine's own call); and no read starts before every event of its range
// is stored, although every step is planned up front and the stored mark
// moves a step ahead of the engine, as the replay's inserts run ahead of
// its detectors.
func TestReadAheadReadsOnlyWhatIsStored(t *testing.T) {
	w := 10 * time.Minute
	start := time.Date(2026, 3, 2, 9, 3, 17, 0, time.UTC)
	rng := rand.New(rand.NewPCG(3, 5))
	var nows []time.Time
	for now := start; now.Before(start.Add(5 * 24 * time.Hour)); {
		now = now.Add(time.Duration(1+rng.IntN(16*60)) * time.Minute).Add(time.Duration(rng.IntN(60)) * time.Second)
		nows = append(nows, now)
	}
	f := &fakeWindows{window: w}
	cfg := detect.Config{Window: w}.WithDefaults()
	span := 6 * time.Hour // several batches in a step of the replay's length
	ahead := newReadAhead(t.Context(), f, w, span, store.Shard{Index: cfg.Shard, Count: cfg.Shards}, nil)
	defer ahead.close()
	aggs := &aheadAggregates{t: t, ahead: ahead, f: f}
	var shares []fakeRead
	eng, err := detect.New(cfg, aggs, detect.Options{BatchSpan: span,
		Destinations: func(ctx context.Context, from, to time.Time, window time.Duration, shard store.Shard) ([]store.DestinationActivity, error) {
			shares = append(shares, fakeRead{kind: "shares", from: from, to: to})
			got, err := ahead.destinations(ctx, from, to, window, shard)
			if want := f.sharesOf(from, to); err == nil && !reflect.DeepEqual(got, want) {
				t.Errorf("shares %s..%s: got %d rows, the store's are %d (or differ)", from, to, len(got), len(want))
			}
			return got, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	eng.StartAt(start.Add(w))
	ahead.startAt(eng.Next())
	for _, now := range nows {
		ahead.plan(now)
	}
	for i, now := range nows {
		// the insert of the events up to now has returned
		f.setStored(now)
		ahead.stored(now)
		if i == 0 {
			continue
		}
		// give the reader time to run ahead of the stored mark, were it
		// not held back
		time.Sleep(time.Millisecond)
		if err := eng.Advance(t.Context(), nows[i-1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Advance(t.Context(), nows[len(nows)-1]); err != nil {
		t.Fatal(err)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.reads {
		if r.to.After(r.storedTo) {
			t.Errorf("%s %s..%s read when only the events before %s were stored", r.kind, r.from, r.to, r.storedTo)
		}
	}
	var want []fakeRead
	for i := range aggs.asked {
		want = append(want, aggs.asked[i], shares[i])
	}
	if len(aggs.asked) < len(nows)+10 || len(shares) != len(aggs.asked) {
		t.Fatalf("the engine asked for %d ranges of aggregates and %d of shares in %d steps; want more than a range a step, as many of each", len(aggs.asked), len(shares), len(nows))
	}
	var got []fakeRead
	for _, r := range f.reads {
		got = append(got, fakeRead{kind: r.kind, from: r.from, to: r.to})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the store read %d ranges, the engine asked for %d: each should be read once, ahead, in order", len(got), len(want))
		for i := range min(len(got), len(want), 8) {
			t.Logf("read %s %s..%s, asked %s %s..%s", got[i].kind, got[i].from.Format(time.RFC3339), got[i].to.Format(time.RFC3339),
				want[i].kind, want[i].from.Format(time.RFC3339), want[i].to.Format(time.RFC3339))
		}
	}
}

// TestReadAheadFallsBackToTheStore: a range not planned, one of another
// window length or shard, and a read ahead that failed are the store's own
// calls; planned ranges the engine skips are dropped unread.
func TestReadAheadFallsBackToTheStore(t *testing.T) {
	ctx := t.Context()
	w := 10 * time.Minute
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	f := &fakeWindows{window: w}
	ahead := newReadAhead(ctx, f, w, 6*time.Hour, store.Shard{}, nil)
	defer ahead.close()
	ahead.startAt(start.Add(w))
	// batches of 6 h after their first window: [0h, 6h10m) [6h10m,
	// 12h20m) [12h20m, 15h)
	ahead.plan(start.Add(15 * time.Hour))
	b1, b2 := start.Add(6*time.Hour+w), start.Add(12*time.Hour+2*w)
	count := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.reads)
	}

	// nothing stored: a planned range is the store's call, read now
	rows, err := ahead.windowAggregates(ctx, start, start.Add(time.Hour), w, store.Shard{})
	if err != nil || len(rows) != 9 || count() != 1 {
		t.Fatalf("an unplanned range: %d rows (%v), %d reads; want the store's 9 rows, 1 read", len(rows), err, count())
	}
	// another window length, another shard
	if _, err := ahead.windowAggregates(ctx, start, b1, 5*time.Minute, store.Shard{}); err != nil || count() != 2 {
		t.Fatalf("another window: %v, %d reads; want the store's call", err, count())
	}
	if _, err := ahead.windowAggregates(ctx, start, b1, w, store.Shard{Index: 1, Count: 2}); err != nil || count() != 3 {
		t.Fatalf("another shard: %v, %d reads; want the store's call", err, count())
	}
	// the first planned batch fails when read ahead: the store is asked
	// again when the engine asks
	f.mu.Lock()
	f.fail = 1
	f.mu.Unlock()
	ahead.stored(b1)
	rows, err = ahead.windowAggregates(ctx, start, b1, w, store.Shard{})
	if err != nil || !reflect.DeepEqual(rows, f.rowsOf(start, b1)) {
		t.Fatalf("a failed read ahead: %d rows (%v); want the store's", len(rows), err)
	}
	if _, err := ahead.destinations(ctx, start, b1, w, store.Shard{}); err != nil {
		t.Fatal(err)
	}
	// the engine skips [6h10m, 12h20m), not read yet: it is dropped
	// unread, and [12h20m, 15h) served once stored
	before := count()
	type result struct {
		rows []store.WindowActivity
		err  error
	}
	got := make(chan result, 1)
	go func() {
		rows, err := ahead.windowAggregates(ctx, b2, start.Add(15*time.Hour), w, store.Shard{})
		got <- result{rows, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for taken := false; !taken; {
		if time.Now().After(deadline) {
			t.Fatal("[12h20m, 15h) is not the one batch left to read ahead once the engine asked for it")
		}
		time.Sleep(time.Millisecond)
		ahead.mu.Lock()
		taken = len(ahead.todo) == 1 && ahead.todo[0].from.Equal(b2)
		ahead.mu.Unlock()
	}
	ahead.stored(start.Add(15 * time.Hour))
	r := <-got
	if r.err != nil || !reflect.DeepEqual(r.rows, f.rowsOf(b2, start.Add(15*time.Hour))) {
		t.Fatalf("[12h20m, 15h): %d rows (%v); want the store's", len(r.rows), r.err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.reads[before:] {
		if !r.from.Equal(b2) {
			t.Errorf("%s %s..%s read; want only [12h20m, 15h) read ahead", r.kind, r.from, r.to)
		}
	}
}
