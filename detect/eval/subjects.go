package eval

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatwarden/chatwarden/store"
)

// subjectIndex is the replay's detect.Aggregates: the store's, except that
// the distinct customers per actor of the last hour and of the day so far
// (RecentSubjects, asked every EnumEvery of simulated time: 144 times a
// simulated day at the defaults, each merging the day's per-minute states
// again), and the customers one actor read (SubjectsRead) or read outside
// their own conversation (SubjectsOutsideConversation) in such a range (the
// enumeration checks confirm an unusual count with them, one query each),
// are counted from each actor's customers per bucket of EnumEvery, read
// with store.SubjectBuckets as the replay's events are stored. The counts
// are the same (the same rows and conditions as the store's queries;
// TestSubjectIndexAgreesWithStore compares them); a range that is not made
// of whole buckets, a sharded engine or a range the index does not hold
// falls back to the store's own query.
//
// The buckets are read ahead: once startAt has anchored the index, a
// goroutine reads the buckets of each range as soon as stored says every
// event of it is stored, while the detectors evaluate the windows before
// it; the detectors merge the rows in when they first need them (waiting
// for a read in flight). Without startAt (or past what is stored) they are
// read on demand, up to ready.
type subjectIndex struct {
	*store.Store

	bucket int64 // seconds
	// sharded is set when the engine evaluates one shard of the actors:
	// the index is not used.
	sharded bool

	// ready is the time before which every event is stored: the replay
	// sets it before each Advance; the index reads on demand up to it.
	ready time.Time

	anchored bool
	from, to int64 // the merged range [from, to), Unix seconds, whole buckets
	actors   map[subjectActor]*actorSubjects
	// order is actors' values in (tenant, actor) order, the order
	// RecentSubjects answers in (sorted again only when unsorted says an
	// actor was added: each query sorting its answer cost more than the
	// union of the hour).
	order    []*actorSubjects
	unsorted bool
	// marked holds, by an actor's number for a customer
	// (bucketSubject.n), the stamp of the union it was last counted in,
	// stamp the current union's: hashing each customer's id into a set
	// per actor and query cost more than the rest of RecentSubjects.
	marked []uint32
	stamp  uint32

	// mu guards the reads ahead: storedTo (every event before it is
	// stored, Unix seconds), readTo (the end of the reads issued, whole
	// buckets: to plus the ranges of reads) and reads (issued, not merged
	// yet, in time order).
	mu       sync.Mutex
	storedTo int64
	readTo   int64
	reads    []*bucketRead
	wake     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{} // closed when the reader has stopped

	// buckets is the read: the store's SubjectBuckets (tests wrap it).
	buckets func(ctx context.Context, from, to time.Time, bucket time.Duration, shard store.Shard) ([]store.SubjectBuckets, error)

	// times, when set, adds up the time of the store calls.
	times *storeTimes
	// ahead, when set, serves the window aggregates (see readAhead).
	ahead *readAhead
	// evidence, when set, serves the evidence reads it holds (see
	// evidenceIndex).
	evidence *evidenceIndex
	// needRaw is set once a read failed with store.ErrNoRawEvents
	// (noteRaw).
	needRaw atomic.Bool
}

// bucketRead is one read ahead of the buckets [from, to).
type bucketRead struct {
	from, to int64
	done     chan struct{} // closed once rows and err are set
	rows     []store.SubjectBuckets
	err      error
}

type subjectActor struct{ tenant, actor string }

// actorSubjects are one actor's customers per bucket, and for one day start
// the bucket in which each customer first appears from that start on.
type actorSubjects struct {
	key      subjectActor
	byBucket map[int64][]bucketSubject
	// last is the latest bucket with a customer (0: none): an actor idle
	// since before a range has no customer in it, with no look-up.
	last   int64
	day    int64   // the day start firsts are for (-1: none)
	firsts []int64 // sorted
	// ids numbers the actor's customers (bucketSubject.n), and dayOf, by
	// number, is day if the customer is in firsts (else older or -1).
	// The numbers are kept until the actor is pruned: a replay's
	// customers are those of its file.
	ids   map[string]int32
	dayOf []int64
}

// bucketSubject is a customer an actor touched in a bucket: whether it
// read the customer's data there (a result other than denied), and
// whether it did outside the customer's own conversation.
type bucketSubject struct {
	n             int32 // the actor's number for the customer (actorSubjects.ids)
	read, outside bool
}

