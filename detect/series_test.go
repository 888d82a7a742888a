package detect

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// The window detectors are tested on readable series fixtures, one line per
// actor and metric, one value per window from a common start:
//
//	actor=a1 role=support records: 5 6 5 7 120
//
// A value may repeat (5*480), "-" is an inactive window, and a group
// repeats too: (5*480 -*960)*4 is four days of eight busy hours. List
// metrics (stores, categories, countries) take comma-separated values.
// Attributes before the metric: tenant, role, type, vendor.

// fixture is parsed series, served as actor_minute aggregates.
type fixture struct {
	start  time.Time
	window time.Duration
	rows   map[int64]map[actorKey]*store.WindowActivity // window index -> actor -> row
	// outside holds the "outside" metric: customers read outside their
	// own conversation (window index -> actor); an actor without the
	// metric read every customer outside a conversation.
	outside map[int64]map[actorKey]uint64
	hasOut  map[actorKey]bool
	// refused holds the "refused" metric: of the window's customers, those
	// whose every access was refused (window index -> actor); they count
	// in subjects (touched) but not in SubjectsRead.
	refused map[int64]map[actorKey]uint64
	last    int64
}

func expand(t *testing.T, toks []string) []string {
	t.Helper()
	var out []string
	for i := 0; i < len(toks); i++ {
		tok := toks[i]
		if strings.HasPrefix(tok, "(") {
			depth, j := 0, i
			for ; j < len(toks); j++ {
				depth += strings.Count(toks[j], "(") - strings.Count(toks[j], ")")
				if depth == 0 {
					break
				}
			}
			if j == len(toks) {
				t.Fatalf("unbalanced group in %v", toks)
			}
			inner := slices.Clone(toks[i : j+1])
			inner[0] = strings.TrimPrefix(inner[0], "(")
			lastTok := inner[len(inner)-1]
			k := strings.LastIndex(lastTok, ")")
			rep := 1
			if rest := lastTok[k+1:]; rest != "" {
				n, err := strconv.Atoi(strings.TrimPrefix(rest, "*"))
				if err != nil {
					t.Fatalf("bad group repeat %q", lastTok)
				}
				rep = n
			}
			inner[len(inner)-1] = lastTok[:k]
			var in []string
			for _, x := range inner {
				if x != "" {
					in = append(in, x)
				}
			}
			body := expand(t, in)
			for range rep {
				out = append(out, body...)
			}
			i = j
			continue
		}
		v, n := tok, 1
		if k := strings.LastIndex(tok, "*"); k > 0 {
			c, err := strconv.Atoi(tok[k+1:])
			if err != nil {
				t.Fatalf("bad repeat %q", tok)
			}
			v, n = tok[:k], c
		}
		for range n {
			out = append(out, v)
		}
	}
	return out
}

func parseFixture(t *testing.T, start time.Time, text string) *fixture {
	t.Helper()
	f := &fixture{start: start, window: time.Minute, rows: map[int64]map[actorKey]*store.WindowActivity{},
		outside: map[int64]map[actorKey]uint64{}, hasOut: map[actorKey]bool{}, refused: map[int64]map[actorKey]uint64{}}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		head, vals, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("fixture line %q has no ':'", line)
		}
		fields := strings.Fields(head)
		metric := fields[len(fields)-1]
		attrs := map[string]string{"tenant": "default", "type": "human"}
		for _, kv := range fields[:len(fields)-1] {
			k, v, _ := strings.Cut(kv, "=")
			attrs[k] = v
		}
		for i, v := range expand(t, strings.Fields(vals)) {
			if v == "-" {
				continue
			}
			w := int64(i)
			m := f.rows[w]
			if m == nil {
				m = map[actorKey]*store.WindowActivity{}
				f.rows[w] = m
			}
			k := actorKey{attrs["tenant"], attrs["actor"]}
			r := m[k]
			if r == nil {
				r = &store.WindowActivity{WindowStart: start.Add(time.Duration(w) * f.window), Tenant: k.Tenant, ActorID: k.Actor,
					ActorType: attrs["type"], ActorRole: attrs["role"], ActorVendor: attrs["vendor"], Events: 1, Stores: []string{"crm"},
					ResourceTypes: []string{"customer_profile"}, Categories: []string{"name", "email"}, Countries: []string{"US"}}
				m[k] = r
			}
			num := func() uint64 {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					t.Fatalf("metric %s: %q is not a count", metric, v)
				}
				return n
			}
			switch metric {
			case "records":
				r.Records = num()
				r.Events = max(1, r.Records/2)
			case "subjects":
				r.Subjects = num()
			case "outside":
				if f.outside[w] == nil {
					f.outside[w] = map[actorKey]uint64{}
				}
				f.outside[w][k] = num()
				f.hasOut[k] = true
			case "refused":
				if f.refused[w] == nil {
					f.refused[w] = map[actorKey]uint64{}
				}
				f.refused[w][k] = num()
			case "denied":
				r.Denied = num()
			case "exports": // export actions (a share is one of Exports too)
				n := num()
				r.ExportOnly = n
				r.Exports += n
			case "shares":
				r.Exports += num()
			case "stores":
				r.Stores = strings.Split(v, ",")
			case "categories":
				r.Categories = strings.Split(v, ",")
			case "countries":
				r.Countries = strings.Split(v, ",")
			default:
				t.Fatalf("unknown metric %q", metric)
			}
			f.last = max(f.last, w)
		}
	}
	return f
}

