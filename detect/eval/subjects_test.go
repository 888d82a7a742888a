package eval

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestSubjectIndexAgreesWithStore: the replay's distinct customers per actor
// of the last hour and of the day so far, counted from the customers per
// bucket read ahead once per chunk, are the store's own RecentSubjects at
// every 10 minutes of two and a half days (across midnights, with a quiet
// night, customers shared between actors and events without a customer), as
// the stored time advances in uneven steps the way a replay's chunks do.
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
		evs = append(evs, models.Event{EventID: fmt.Sprintf("e-%d", len(evs)), TS: ts, Tenant: []string{"t1", "t2"}[rng.IntN(2)],
			Actor:  models.Actor{ID: fmt.Sprintf("a%d", rng.IntN(6)), Type: models.ActorHuman, Role: "support"},
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: subject,
			Records: 1, Result: models.ResultAllowed})
	}
	if err := s.InsertEvents(ctx, evs, end); err != nil {
		t.Fatal(err)
	}
	every := 10 * time.Minute
	x := newSubjectIndex(s, every)
	loads := 0
	readyAt := start.Add(95 * time.Minute) // not a whole bucket
	for tm := start.Add(every); !tm.After(end.Add(time.Hour)); tm = tm.Add(every) {
		for readyAt.Before(tm) {
			readyAt = readyAt.Add(time.Duration(3+rng.IntN(9)) * time.Hour)
		}
		x.ready = readyAt
		before := x.to
		dayFrom := tm.Add(-time.Nanosecond).Truncate(24 * time.Hour)
		got, err := x.RecentSubjects(ctx, tm.Add(-time.Hour), dayFrom, tm, store.Shard{})
		if err != nil {
			t.Fatal(err)
		}
		if x.to != before {
			loads++
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
	}
	if loads == 0 || loads > 30 {
		t.Errorf("the index read the store %d times; want a read per step of the stored time", loads)
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
