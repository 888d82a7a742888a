package store_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestExposureOnePassMatchesThreePass runs the one-pass blast radius and
// the former three-pass queries on the same generated events (several
// tenants, actors, stores, countries, categories, events without customer
// or without categories, exports, denials) for filters and alert windows,
// and wants identical results.
func TestExposureOnePassMatchesThreePass(t *testing.T) {
	t.Parallel() // a database of its own
	s := storetest.New(t)
	ctx := t.Context()
	base := time.Date(2026, 11, 16, 9, 0, 0, 0, time.UTC)
	cats := [][]string{{"email", "name"}, {"payment"}, nil, {"transcript_text"}, {"dob", "name", "email"}, {"order_history"}}
	stores := []string{"crm", "payments", "orders", "transcripts"}
	countries := []string{"DE", "", "PH", "US"}
	actions := []models.Action{models.ActionRead, models.ActionExport, models.ActionShare, models.ActionSearch, models.ActionRead}
	var evs []models.Event
	for i := range 3000 {
		sub := fmt.Sprintf("s%d", (i*7919)%211)
		if i%13 == 0 {
			sub = ""
		}
		res := models.ResultAllowed
		if i%17 == 0 {
			res = models.ResultDenied
		}
		evs = append(evs, models.Event{EventID: fmt.Sprintf("e%d", i), TS: base.Add(time.Duration(i*37) * time.Second),
			Tenant: []string{"t1", "t2"}[i%5/4], Actor: models.Actor{ID: fmt.Sprintf("actor-%d", i%11), Type: models.ActorHuman},
			Action: actions[i%len(actions)], Store: stores[i%len(stores)], Resource: models.Resource{Type: "record"},
			SubjectID: sub, Records: uint64(1 + i%9), Fields: cats[i%len(cats)], Result: res,
			Client: models.Client{Country: countries[(i/3)%len(countries)]}})
	}
	if err := s.InsertEvents(ctx, evs, base); err != nil {
		t.Fatal(err)
	}
	day := store.HistoryFilter{From: base.Add(-time.Hour), To: base.Add(48 * time.Hour)}
	with := func(mod func(*store.HistoryFilter)) store.HistoryFilter { f := day; mod(&f); return f }
	filters := map[string]store.HistoryFilter{
		"everything": day,
		"actor":      with(func(f *store.HistoryFilter) { f.ActorID = "actor-3" }),
		"tenant":     with(func(f *store.HistoryFilter) { f.Tenant = "t2" }),
		"customers":  with(func(f *store.HistoryFilter) { f.SubjectIDs = []string{"s1", "s2", "s3", "s-old-key"} }),
		"store range": with(func(f *store.HistoryFilter) {
			f.Store = "payments"
			f.From = base.Add(3 * time.Hour)
			f.To = base.Add(9 * time.Hour)
		}),
		"nothing": with(func(f *store.HistoryFilter) { f.ActorID = "nobody" }),
	}
	for name, f := range filters {
		t.Run("filter "+name, func(t *testing.T) {
			want, err := store.ExposureThreePass(ctx, s, f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Exposure(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("one pass:\n%+v\nthree passes:\n%+v", got, want)
			}
			if name != "nothing" && (got.Events == 0 || len(got.Categories) == 0) {
				t.Fatalf("fixture selects nothing: %+v", got)
			}
		})
	}
	windows := map[string][]store.ActorWindow{
		"overlapping and cross-tenant": {
			{Tenant: "t1", ActorID: "actor-1", From: base.Add(10*time.Minute + 20*time.Second), To: base.Add(3 * time.Hour)},
			{Tenant: "t1", ActorID: "actor-1", From: base.Add(2 * time.Hour), To: base.Add(4 * time.Hour)},
			{Tenant: "t2", ActorID: "actor-4", From: base, To: base.Add(20 * time.Hour)},
			{Tenant: "t2", ActorID: "actor-1", From: base, To: base.Add(20 * time.Hour)},
			{Tenant: "t1", ActorID: "actor-7", From: base.Add(5 * time.Hour), To: base.Add(5*time.Hour + 30*time.Second)},
		},
		// (Windows long enough for hour slots, over 200,000 minutes, make a
		// query longer than the 100,000 characters the server's query log
		// keeps, which the SQL conformance check cannot replay; they share
		// windowsWhere with the minute slots.)
	}
	for name, ws := range windows {
		t.Run("windows "+name, func(t *testing.T) {
			got, err := s.ExposureOfWindows(ctx, ws)
			if err != nil {
				t.Fatal(err)
			}
			want, err := store.ExposureOfWindowsThreePass(ctx, s, ws)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) || got.Events == 0 {
				t.Fatalf("one pass:\n%+v\nthree passes:\n%+v", got, want)
			}
		})
	}
}

// TestExposureOfManyWindows: a weekly report's flagged exposure over 300
// alert windows of two hours each (36,000 minutes) failed on ClickHouse
// with "AST is too big. Maximum: 50000" (one literal per minute slot); it
// now widens the slots to hours (then days) to stay within the limits, and
// answers an upper bound of the exact exposure. Windows of three weeks each
// need day slots.
func TestExposureOfManyWindows(t *testing.T) {
	t.Parallel() // a database of its own
	s := storetest.New(t)
	ctx := t.Context()
	base := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	var evs []models.Event
	for i := range 2000 {
		evs = append(evs, models.Event{EventID: fmt.Sprintf("e%d", i), TS: base.Add(time.Duration(i) * 5 * time.Minute),
			Tenant: "t1", Actor: models.Actor{ID: fmt.Sprintf("actor-%d", i%40), Type: models.ActorHuman},
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "record"},
			SubjectID: fmt.Sprintf("s%d", i%97), Records: 1, Fields: []string{"email"}, Result: models.ResultAllowed})
	}
	if err := s.InsertEvents(ctx, evs, base); err != nil {
		t.Fatal(err)
	}
	for name, span := range map[string]time.Duration{"two hours": 2 * time.Hour, "three weeks": 21 * 24 * time.Hour} {
		t.Run(name, func(t *testing.T) {
			var ws []store.ActorWindow
			for i := range store.MaxExposureWindows {
				from := base.Add(time.Duration(i) * 23 * time.Minute)
				ws = append(ws, store.ActorWindow{Tenant: "t1", ActorID: fmt.Sprintf("actor-%d", i%40), From: from, To: from.Add(span)})
			}
			got, err := s.ExposureOfWindows(ctx, ws)
			if err != nil {
				t.Fatal(err)
			}
			exact := 0
			for _, e := range evs {
				for _, w := range ws {
					if e.Actor.ID == w.ActorID && !e.TS.Before(w.From) && e.TS.Before(w.To) {
						exact++
						break
					}
				}
			}
			if got.Events < uint64(exact) || got.Events > uint64(len(evs)) || exact == 0 {
				t.Fatalf("exposure of %d windows: %d events, want at least the %d inside them and at most %d", len(ws), got.Events, exact, len(evs))
			}
		})
	}
}
