package eval

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestSubjectIndexAgreesWithStore: the replay's distinct customers per actor
// of the last hour and of the day so far, counted from the customers per
// bucket read once per step of the stored time, are the store's own
// RecentSubjects at every 10 minutes of two and a half days (across
// midnights, with a quiet night, customers shared between actors and events
// without a customer), as the stored time advances in uneven steps the way a
// replay's chunks do; and the customers one actor read, and read outside
// their own conversation, in the last hour and the day so far are the
// store's SubjectsRead and SubjectsOutsideConversation (with refused and
// failed reads, reads in the customer's own conversation, in another's and
// in none). The buckets are read on demand, and read ahead as each range is
// stored, never before every event of the range is.
func TestSubjectIndexAgreesWithStore(t *testing.T) {
	s := storetest.New(t)
	ctx := t.Context()
	start := time.Date(2026, 3, 2, 20, 0, 0, 0, time.UTC)
	end := start.Add(60 * time.Hour)
	rng := rand.New(rand.NewPCG(7, 11))
	var evs []models.Event
	for ts := start; ts.Before(end); ts = ts.Add(time.Duration(20+rng.IntN(100)) * time.Second) {
		if h := ts.Hour(); h >= 1 && h < 5 {
			continue // a quiet night
		}
		subject := fmt.Sprintf("cust-%d", rng.IntN(300))
		if rng.IntN(10) == 0 {
			subject = ""
		}
		result := models.ResultAllowed
		switch rng.IntN(8) {
		case 0, 1:
			result = models.ResultDenied
		case 2:
			result = models.ResultError // a read: not refused
		}
		var conv models.Conversation
		switch rng.IntN(3) {
		case 0:
			conv = models.Conversation{ID: "c-" + subject, SubjectID: subject}
		case 1:
			conv = models.Conversation{ID: "c-other", SubjectID: fmt.Sprintf("cust-%d", rng.IntN(300))}
		}
		evs = append(evs, models.Event{EventID: fmt.Sprintf("e-%d", len(evs)), TS: ts, Tenant: []string{"t1", "t2"}[rng.IntN(2)],
			Actor:  models.Actor{ID: fmt.Sprintf("a%d", rng.IntN(6)), Type: models.ActorHuman, Role: "support"},
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: subject,
			Conversation: conv, Records: 1, Result: result})
	}
	if err := s.InsertEvents(ctx, evs, end); err != nil {
		t.Fatal(err)
	}
	for _, fed := range []bool{false, true} {
		for _, ahead := range []bool{false, true} {
			name := map[bool]string{false: "on demand", true: "read ahead"}[ahead] + map[bool]string{true: ", from the events fed"}[fed]
			t.Run(name, func(t *testing.T) {
				var feed []models.Event
				if fed {
					feed = evs
				}
				checkSubjectIndex(t, s, start, end, ahead, feed)
			})
		}
	}
}

