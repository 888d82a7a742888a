package eval

import (
	"context"
	"sync"
	"time"

	"github.com/chatwarden/chatwarden/store"
)

// replayBatchSpan is the engine's BatchSpan in a replay, which the
// read-ahead plans batches of: a day, where detect's default is 6 h. The
// batches are read ahead, while the detectors evaluate the ones before, so
// the span only sets how many queries read the same windows, and fewer,
// larger ones cost ClickHouse less: a day of the eval scenario's 1-minute
// windows read in one query took 1.23-1.39 s of server CPU a day where four
// of 6 h took 1.49-1.52 s (they read half as many rows again: each query
// reads whole granules at both ends). An Advance's batch is never longer
// than the time it advances over (a chunk's, about 10 h in the scenario).
const replayBatchSpan = 24 * time.Hour

// windowSource is what the read-ahead reads: *store.Store.
type windowSource interface {
	WindowAggregates(ctx context.Context, from, to time.Time, window time.Duration, shard store.Shard) ([]store.WindowActivity, error)
	DestinationWindows(ctx context.Context, from, to time.Time, window time.Duration, shard store.Shard) ([]store.DestinationActivity, error)
}

// readAhead takes the detectors' window reads off the replay's critical
// path. Engine.Advance reads the window aggregates and the shares of its
// windows in batches of at most BatchSpan, then evaluates them; the replay
// knows every time it will Advance to (the last event of each chunk but the
// last) before the detectors get there, and when each group's INSERT has
// finished. So the read-ahead plans the batches the engine will ask for (the
// engine's own batching, from its next window on: plan), and a goroutine
// reads each batch as soon as every event of its range is stored (stored),
// while the detectors still evaluate the batches before it. When Advance
// asks for a planned range, it gets the rows read ahead (waiting for the
// read if it is in flight); any other range, a different window or shard,
// or a read ahead that failed is the store's own call.
//
// The rows are what the store returns for the range when Advance asks: a
// batch is read only once every event before its end is stored (the replay
// stores events in time order, and nothing it stores later falls in a range
// already stored), by the same call with the same arguments.
type readAhead struct {
	src    windowSource
	window time.Duration
	span   time.Duration // the engine's BatchSpan
	shard  store.Shard   // the engine's shard
	times  *storeTimes

	mu sync.Mutex
	// next is the end of the first window the next planned batch holds
	// (the engine's next window once it has evaluated every batch planned
	// so far); zero until startAt.
	next time.Time
	// storedTo is the bound every read waits for: every event before it
	// is stored.
	storedTo time.Time
	// queue holds the planned batches not served yet, in the order the
	// engine asks for them; todo those of them not read yet.
	queue, todo []*aheadBatch
	wake        chan struct{} // a plan or a stored mark for the reader

	cancel context.CancelFunc
	done   chan struct{} // closed when the reader has stopped
}

// aheadBatch is one planned batch: the windows ending in (from, to], read
// as [from, to).
type aheadBatch struct {
	from, to time.Time
	ready    chan struct{} // closed once both reads are done (or given up)

	rows         []store.WindowActivity
	rowsErr      error
	rowsServed   bool
	shares       []store.DestinationActivity
	sharesErr    error
	sharesServed bool
}