func newSubjectIndex(s *store.Store, every time.Duration) *subjectIndex {
	x := &subjectIndex{Store: s, bucket: int64(every / time.Second), actors: map[subjectActor]*actorSubjects{},
		wake: make(chan struct{}, 1)}
	if s != nil {
		x.buckets = s.SubjectBuckets
	}
	return x
}

// usable reports whether the index serves the engine at all.
func (x *subjectIndex) usable() bool { return !x.sharded && x.bucket >= 60 }

// startAt anchors the index at from (no query it serves starts before it:
// the day of the replay's first event) and starts the reader, which reads
// the buckets from there on as stored marks them stored; close stops it.
func (x *subjectIndex) startAt(ctx context.Context, from time.Time) {
	if !x.usable() || x.anchored {
		return
	}
	f := from.Unix() / x.bucket * x.bucket
	x.anchor(f)
	ctx, x.cancel = context.WithCancel(ctx)
	x.done = make(chan struct{})
	go x.read(ctx)
}

// anchor sets the start of the merged range.
func (x *subjectIndex) anchor(from int64) {
	x.mu.Lock()
	x.anchored = true
	x.from, x.to, x.readTo = from, from, from
	x.mu.Unlock()
}

// close stops the reader and waits for it (a no-op if none was started).
func (x *subjectIndex) close() {
	if x.cancel == nil {
		return
	}
	x.cancel()
	<-x.done
}

