package eval

import (
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// evidenceKeep is how far before the time the detectors last advanced to
// the evidence index keeps each actor's events: the next Advance evaluates
// windows from about then on (the engine reopens up to an hour of windows
// before it), and an enumeration finding's range starts at most a day
// before its window's end (the day so far). A range starting earlier is
// read from the store.
const evidenceKeep = 26 * time.Hour

// evidenceIndex answers the evidence reads (detect.Aggregates.TopSubjects:
// the customers an actor touched most in a finding's range, about 540 a
// replay of the eval scenario, each a query of raw events costing
// ClickHouse a few milliseconds of CPU and the client a round trip) from
// the events the replay itself inserts: each actor's events that name a
// customer, in time order, as (second, customer) pairs. The customer
// strings are the pseudonym cache's (hashCache), shared with the events,
// not copied. It answers a range only when it holds every event of it
// (fed and not pruned) and every one of them is stored, so that the answer
// is the one the store gives for the range then; otherwise it leaves the
// read to the store (ok false from top).
//
// Its answer is store.TopSubjectsSQL's: the events of tenant and actor
// with from <= ts < to (ts the event time in whole seconds, as the events
// table's DateTime holds it) that name a customer (subject_id not empty), whatever
// their result, counted per customer; the n most counted, ties in the
// customers' byte order (ClickHouse compares String bytewise, as Go does).
// TestEvidenceIndexAgreesWithStore compares the two.
//
// The replay feeds it (add) on its detect loop, prunes it there (prune)
// and marks what is stored from its insert goroutine (stored); the engine
// reads it (top) from up to evidenceReads goroutines of its own while the
// replay does all of that: mu guards it all.
type evidenceIndex struct {
	mu sync.RWMutex
	// actors are each actor's events from keepFrom on.
	actors map[subjectActor]*actorEvents
	// fedTo: every event before it (Unix seconds) has been added;
	// storedTo: every event before it is stored; keepFrom: no event at
	// or after it has been pruned.
	fedTo, storedTo, keepFrom int64
	// broken is set when an event could not be held as the store holds
	// it (a time outside DateTime's range, or out of time order): the
	// index answers nothing from then on.
	broken bool
}

// actorEvents are one actor's events that name a customer, in time order:
// ts[i] (Unix seconds) and subject[i] are the i-th.
type actorEvents struct {
	ts      []uint32
	subject []string
}

func newEvidenceIndex() *evidenceIndex {
	return &evidenceIndex{actors: map[subjectActor]*actorEvents{}, keepFrom: math.MinInt64}
}

// add adds evs, the events that follow every event added before (in time
// order, as the replay's chunks are), and notes that every event before
// fedTo has been added (the chunk's last event's time: a chunk may end in
// the middle of a second).
func (x *evidenceIndex) add(evs []models.Event, fedTo time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var last *actorEvents
	var lastKey subjectActor
	for i := range evs {
		e := &evs[i]
		if e.SubjectID == "" {
			continue // TopSubjectsSQL: subject_id != ''
		}
		sec := e.TS.Unix()
		if sec < 0 || sec > math.MaxUint32 || sec < x.fedTo {
			// not a DateTime, or not after what was added: the index
			// cannot tell which range holds it as the store does
			x.broken = true
			continue
		}
		if last == nil || lastKey.actor != e.Actor.ID || lastKey.tenant != e.Tenant {
			lastKey = subjectActor{e.Tenant, e.Actor.ID}
			last = x.actors[lastKey]
			if last == nil {
				last = &actorEvents{}
				x.actors[lastKey] = last
			}
		}
		if n := len(last.ts); n > 0 && last.ts[n-1] > uint32(sec) {
			x.broken = true
			continue
		}
		last.ts = append(last.ts, uint32(sec))
		last.subject = append(last.subject, e.SubjectID)
	}
	x.fedTo = max(x.fedTo, fedTo.Unix())
}

// stored notes that every event before t is stored.
func (x *evidenceIndex) stored(t time.Time) {
	x.mu.Lock()
	x.storedTo = max(x.storedTo, t.Unix())
	x.mu.Unlock()
}

// prune forgets the events before from (no read it answers starts
// earlier; those that do are the store's).
func (x *evidenceIndex) prune(from time.Time) {
	f := from.Unix()
	x.mu.Lock()
	defer x.mu.Unlock()
	if f <= x.keepFrom {
		return
	}
	x.keepFrom = f
	if f < 0 {
		return // every time held is after it
	}
	for k, a := range x.actors {
		i := lowerBound(a.ts, f)
		if i == len(a.ts) {
			delete(x.actors, k)
			continue
		}
		// the arrays are reallocated, without the pruned events, as
		// the slices grow again
		a.ts, a.subject = a.ts[i:], a.subject[i:]
	}
}

// lowerBound is the index of the first of ts (sorted) at or after t.
func lowerBound(ts []uint32, t int64) int {
	switch {
	case t <= 0:
		return 0
	case t > math.MaxUint32:
		return len(ts)
	}
	return sort.Search(len(ts), func(i int) bool { return ts[i] >= uint32(t) })
}

// subjectCount is one customer's events in a range.
type subjectCount struct {
	id string
	n  int
}

// top returns the n customers tenant's actor touched most in [from, to),
// as store.TopSubjects does, and true; or false if the index does not hold
// every event of the range, or not every one is stored yet.
func (x *evidenceIndex) top(tenant, actor string, from, to time.Time, n int) ([]string, bool) {
	if n < 0 || from.Nanosecond() != 0 || to.Nanosecond() != 0 {
		// a LIMIT the query would wrap, or a time it binds with a
		// fraction: the store's
		return nil, false
	}
	f, t := from.Unix(), to.Unix()
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.broken || f < x.keepFrom || t > x.fedTo || t > x.storedTo {
		return nil, false
	}
	a := x.actors[subjectActor{tenant, actor}]
	if a == nil || n == 0 || f >= t {
		return nil, true
	}
	lo, hi := lowerBound(a.ts, f), lowerBound(a.ts, t)
	if lo >= hi {
		return nil, true
	}
	counts := make(map[string]int, min(hi-lo, 64))
	for _, s := range a.subject[lo:hi] {
		counts[s]++
	}
	cs := make([]subjectCount, 0, len(counts))
	for id, c := range counts {
		cs = append(cs, subjectCount{id, c})
	}
	slices.SortFunc(cs, func(p, q subjectCount) int {
		if p.n != q.n {
			return q.n - p.n // ORDER BY n DESC
		}
		return strings.Compare(p.id, q.id) // then subject_id, bytewise
	})
	out := make([]string, 0, min(n, len(cs)))
	for _, c := range cs[:min(n, len(cs))] {
		out = append(out, c.id)
	}
	return out, true
}
