package eval

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/chatwarden/chatwarden/store"
)

// subjectIndex is the replay's detect.Aggregates: the store's, except that
// the distinct customers per actor of the last hour and of the day so far
// (RecentSubjects, asked every EnumEvery of simulated time: 144 times a
// simulated day at the defaults, each merging the day's per-minute states
// again) are counted from each actor's customers per bucket of EnumEvery,
// read once per replayed chunk with store.SubjectBuckets. The counts are the
// same (both count the distinct non-empty subject_id of the actor's events
// in the range; TestSubjectIndexAgreesWithStore compares them); a range
// that is not made of whole buckets, a sharded engine or a range the index
// cannot hold falls back to the store's own query.
type subjectIndex struct {
	*store.Store

	bucket int64 // seconds

	// ready is the time before which every event is stored: the replay
	// sets it before each Advance; the index reads ahead up to it.
	ready time.Time

	from, to int64 // the loaded range [from, to), Unix seconds, whole buckets
	actors   map[subjectActor]*actorSubjects
	seen     map[string]struct{} // scratch for the hour's union

	// times, when set, adds up the time of the store calls.
	times *storeTimes
	// ahead, when set, serves the window aggregates (see readAhead).
	ahead *readAhead
}

type subjectActor struct{ tenant, actor string }

// actorSubjects are one actor's customers per bucket, and for one day start
// the bucket in which each customer first appears from that start on.
type actorSubjects struct {
	byBucket map[int64][]string
	day      int64 // the day start first/firsts are for (-1: none)
	first    map[string]struct{}
	firsts   []int64 // sorted
}

func newSubjectIndex(s *store.Store, every time.Duration) *subjectIndex {
	return &subjectIndex{Store: s, bucket: int64(every / time.Second), actors: map[subjectActor]*actorSubjects{},
		seen: map[string]struct{}{}}
}

// RecentSubjects implements detect.Aggregates.
func (x *subjectIndex) RecentSubjects(ctx context.Context, hourFrom, dayFrom, to time.Time, shard store.Shard) ([]store.SubjectCounts, error) {
	hf, df, t := hourFrom.Unix(), dayFrom.Unix(), to.Unix()
	b := x.bucket
	if shard.Count > 1 || b < 60 || hf%b != 0 || df%b != 0 || t%b != 0 || to.After(x.ready) {
		defer x.times.since("recent subjects", x.times.now())
		return x.Store.RecentSubjects(ctx, hourFrom, dayFrom, to, shard)
	}
	lo := min(hf, df)
	if lo < x.from || lo > x.to {
		clear(x.actors)
		x.from, x.to = lo, lo
	}
	if t > x.to {
		// Read ahead to what is stored, in whole buckets.
		upTo := max(t, x.ready.Unix()/b*b)
		if err := x.load(ctx, x.to, upTo); err != nil {
			return nil, err
		}
	}
	if lo-x.from >= 2*86400 {
		x.prune(lo)
	}
	var out []store.SubjectCounts
	for k, a := range x.actors {
		if a.day != df {
			a.rebuild(df)
		}
		day := sort.Search(len(a.firsts), func(i int) bool { return a.firsts[i] >= t })
		clear(x.seen)
		for bk := hf; bk < t; bk += b {
			for _, s := range a.byBucket[bk] {
				x.seen[s] = struct{}{}
			}
		}
		if hour := len(x.seen); hour > 0 || day > 0 {
			out = append(out, store.SubjectCounts{Tenant: k.tenant, ActorID: k.actor, Hour: uint64(hour), Day: uint64(day)})
		}
	}
	slices.SortFunc(out, func(p, q store.SubjectCounts) int {
		if p.Tenant != q.Tenant {
			return compareStrings(p.Tenant, q.Tenant)
		}
		return compareStrings(p.ActorID, q.ActorID)
	})
	return out, nil
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

// load adds the customers per bucket of [from, to) (after those loaded).
func (x *subjectIndex) load(ctx context.Context, from, to int64) error {
	t0 := x.times.now()
	rows, err := x.SubjectBuckets(ctx, time.Unix(from, 0), time.Unix(to, 0), time.Duration(x.bucket)*time.Second, store.Shard{})
	x.times.since("subject buckets", t0)
	if err != nil {
		return err
	}
	touched := map[*actorSubjects]int{}
	for i := range rows {
		r := &rows[i]
		k := subjectActor{r.Tenant, r.ActorID}
		a := x.actors[k]
		if a == nil {
			a = &actorSubjects{byBucket: map[int64][]string{}, day: -1}
			x.actors[k] = a
		}
		if _, ok := touched[a]; !ok {
			touched[a] = len(a.firsts)
		}
		first := int64(-1)
		for _, bk := range r.Buckets {
			bk := int64(bk)
			a.byBucket[bk] = append(a.byBucket[bk], r.SubjectID)
			if first < 0 || bk < first {
				first = bk
			}
		}
		// The rows of [from, to) come after every bucket loaded before, so a
		// customer new to the day keeps its place once its firsts are sorted.
		if a.day >= 0 && first >= a.day {
			if _, ok := a.first[r.SubjectID]; !ok {
				a.first[r.SubjectID] = struct{}{}
				a.firsts = append(a.firsts, first)
			}
		}
	}
	for a, n := range touched {
		slices.Sort(a.firsts[n:])
	}
	x.to = to
	return nil
}

// rebuild recomputes the first buckets from day start df on.
func (a *actorSubjects) rebuild(df int64) {
	a.day = df
	a.first = map[string]struct{}{}
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
			if _, ok := a.first[s]; !ok {
				a.first[s] = struct{}{}
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
			continue
		}
		if a.day < lo {
			a.day = -1
		}
	}
	x.from = lo
}