// stored notes that every event before t is stored: the reader may read
// the whole buckets before t.
func (x *subjectIndex) stored(t time.Time) {
	x.mu.Lock()
	x.storedTo = max(x.storedTo, t.Unix())
	x.mu.Unlock()
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// read is the reader: it reads the whole buckets from readTo to what is
// stored, in time order, until ctx ends.
func (x *subjectIndex) read(ctx context.Context) {
	defer close(x.done)
	for {
		r := x.nextRead()
		if r == nil {
			select {
			case <-x.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		t0 := x.times.now()
		r.rows, r.err = x.buckets(ctx, time.Unix(r.from, 0), time.Unix(r.to, 0), time.Duration(x.bucket)*time.Second, store.Shard{})
		x.times.since("subject buckets read ahead", t0)
		close(r.done)
	}
}

// nextRead issues the read of the whole buckets from readTo up to
// storedTo, or returns nil if there are none. This is the reader's one
// guard against reading a range before every event of it is stored.
func (x *subjectIndex) nextRead() *bucketRead {
	x.mu.Lock()
	defer x.mu.Unlock()
	to := x.storedTo / x.bucket * x.bucket
	if to <= x.readTo {
		return nil
	}
	r := &bucketRead{from: x.readTo, to: to, done: make(chan struct{})}
	x.readTo = to
	x.reads = append(x.reads, r)
	return r
}

// fill merges the buckets up to t (whole buckets, every event before it
// stored) into the index: the reads ahead first, in order (waiting for
// one in flight), then, if they end before t, a read of [to, upTo) here.
func (x *subjectIndex) fill(ctx context.Context, t, upTo int64) error {
	for x.to < t {
		x.mu.Lock()
		if len(x.reads) > 0 {
			// the first read stays queued until merged: the reads after
			// it start where it ends
			r := x.reads[0]
			x.mu.Unlock()
			t0 := x.times.now()
			select {
			case <-r.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			rows, err := r.rows, r.err
			if err != nil {
				// read again here: the reader's context may have ended
				// before ours, or the server failed once
				rows, err = x.buckets(ctx, time.Unix(r.from, 0), time.Unix(r.to, 0), time.Duration(x.bucket)*time.Second, store.Shard{})
			}
			x.times.since("subject buckets", t0)
			if err != nil {
				return x.noteRaw(err)
			}
			x.mu.Lock()
			x.reads = x.reads[1:]
			x.mu.Unlock()
			r.rows = nil
			x.merge(rows, r.to)
			continue
		}
		// nothing read ahead up to t: read it here (claimed, so that the
		// reader goes on after it)
		from := x.to
		x.readTo = upTo
		x.mu.Unlock()
		t0 := x.times.now()
		rows, err := x.buckets(ctx, time.Unix(from, 0), time.Unix(upTo, 0), time.Duration(x.bucket)*time.Second, store.Shard{})
		x.times.since("subject buckets", t0)
		if err != nil {
			x.mu.Lock()
			x.readTo = from // nothing merged: read it again next time
			x.mu.Unlock()
			return x.noteRaw(err)
		}
		x.merge(rows, upTo)
	}
	return nil
}

// cover makes the index hold [lo, t) (whole buckets, every event before t
// stored), reading what it lacks; false if it cannot (lo is before what it
// holds).
func (x *subjectIndex) cover(ctx context.Context, lo, t int64) (bool, error) {
	if !x.anchored {
		x.anchor(lo)
	}
	if lo < x.from {
		return false, nil
	}
	if t > x.to {
		// read ahead to what is stored, in whole buckets
		upTo := max(t, x.ready.Unix()/x.bucket*x.bucket)
		if err := x.fill(ctx, t, upTo); err != nil {
			return false, err
		}
	}
	if lo-x.from >= 2*86400 {
		x.prune(lo)
	}
	return true, nil
}

// whole reports whether the index may answer for [from, to): whole
// buckets, every event before to stored.
func (x *subjectIndex) whole(from, to time.Time) bool {
	b := x.bucket
	return x.usable() && from.Unix()%b == 0 && to.Unix()%b == 0 && !to.After(x.ready)
}

// RecentSubjects implements detect.Aggregates.
func (x *subjectIndex) RecentSubjects(ctx context.Context, hourFrom, dayFrom, to time.Time, shard store.Shard) ([]store.SubjectCounts, error) {
	hf, df, t := hourFrom.Unix(), dayFrom.Unix(), to.Unix()
	b := x.bucket
	ok := shard.Count <= 1 && x.whole(hourFrom, to) && x.whole(dayFrom, to)
	if ok {
		var err error
		if ok, err = x.cover(ctx, min(hf, df), t); err != nil {
			return nil, err
		}
	}
	if !ok {
		defer x.times.since("recent subjects", x.times.now())
		return x.Store.RecentSubjects(ctx, hourFrom, dayFrom, to, shard)
	}
	if x.unsorted {
		slices.SortFunc(x.order, func(p, q *actorSubjects) int {
			if p.key.tenant != q.key.tenant {
				return compareStrings(p.key.tenant, q.key.tenant)
			}
			return compareStrings(p.key.actor, q.key.actor)
		})
		x.unsorted = false
	}
	var out []store.SubjectCounts
	for _, a := range x.order {
		if a.last < min(hf, df) {
			continue // no customer in the hour nor the day
		}
		day := 0
		if a.last >= df {
			if a.day != df {
				a.rebuild(df)
			}
			day = sort.Search(len(a.firsts), func(i int) bool { return a.firsts[i] >= t })
		}
		hour := 0
		if a.last >= hf {
			x.union()
			for bk := hf; bk < t && bk <= a.last; bk += b {
				hour += x.mark(a.byBucket[bk], false, false)
			}
		}
		if hour > 0 || day > 0 {
			out = append(out, store.SubjectCounts{Tenant: a.key.tenant, ActorID: a.key.actor, Hour: uint64(hour), Day: uint64(day)})
		}
	}
	return out, nil
}

// union starts a new union of customers (see mark).
func (x *subjectIndex) union() {
	x.stamp++
	if x.stamp == 0 { // wrapped: no number may look marked
		clear(x.marked)
		x.stamp = 1
	}
}

// mark adds the customers of ss to the current union (read: only those
// whose data was read; outside: only those read outside their own
// conversation) and returns how many were new to it.
func (x *subjectIndex) mark(ss []bucketSubject, read, outside bool) int {
	n := 0
	for _, s := range ss {
		if (read && !s.read) || (outside && !s.outside) {
			continue
		}
		if x.marked[s.n] != x.stamp {
			x.marked[s.n] = x.stamp
			n++
		}
	}
	return n
}

// SubjectsRead implements detect.Aggregates: from the index when it holds
// [from, to), else the store's.
func (x *subjectIndex) SubjectsRead(ctx context.Context, tenant, actor string, from, to time.Time) (uint64, error) {
	defer x.times.since("customers read", x.times.now())
	if n, ok := x.count(tenant, actor, from, to, false); ok {
		return n, nil
	}
	n, err := x.Store.SubjectsRead(ctx, tenant, actor, from, to)
	return n, x.noteRaw(err)
}

// SubjectsOutsideConversation implements detect.Aggregates: from the
// index when it holds [from, to), else the store's.
func (x *subjectIndex) SubjectsOutsideConversation(ctx context.Context, tenant, actor string, from, to time.Time) (uint64, error) {
	defer x.times.since("outside conversation", x.times.now())
	if n, ok := x.count(tenant, actor, from, to, true); ok {
		return n, nil
	}
	n, err := x.Store.SubjectsOutsideConversation(ctx, tenant, actor, from, to)
	return n, x.noteRaw(err)
}

// noteRaw returns err, and notes when it is store.ErrNoRawEvents (a read
// the database cannot answer, as it keeps no raw events) so that the
// replay stops and starts again on one that does (needsRaw), even if the
// engine only logs the error.
func (x *subjectIndex) noteRaw(err error) error {
	if errors.Is(err, store.ErrNoRawEvents) {
		x.needRaw.Store(true)
	}
	return err
}

// needsRaw returns store.ErrNoRawEvents if a read failed with it.
func (x *subjectIndex) needsRaw() error {
	if x.needRaw.Load() {
		return fmt.Errorf("the replay read what only raw events answer: %w", store.ErrNoRawEvents)
	}
	return nil
}

// count is the distinct customers actor read (outside: outside their own
// conversation) in [from, to), if the index holds the range (it does not
// read: RecentSubjects, which the enumeration checks follow, has).
func (x *subjectIndex) count(tenant, actor string, from, to time.Time, outside bool) (uint64, bool) {
	f, t := from.Unix(), to.Unix()
	if !x.anchored || !x.whole(from, to) || f < x.from || t > x.to {
		return 0, false
	}
	a := x.actors[subjectActor{tenant, actor}]
	if a == nil {
		return 0, true
	}
	x.union()
	n := 0
	for bk := f; bk < t && bk <= a.last; bk += x.bucket {
		n += x.mark(a.byBucket[bk], true, outside)
	}
	return uint64(n), true
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// merge adds the rows of the buckets from to up to end (those merged
// before come first).
func (x *subjectIndex) merge(rows []store.SubjectBuckets, end int64) {
	touched := map[*actorSubjects]int{}
	for i := range rows {
		r := &rows[i]
		k := subjectActor{r.Tenant, r.ActorID}
		a := x.actors[k]
		if a == nil {
			a = &actorSubjects{key: k, byBucket: map[int64][]bucketSubject{}, day: -1, ids: map[string]int32{}}
			x.actors[k] = a
			x.order = append(x.order, a)
			x.unsorted = true
		}
		n, ok := a.ids[r.SubjectID]
		if !ok {
			n = int32(len(a.dayOf))
			a.ids[r.SubjectID] = n
			a.dayOf = append(a.dayOf, -1)
			if len(x.marked) < len(a.dayOf) {
				x.marked = append(x.marked, 0)
			}
		}
		if _, ok := touched[a]; !ok {
			touched[a] = len(a.firsts)
		}
		slices.Sort(r.ReadBuckets)
		slices.Sort(r.OutsideBuckets)
		first := int64(-1)
		for _, bk := range r.Buckets {
			_, read := slices.BinarySearch(r.ReadBuckets, bk)
			_, outside := slices.BinarySearch(r.OutsideBuckets, bk)
			bk := int64(bk)
			a.byBucket[bk] = append(a.byBucket[bk], bucketSubject{n: n, read: read, outside: outside})
			if first < 0 || bk < first {
				first = bk
			}
			a.last = max(a.last, bk)
		}
		// The rows of [to, end) come after every bucket merged before, so
		// a customer new to the day keeps its place once its firsts are
		// sorted.
		if a.day >= 0 && first >= a.day {
			if a.dayOf[n] != a.day {
				a.dayOf[n] = a.day
				a.firsts = append(a.firsts, first)
			}
		}
	}
	for a, n := range touched {
		slices.Sort(a.firsts[n:])
	}
	x.to = end
}

// rebuild recomputes the first buckets from day start df on.
func (a *actorSubjects) rebuild(df int64) {
	a.day = df
	for i := range a.dayOf {
		a.dayOf[i] = -1 // none in firsts, whatever day they were for
	}
	a.firsts = a.firsts[:0]
	keys := make([]int64, 0, len(a.byBucket))
	for bk := range a.byBucket {
		if bk >= df {
			keys = append(keys, bk)
		}
	}
	slices.Sort(keys)
	for _, bk := range keys {
		for _, s := range a.byBucket[bk] {
			if a.dayOf[s.n] != df {
				a.dayOf[s.n] = df
				a.firsts = append(a.firsts, bk)
			}
		}
	}
}

// prune forgets the buckets before lo.
func (x *subjectIndex) prune(lo int64) {
	for k, a := range x.actors {
		for bk := range a.byBucket {
			if bk < lo {
				delete(a.byBucket, bk)
			}
		}
		if len(a.byBucket) == 0 {
			delete(x.actors, k)
			a.byBucket = nil // dropped from order below
			continue
		}
		if a.day < lo {
			a.day = -1
		}
	}
	x.order = slices.DeleteFunc(x.order, func(a *actorSubjects) bool { return a.byBucket == nil })
	x.from = lo
}
