package eval

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
)

// TestEvidenceIndexAgreesWithStore: the replay's evidence reads
// (TopSubjects through the subject index, answered by the evidence index
// when it holds the range) are the store's own TopSubjects for many
// actors, ranges and limits: customers touched equally often (ties, in
// byte order), events without a customer (left out) and refused ones
// (counted), several events in one second and times with a fraction of a
// second, ranges within what is stored, crossing into what is fed but not
// stored yet, past what is fed, and starting before what the index kept.
// As in a replay, each chunk of events is added before it is stored, and
// the reads run four at once while the next chunk is added and the index
// pruned (run with -race).
func TestEvidenceIndexAgreesWithStore(t *testing.T) {
	s := storetest.New(t)
	ctx := t.Context()
	start := time.Date(2026, 3, 2, 20, 0, 0, 0, time.UTC)
	end := start.Add(40 * time.Hour)
	rng := rand.New(rand.NewPCG(17, 19))
	var evs []models.Event
	for ts := start; ts.Before(end); ts = ts.Add(time.Duration(rng.IntN(30_000)) * time.Millisecond) {
		if h := ts.Hour(); h >= 1 && h < 5 {
			continue // a quiet night
		}
		subject := fmt.Sprintf("cust-%d", rng.IntN(12)) // few customers: ties
		if rng.IntN(6) == 0 {
			subject = ""
		}
		result := models.ResultAllowed
		if rng.IntN(4) == 0 {
			result = models.ResultDenied
		}
		evs = append(evs, models.Event{EventID: fmt.Sprintf("e-%d", len(evs)), TS: ts, Tenant: []string{"t1", "t2"}[rng.IntN(2)],
			Actor:  models.Actor{ID: fmt.Sprintf("a%d", rng.IntN(3)), Type: models.ActorHuman, Role: "support"},
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: subject,
			Records: 1, Result: result})
	}
	// the chunks, ending anywhere (also within a second)
	var chunks [][]models.Event
	for i := 0; i < len(evs); {
		n := min(len(evs)-i, 40+rng.IntN(100))
		chunks = append(chunks, evs[i:i+n])
		i += n
	}

	x := newSubjectIndex(s, 10*time.Minute)
	x.evidence = newEvidenceIndex()
	var indexed, fromStore, ties, empty, denied, partial atomic.Int64
	// check compares one read with the store's; none is stored meanwhile.
	check := func(rng *rand.Rand, storedTo time.Time) error {
		tenant, actor := []string{"t1", "t2"}[rng.IntN(2)], fmt.Sprintf("a%d", rng.IntN(4)) // a3 has no events
		from := storedTo.Add(-time.Duration(rng.IntN(30*60)) * time.Minute).Truncate(time.Minute)
		if rng.IntN(8) == 0 {
			from = from.Add(time.Duration(rng.IntN(60)) * time.Second)
		}
		span := []time.Duration{time.Minute, 5 * time.Minute, time.Hour, 24 * time.Hour, 0}[rng.IntN(5)]
		to := from.Add(span)
		if rng.IntN(10) == 0 {
			to = to.Add(500 * time.Millisecond) // bound with a fraction: the store's
		}
		n := []int{0, 1, 3, 10, 40}[rng.IntN(5)]
		_, ok := x.evidence.top(tenant, actor, from, to, n)
		got, err := x.TopSubjects(ctx, tenant, actor, from, to, n)
		if err != nil {
			return err
		}
		want, err := s.TopSubjects(ctx, tenant, actor, from, to, n)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) || (got == nil) != (want == nil) {
			return fmt.Errorf("%s/%s %s..%s top %d (stored to %s, from the index: %v): got %q, the store %q",
				tenant, actor, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano), n, storedTo.Format(time.RFC3339Nano), ok, got, want)
		}
		if !ok {
			fromStore.Add(1)
			if to.After(storedTo) && len(want) > 0 {
				partial.Add(1)
			}
			return nil
		}
		indexed.Add(1)
		// what the range held, to show the cases are there
		counts := map[string]int{}
		for _, e := range evs {
			if e.Tenant == tenant && e.Actor.ID == actor && !e.TS.Before(from) && e.TS.Before(to) {
				counts[e.SubjectID]++
				if e.SubjectID != "" && e.Result == models.ResultDenied {
					denied.Add(1)
				}
			}
		}
		if counts[""] > 0 && n > 0 {
			empty.Add(1)
		}
		delete(counts, "")
		cs := make([]int, 0, len(counts))
		for _, c := range counts {
			cs = append(cs, c)
		}
		sort.Sort(sort.Reverse(sort.IntSlice(cs)))
		for i := 1; i < min(n+1, len(cs)); i++ {
			if cs[i] == cs[i-1] {
				ties.Add(1)
				break
			}
		}
		return nil
	}

	x.evidence.add(chunks[0], chunks[0][len(chunks[0])-1].TS)
	for i, c := range chunks {
		last := c[len(c)-1].TS
		if err := s.InsertEvents(ctx, c, last); err != nil {
			t.Fatal(err)
		}
		x.evidence.stored(last)
		// the reads, while the next chunk is added and the index pruned
		errs := make(chan error, 4)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func(rng *rand.Rand) {
				defer wg.Done()
				for range 4 {
					if err := check(rng, last); err != nil {
						errs <- err
						return
					}
				}
			}(rand.New(rand.NewPCG(uint64(i), uint64(g))))
		}
		if i+1 < len(chunks) {
			next := chunks[i+1]
			x.evidence.add(next, next[len(next)-1].TS)
		}
		if i%10 == 9 {
			x.evidence.prune(last.Add(-26 * time.Hour))
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	t.Logf("%d reads from the index (%d with ties, %d ranges with events without a customer, %d refused events), %d from the store (%d of them of a range not all stored)",
		indexed.Load(), ties.Load(), empty.Load(), denied.Load(), fromStore.Load(), partial.Load())
	if indexed.Load() < 500 || ties.Load() < 50 || empty.Load() < 50 || denied.Load() < 50 || fromStore.Load() < 50 || partial.Load() < 10 {
		t.Errorf("the scenario lacks cases: %d reads from the index (%d with ties, %d ranges with events without a customer, %d refused events), %d from the store (%d of them of a range not all stored)",
			indexed.Load(), ties.Load(), empty.Load(), denied.Load(), fromStore.Load(), partial.Load())
	}
}
