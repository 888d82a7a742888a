package eval

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/chatwarden/chatwarden/store"
)

// storeTimes adds up the wall time a replay spends waiting on each kind of
// store call, so that its progress output shows where a replay's time goes
// (the detectors' reads run while the next chunk is inserted).
type storeTimes struct {
	clock func() time.Time
	mu    sync.Mutex
	calls map[string]*callTime
}

type callTime struct {
	n int
	d time.Duration
}

// timedCalls lists the calls storeTimes reports, in the order it reports
// them: first what the replay waits for, then what runs beside it ("read
// ahead", "in the background").
var timedCalls = []string{"insert", "window aggregates", "recent subjects", "subject buckets",
	"outside conversation", "customers read", "destinations", "findings stored in the background",
	"window aggregates read ahead", "destinations read ahead", "subject buckets read ahead", "evidence in the background", "evidence from the store"}

func newStoreTimes(clock func() time.Time) *storeTimes {
	return &storeTimes{clock: clock, calls: map[string]*callTime{}}
}

// since adds the time since t0 to the call name; it is a no-op on nil.
func (st *storeTimes) since(name string, t0 time.Time) {
	if st == nil {
		return
	}
	d := st.clock().Sub(t0)
	st.mu.Lock()
	c := st.calls[name]
	if c == nil {
		c = &callTime{}
		st.calls[name] = c
	}
	c.n++
	c.d += d
	st.mu.Unlock()
}

// now is the clock's time (the zero time on nil).
func (st *storeTimes) now() time.Time {
	if st == nil {
		return time.Time{}
	}
	return st.clock()
}

// String lists each call made: "insert 17.9s (5), window aggregates 7.6s (22), ...".
func (st *storeTimes) String() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	var parts []string
	for _, name := range timedCalls {
		if c := st.calls[name]; c != nil {
			parts = append(parts, fmt.Sprintf("%s %.1fs (%d)", name, c.d.Seconds(), c.n))
		}
	}
	return strings.Join(parts, ", ")
}

// WindowAggregates implements detect.Aggregates: the rows read ahead
// (readAhead; timed there), else the store's (timed).
func (x *subjectIndex) WindowAggregates(ctx context.Context, from, to time.Time, window time.Duration, shard store.Shard) ([]store.WindowActivity, error) {
	if x.ahead != nil {
		rows, err := x.ahead.windowAggregates(ctx, from, to, window, shard)
		return rows, x.noteRaw(err)
	}
	defer x.times.since("window aggregates", x.times.now())
	rows, err := x.Store.WindowAggregates(ctx, from, to, window, shard)
	return rows, x.noteRaw(err)
}

// TopSubjects implements detect.Aggregates: from the evidence index when
// it holds the range, else the store's (timed, also as "evidence from the
// store"). The engine reads evidence in the background, up to 4 reads at
// once, so the time reported is the reads' own, overlapping one another
// and the detectors, not time the detect loop waited.
func (x *subjectIndex) TopSubjects(ctx context.Context, tenant, actor string, from, to time.Time, n int) ([]string, error) {
	t0 := x.times.now()
	defer x.times.since("evidence in the background", t0)
	if x.evidence != nil {
		if subs, ok := x.evidence.top(tenant, actor, from, to, n); ok {
			return subs, nil
		}
	}
	defer x.times.since("evidence from the store", t0)
	subs, err := x.Store.TopSubjects(ctx, tenant, actor, from, to, n)
	return subs, x.noteRaw(err)
}