// checkSubjectIndex steps a subject index over [start, end) of s's events
// (see TestSubjectIndexAgreesWithStore); with ahead, the index reads ahead
// as the test marks ranges stored. With fed (s's events, in time order),
// its buckets come from a bucketFeed, as on a database that keeps no raw
// events: each range's events are fed before it is marked stored, and
// each read's rows must be the store's SubjectBuckets, row for row.
func checkSubjectIndex(t *testing.T, s *store.Store, start, end time.Time, ahead bool, fed []models.Event) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(3, 5))
	every := 10 * time.Minute
	x := newSubjectIndex(s, every)
	var feed *bucketFeed
	if fed != nil {
		feed = newBucketFeed()
	}
	// every read of the buckets, with the stored mark when it started
	var mu sync.Mutex
	var storedTo time.Time
	type read struct {
		from, to, stored time.Time
		ahead            bool
	}
	var reads []read
	fedRows := 0 // rows read from the feed
	x.buckets = func(rctx context.Context, from, to time.Time, bucket time.Duration, shard store.Shard) ([]store.SubjectBuckets, error) {
		mu.Lock()
		// the reader's reads run on its own context, those on demand on
		// the test's
		reads = append(reads, read{from, to, storedTo, rctx != ctx})
		mu.Unlock()
		if feed == nil {
			return s.SubjectBuckets(rctx, from, to, bucket, shard)
		}
		got, err := feed.buckets(rctx, from, to, bucket, shard)
		if err != nil {
			return nil, err
		}
		want, err := s.SubjectBuckets(rctx, from, to, bucket, shard)
		if err != nil {
			return nil, err
		}
		slices.SortFunc(want, func(p, q store.SubjectBuckets) int {
			return cmp.Or(compareStrings(p.Tenant, q.Tenant), compareStrings(p.ActorID, q.ActorID), compareStrings(p.SubjectID, q.SubjectID))
		})
		// (an empty list is an empty list, whether nil or not)
		norm := func(rows []store.SubjectBuckets) []store.SubjectBuckets {
			out := make([]store.SubjectBuckets, 0, len(rows))
			for _, r := range rows {
				for _, bs := range []*[]uint32{&r.Buckets, &r.ReadBuckets, &r.OutsideBuckets} {
					*bs = append([]uint32{}, *bs...)
					slices.Sort(*bs)
				}
				out = append(out, r)
			}
			return out
		}
		if !reflect.DeepEqual(norm(got), norm(want)) {
			t.Errorf("buckets %s..%s from the events fed: %d rows, the store's %d:\n got %v\nwant %v", from, to, len(got), len(want), got, want)
		}
		mu.Lock()
		fedRows += len(got)
		mu.Unlock()
		return got, nil
	}
	fedTo := 0 // fed[:fedTo] are fed
	feedTo := func(tm time.Time) {
		if feed == nil {
			return
		}
		i := fedTo
		for i < len(fed) && fed[i].TS.Before(tm) {
			i++
		}
		feed.feed(fed[fedTo:i], tm)
		fedTo = i
	}
	if ahead {
		x.startAt(ctx, start.Truncate(24*time.Hour))
		defer x.close()
	}
	var actors []subjectActor
	for _, tenant := range []string{"t1", "t2"} {
		for a := range 7 { // a6 has no events
			actors = append(actors, subjectActor{tenant, fmt.Sprintf("a%d", a)})
		}
	}
	readAhead, refused, outside := 0, 0, 0
	// As in a replay, the detectors get to a time (ready) a step after
	// every event before it is stored (the stored mark, next).
	var readyAt time.Time
	next := start.Add(95 * time.Minute) // not a whole bucket
	advance := func() {
		readyAt, next = next, next.Add(time.Duration(3+rng.IntN(9))*time.Hour)
		// the replay feeds a group's events before it inserts them
		feedTo(next)
		if !ahead {
			return
		}
		mu.Lock()
		storedTo = next
		mu.Unlock()
		x.stored(next)
		// the reader has started the read of what is stored
		for {
			x.mu.Lock()
			started := x.readTo == next.Unix()/x.bucket*x.bucket
			x.mu.Unlock()
			if started {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	advance()
	step := 0
	for tm := start.Add(every); !tm.After(end.Add(time.Hour)); tm = tm.Add(every) {
		for readyAt.Before(tm) {
			advance()
		}
		x.ready = readyAt
		dayFrom := tm.Add(-time.Nanosecond).Truncate(24 * time.Hour)
		got, err := x.RecentSubjects(ctx, tm.Add(-time.Hour), dayFrom, tm, store.Shard{})
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.RecentSubjects(ctx, tm.Add(-time.Hour), dayFrom, tm, store.Shard{})
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(want, func(p, q store.SubjectCounts) int {
			if p.Tenant != q.Tenant {
				return compareStrings(p.Tenant, q.Tenant)
			}
			return compareStrings(p.ActorID, q.ActorID)
		})
		if !slices.Equal(got, want) {
			t.Fatalf("at %s: index %v, store %v", tm.Format(time.RFC3339), got, want)
		}
		// one actor a step, the hour's and the day's customers read
		k := actors[step%len(actors)]
		step++
		for _, from := range []time.Time{tm.Add(-time.Hour), dayFrom} {
			var touched uint64
			for _, c := range want {
				if c.Tenant == k.tenant && c.ActorID == k.actor {
					touched = map[bool]uint64{true: c.Hour, false: c.Day}[from.Equal(tm.Add(-time.Hour))]
				}
			}
			gotRead, err := x.SubjectsRead(ctx, k.tenant, k.actor, from, tm)
			if err != nil {
				t.Fatal(err)
			}
			wantRead, err := s.SubjectsRead(ctx, k.tenant, k.actor, from, tm)
			if err != nil {
				t.Fatal(err)
			}
			gotOut, err := x.SubjectsOutsideConversation(ctx, k.tenant, k.actor, from, tm)
			if err != nil {
				t.Fatal(err)
			}
			wantOut, err := s.SubjectsOutsideConversation(ctx, k.tenant, k.actor, from, tm)
			if err != nil {
				t.Fatal(err)
			}
			if gotRead != wantRead || gotOut != wantOut {
				t.Fatalf("%v %s..%s: index read %d, outside %d; store read %d, outside %d",
					k, from.Format(time.RFC3339), tm.Format(time.RFC3339), gotRead, gotOut, wantRead, wantOut)
			}
			if wantRead < touched {
				refused++
			}
			if wantOut < wantRead {
				outside++
			}
		}
	}
	if refused == 0 || outside == 0 {
		t.Errorf("%d counts left refused customers out, %d customers read in their own conversation: the scenario does not tell them apart", refused, outside)
	}
	mu.Lock()
	defer mu.Unlock()
	if feed != nil && fedRows < 1000 {
		t.Errorf("%d rows read from the events fed: too few to compare", fedRows)
	}
	if len(reads) == 0 || len(reads) > 30 {
		t.Errorf("the index read the store %d times; want a read per step of the stored time", len(reads))
	}
	for _, r := range reads {
		if ahead && r.to.After(r.stored) {
			t.Errorf("read ahead %s..%s before every event of it was stored (stored up to %s)", r.from, r.to, r.stored)
		}
		if r.ahead {
			readAhead++
		}
	}
	if want := map[bool]int{true: len(reads)}[ahead]; readAhead != want {
		t.Errorf("%d of %d reads were read ahead; want %d", readAhead, len(reads), want)
	}
}

// TestSortByTime: items come out in time order, file order among equal
// times, whether the file was in order or not.
func TestSortByTime(t *testing.T) {
	base := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	mk := func(secs ...int) []item {
		var out []item
		for i, s := range secs {
			out = append(out, item{ts: base.Add(time.Duration(s) * time.Second), ev: models.Event{EventID: fmt.Sprint(i)}})
		}
		return out
	}
	render := func(items []item) string {
		var b []byte
		for _, it := range items {
			b = fmt.Appendf(b, "%d:%s ", int(it.ts.Sub(base).Seconds()), it.ev.EventID)
		}
		return string(b)
	}
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{[]int{1, 1, 2, 3}, "1:0 1:1 2:2 3:3 "},
		{[]int{3, 1, 2, 1, 3, 0}, "0:5 1:1 1:3 2:2 3:0 3:4 "},
		{nil, ""},
	} {
		if got := render(sortByTime(mk(tc.in...))); got != tc.want {
			t.Errorf("sortByTime(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