// newReadAhead starts the reader of src for windows of length window,
// batches of span and the engine's shard; close stops it.
func newReadAhead(ctx context.Context, src windowSource, window, span time.Duration, shard store.Shard, times *storeTimes) *readAhead {
	ctx, cancel := context.WithCancel(ctx)
	a := &readAhead{src: src, window: window, span: span, shard: shard, times: times,
		wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go a.read(ctx)
	return a
}

// close stops the reader and waits for it: no read of the read-ahead runs
// once it returns.
func (a *readAhead) close() {
	a.cancel()
	<-a.done
}

// startAt sets the engine's next window end (Engine.Next after StartAt):
// planning starts from it.
func (a *readAhead) startAt(next time.Time) {
	a.mu.Lock()
	a.next = next.UTC()
	a.mu.Unlock()
}

// plan adds the batches the engine's next Advance(now) will read, as
// Engine.Advance batches them: from its next window on, as many whole
// windows ending at or before now as fit in span (the first window, then
// each next while its end is at most span after the first's). Calls must
// come in the order of the engine's Advance calls.
func (a *readAhead) plan(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next.IsZero() {
		return
	}
	w := a.window
	for !a.next.After(now) {
		last := a.next
		for !last.Add(w).After(now) && last.Add(w).Sub(a.next) <= a.span {
			last = last.Add(w)
		}
		b := &aheadBatch{from: a.next.Add(-w), to: last, ready: make(chan struct{})}
		a.queue = append(a.queue, b)
		a.todo = append(a.todo, b)
		a.next = last.Add(w)
	}
	a.poke()
}

// stored notes that every event before t is stored (an INSERT of every
// event before t has returned): the reads of the batches ending at or
// before t may start.
func (a *readAhead) stored(t time.Time) {
	a.mu.Lock()
	if t.After(a.storedTo) {
		a.storedTo = t
	}
	a.mu.Unlock()
	a.poke()
}

// poke wakes the reader (without blocking: one wake-up pending is enough).
func (a *readAhead) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// read is the reader: it reads the planned batches in order, each once its
// range is stored, until ctx ends.
func (a *readAhead) read(ctx context.Context) {
	defer close(a.done)
	defer func() {
		// give up the batches not read: whoever waits for one falls back
		// to the store
		a.mu.Lock()
		for _, b := range a.todo {
			b.rowsErr, b.sharesErr = ctx.Err(), ctx.Err()
			close(b.ready)
		}
		a.todo = nil
		a.mu.Unlock()
	}()
	for {
		b := a.nextStored()
		if b == nil {
			select {
			case <-a.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		t0 := a.times.now()
		b.rows, b.rowsErr = a.src.WindowAggregates(ctx, b.from, b.to, a.window, a.shard)
		a.times.since("window aggregates read ahead", t0)
		t1 := a.times.now()
		b.shares, b.sharesErr = a.src.DestinationWindows(ctx, b.from, b.to, a.window, a.shard)
		a.times.since("destinations read ahead", t1)
		close(b.ready)
	}
}

// nextStored takes the first batch not read yet off todo if every event of
// its range is stored (its end is at or before storedTo), else returns nil.
// This is the read-ahead's one guard against reading a range too early.
func (a *readAhead) nextStored() *aheadBatch {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.todo) == 0 || a.todo[0].to.After(a.storedTo) {
		return nil
	}
	b := a.todo[0]
	a.todo = a.todo[1:]
	return b
}

// take returns the planned batch [from, to) for the engine's window and
// shard, marking its rows (shares: its shares) served, or nil. Planned
// batches before it were not asked for (the engine's calls left the plan):
// they are dropped, read or not.
func (a *readAhead) take(from, to time.Time, window time.Duration, shard store.Shard, shares bool) *aheadBatch {
	if window != a.window || shard != a.shard {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, b := range a.queue {
		if !b.from.Equal(from) || !b.to.Equal(to) || (shares && b.sharesServed) || (!shares && b.rowsServed) {
			continue
		}
		if shares {
			b.sharesServed = true
		} else {
			b.rowsServed = true
		}
		for _, old := range a.queue[:i] {
			a.drop(old)
		}
		a.queue = a.queue[i:]
		if b.rowsServed && b.sharesServed {
			a.queue = a.queue[1:]
		}
		return b
	}
	return nil
}

// drop takes batch b off todo (not read if not read yet).
func (a *readAhead) drop(b *aheadBatch) {
	for i, t := range a.todo {
		if t == b {
			a.todo = append(a.todo[:i], a.todo[i+1:]...)
			close(b.ready)
			return
		}
	}
}

// windowAggregates is the engine's WindowAggregates: the rows read ahead
// for a planned range, else the store's. Its time is the time the
// detectors waited ("window aggregates"); the reads themselves are timed
// as "window aggregates read ahead".
func (a *readAhead) windowAggregates(ctx context.Context, from, to time.Time, window time.Duration, shard store.Shard) ([]store.WindowActivity, error) {
	defer a.times.since("window aggregates", a.times.now())
	if b := a.take(from, to, window, shard, false); b != nil {
		if a.wait(ctx, b) && b.rowsErr == nil {
			rows := b.rows
			b.rows = nil // the engine's now
			return rows, nil
		}
	}
	return a.src.WindowAggregates(ctx, from, to, window, shard)
}

// destinations is the engine's Destinations: windowAggregates' twin for
// the shares.
func (a *readAhead) destinations(ctx context.Context, from, to time.Time, window time.Duration, shard store.Shard) ([]store.DestinationActivity, error) {
	defer a.times.since("destinations", a.times.now())
	if b := a.take(from, to, window, shard, true); b != nil {
		if a.wait(ctx, b) && b.sharesErr == nil {
			shares := b.shares
			b.shares = nil
			return shares, nil
		}
	}
	return a.src.DestinationWindows(ctx, from, to, window, shard)
}

// wait waits for b's reads; false if ctx ended first.
func (a *readAhead) wait(ctx context.Context, b *aheadBatch) bool {
	select {
	case <-b.ready:
		return true
	case <-ctx.Done():
		return false
	}
}
