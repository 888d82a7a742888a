package store_test

import (
	"slices"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
)

// TestSubjectShares: where a customer's data went, per destination, from
// the shares table; refused shares, other customers and other tenants are
// left out; the access lines count the shares and exports not refused
// (Outbound), with or without a destination.
func TestSubjectShares(t *testing.T) {
	t.Parallel() // a database of its own
	s := storetest.New(t)
	ctx := t.Context()
	base := time.Date(2026, 11, 16, 9, 0, 0, 0, time.UTC)
	ev := func(id string, min int, tenant, subject string, a models.Action, dest string, res models.Result) models.Event {
		return models.Event{EventID: id, TS: base.Add(time.Duration(min) * time.Minute), Tenant: tenant,
			Actor: models.Actor{ID: "agent-7", Type: models.ActorHuman, Role: "billing"}, Action: a, Store: "crm",
			Resource: models.Resource{Type: "customer_profile"}, SubjectID: subject, Records: 3, Fields: []string{"email", "address"},
			Purpose: "billing", Result: res, Destination: dest}
	}
	evs := []models.Event{
		ev("e1", 0, "t1", "s1", models.ActionShare, "paycorp.example", models.ResultAllowed),
		ev("e2", 5, "t1", "s1", models.ActionShare, "paycorp.example", models.ResultAllowed),
		ev("e3", 6, "t1", "s1", models.ActionExport, "", models.ResultAllowed),           // no destination
		ev("e4", 7, "t1", "s1", models.ActionShare, "evil.example", models.ResultDenied), // refused
		ev("e5", 8, "t1", "s2", models.ActionShare, "other.example", models.ResultAllowed),
		ev("e6", 9, "t2", "s1", models.ActionShare, "t2.example", models.ResultAllowed),
		ev("e7", 10, "t1", "s1", models.ActionRead, "", models.ResultAllowed),
	}
	if err := s.InsertEvents(ctx, evs, base); err != nil {
		t.Fatal(err)
	}
	sh, more, err := s.SubjectShares(ctx, []string{"t1"}, []string{"s1"}, base.Add(-time.Hour), base.Add(time.Hour))
	if err != nil || more {
		t.Fatal(err, more)
	}
	if len(sh) != 1 || sh[0].Destination != "paycorp.example" || sh[0].Events != 2 || sh[0].Records != 6 ||
		sh[0].Action != "share" || sh[0].ActorRole != "billing" || !slices.Equal(sh[0].Categories, []string{"address", "email"}) ||
		!sh[0].First.Equal(base) || !sh[0].Last.Equal(base.Add(5*time.Minute)) {
		t.Fatalf("shares of s1 in t1 = %+v", sh)
	}
	all, _, err := s.SubjectShares(ctx, nil, []string{"s1"}, base.Add(-time.Hour), base.Add(time.Hour))
	if err != nil || len(all) != 2 || all[0].Destination != "t2.example" {
		t.Fatalf("shares of s1 in every tenant = %+v %v", all, err)
	}
	acc, _, err := s.SubjectAccesses(ctx, []string{"t1"}, []string{"s1"}, base.Add(-time.Hour), base.Add(time.Hour))
	if err != nil || len(acc) != 1 || acc[0].Outbound != 3 || acc[0].Denied != 1 || acc[0].Events != 5 {
		t.Fatalf("accesses of s1 in t1 = %+v %v", acc, err)
	}
}
