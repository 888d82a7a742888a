package store_test

import (
	"slices"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestShares: events with a destination reach shares (by the materialized
// view) and come back per window and per destination; a denied share, an
// export without destination and a read do not.
func TestShares(t *testing.T) {
	s := storetest.New(t)
	base := time.Date(2026, 11, 16, 9, 0, 0, 0, time.UTC)
	ev := func(id string, at time.Duration, actor string, act models.Action, dest, subject string, recs uint64, res models.Result, fields ...string) models.Event {
		return models.Event{EventID: id, TS: base.Add(at), Tenant: "t1", Actor: models.Actor{ID: actor, Type: models.ActorHuman},
			Action: act, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: subject, Records: recs,
			Fields: fields, Result: res, Destination: dest}
	}
	evs := []models.Event{
		ev("s1", 0, "agent-1", models.ActionShare, "acme.example", "c1", 1, models.ResultAllowed, "email"),
		ev("s2", 30*time.Second, "agent-1", models.ActionShare, "acme.example", "c2", 2, models.ResultAllowed, "phone"),
		ev("s3", 90*time.Second, "agent-2", models.ActionExport, "other.example", "", 500, models.ResultAllowed, "email", "address"),
		ev("s4", 100*time.Second, "agent-2", models.ActionShare, "other.example", "", 900, models.ResultDenied, "email"),
		ev("x1", 110*time.Second, "agent-2", models.ActionExport, "", "", 700, models.ResultAllowed, "email"),
		ev("r1", 120*time.Second, "agent-2", models.ActionRead, "", "c3", 1, models.ResultAllowed, "email"),
	}
	if err := s.InsertEvents(t.Context(), evs, base); err != nil {
		t.Fatal(err)
	}
	got, err := s.DestinationWindows(t.Context(), base, base.Add(time.Hour), time.Minute, store.Shard{})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.DestinationActivity{
		{WindowStart: base, Tenant: "t1", ActorID: "agent-1", Destination: "acme.example", Events: 2, Records: 3, Subjects: 2, Categories: []string{"email", "phone"}},
		{WindowStart: base.Add(time.Minute), Tenant: "t1", ActorID: "agent-2", Destination: "other.example", Events: 1, Records: 500, Subjects: 0, Categories: []string{"address", "email"}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.WindowStart.Equal(w.WindowStart) || g.Tenant != w.Tenant || g.ActorID != w.ActorID || g.Destination != w.Destination ||
			g.Events != w.Events || g.Records != w.Records || g.Subjects != w.Subjects || !slices.Equal(g.Categories, w.Categories) {
			t.Fatalf("row %d: got %+v, want %+v", i, g, w)
		}
	}
	tot, err := s.SharedByDestination(t.Context(), []string{"t1"}, base, base.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(tot) != 2 || tot[0].Destination != "acme.example" || tot[0].Records != 3 || tot[0].Subjects != 2 || tot[0].Actors != 1 ||
		tot[1].Destination != "other.example" || tot[1].Records != 500 || !tot[1].First.Equal(base.Add(90*time.Second)) {
		t.Fatalf("by destination: %+v", tot)
	}
	if tot, err := s.SharedByDestination(t.Context(), []string{"t2"}, base, base.Add(time.Hour)); err != nil || len(tot) != 0 {
		t.Fatalf("other tenant: %+v %v", tot, err)
	}
	// History by actor carries the destination.
	h, _, err := s.History(t.Context(), store.HistoryFilter{ActorID: "agent-1", From: base, To: base.Add(time.Hour)})
	if err != nil || len(h) != 2 || h[0].Destination != "acme.example" {
		t.Fatalf("history: %+v %v", h, err)
	}
}