// WindowAggregates implements Aggregates over the fixture.
func (f *fixture) WindowAggregates(_ context.Context, from, to time.Time, window time.Duration, _ store.Shard) ([]store.WindowActivity, error) {
	if window != f.window {
		return nil, fmt.Errorf("fixture has %s windows, asked %s", f.window, window)
	}
	var out []store.WindowActivity
	for w := int64(from.Sub(f.start) / window); w < int64(to.Sub(f.start)/window); w++ {
		m := f.rows[w]
		keys := make([]actorKey, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b actorKey) int { return strings.Compare(a.Tenant+"/"+a.Actor, b.Tenant+"/"+b.Actor) })
		for _, k := range keys {
			out = append(out, *m[k])
		}
	}
	return out, nil
}

// RecentSubjects sums per-window customers: the fixtures' customers never
// repeat across windows.
func (f *fixture) RecentSubjects(_ context.Context, hourFrom, dayFrom, to time.Time, _ store.Shard) ([]store.SubjectCounts, error) {
	sum := func(from time.Time) map[actorKey]uint64 {
		sums := map[actorKey]uint64{}
		for w := int64(from.Sub(f.start) / f.window); w < int64(to.Sub(f.start)/f.window); w++ {
			for k, r := range f.rows[w] {
				sums[k] += r.Subjects
			}
		}
		return sums
	}
	hours, days := sum(hourFrom), sum(dayFrom)
	var out []store.SubjectCounts
	for k, n := range days {
		if n > 0 || hours[k] > 0 {
			out = append(out, store.SubjectCounts{Tenant: k.Tenant, ActorID: k.Actor, Hour: hours[k], Day: n})
		}
	}
	for k, n := range hours {
		if _, ok := days[k]; !ok && n > 0 {
			out = append(out, store.SubjectCounts{Tenant: k.Tenant, ActorID: k.Actor, Hour: n})
		}
	}
	slices.SortFunc(out, func(a, b store.SubjectCounts) int { return strings.Compare(a.ActorID, b.ActorID) })
	return out, nil
}

func (f *fixture) TopSubjects(context.Context, string, string, time.Time, time.Time, int) ([]string, error) {
	return nil, nil
}

// SubjectsOutsideConversation sums the "outside" metric of [from, to), or
// the customers when the actor has no such line.
func (f *fixture) SubjectsOutsideConversation(_ context.Context, tenant, actor string, from, to time.Time) (uint64, error) {
	k := actorKey{tenant, actor}
	var n uint64
	for w := int64(from.Sub(f.start) / f.window); w < int64(to.Sub(f.start)/f.window); w++ {
		if !f.hasOut[k] {
			if r := f.rows[w][k]; r != nil {
				n += r.Subjects
			}
			continue
		}
		n += f.outside[w][k]
	}
	return n, nil
}

// SubjectsRead sums the customers of [from, to) less the "refused" ones.
func (f *fixture) SubjectsRead(_ context.Context, tenant, actor string, from, to time.Time) (uint64, error) {
	k := actorKey{tenant, actor}
	var n uint64
	for w := int64(from.Sub(f.start) / f.window); w < int64(to.Sub(f.start)/f.window); w++ {
		if r := f.rows[w][k]; r != nil {
			n += r.Subjects - min(r.Subjects, f.refused[w][k])
		}
	}
	return n, nil
}

// firing replays the fixture through an engine and returns "detector actor"
// for every finding, in order, deduplicated.
func firing(t *testing.T, cfg Config, start time.Time, text string) []string {
	t.Helper()
	return firingAfter(t, cfg, start, time.Time{}, text)
}

// firingAfter is firing for the findings detected at or after from only.
func firingAfter(t *testing.T, cfg Config, start, from time.Time, text string) []string {
	t.Helper()
	return firingAfterUntil(t, cfg, start, from, time.Time{}, text)
}

// firingAfterUntil is firingAfter for the findings detected before until
// too (zero: no end).
func firingAfterUntil(t *testing.T, cfg Config, start, from, until time.Time, text string) []string {
	t.Helper()
	fx := parseFixture(t, start, text)
	var got []string
	e, err := New(cfg, fx, Options{Findings: func(_ context.Context, fs ...models.Finding) error {
		for _, f := range fs {
			if f.DetectedAt.Before(from) || (!until.IsZero() && !f.DetectedAt.Before(until)) {
				continue
			}
			s := f.Detector + " " + f.ActorID
			if !slices.Contains(got, s) {
				if testing.Verbose() {
					t.Logf("%s %s: %s", f.DetectedAt.Format(time.RFC3339), s, f.Summary)
				}
				got = append(got, s)
			}
			if f.Evidence.Query == "" || f.Summary == "" {
				t.Errorf("finding %s without query or summary", s)
			}
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.StartAt(start.Add(time.Minute))
	end := start.Add(time.Duration(fx.last+1) * time.Minute).Truncate(time.Hour).Add(time.Hour)
	if err := e.Advance(t.Context(), end); err != nil {
		t.Fatal(err)
	}
	return got
}
