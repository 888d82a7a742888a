package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestIncidentFacts: the figures of an incident's windows, counted by hand:
// agent-1 reads five customers (two of whom withdrew marketing consent
// before, one after), shares two with a destination and exports 300
// records; a denied read and agent-2 (outside the incident) do not count.
func TestIncidentFacts(t *testing.T) {
	s := storetest.New(t)
	base := time.Date(2026, 11, 16, 9, 0, 0, 0, time.UTC)
	agent := models.Actor{ID: "agent-1", Type: models.ActorHuman, Role: "support"}
	var evs []models.Event
	for i := range 5 {
		evs = append(evs, models.Event{EventID: fmt.Sprintf("r%d", i), TS: base.Add(time.Duration(i) * time.Minute), Tenant: "t1", Actor: agent,
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: fmt.Sprintf("c%d", i),
			Records: 1, Fields: []string{"email", "phone"}, Result: models.ResultAllowed})
	}
	evs = append(evs,
		models.Event{EventID: "s1", TS: base.Add(10 * time.Minute), Tenant: "t1", Actor: agent, Action: models.ActionShare, Store: "crm",
			Resource: models.Resource{Type: "customer_profile"}, SubjectID: "c0", Records: 2, Fields: []string{"email"}, Result: models.ResultAllowed, Destination: "drop.example"},
		models.Event{EventID: "s2", TS: base.Add(11 * time.Minute), Tenant: "t1", Actor: agent, Action: models.ActionShare, Store: "crm",
			Resource: models.Resource{Type: "customer_profile"}, SubjectID: "c1", Records: 3, Fields: []string{"email"}, Result: models.ResultAllowed, Destination: "drop.example"},
		models.Event{EventID: "x1", TS: base.Add(12 * time.Minute), Tenant: "t1", Actor: agent, Action: models.ActionExport, Store: "payments",
			Resource: models.Resource{Type: "payment_method"}, Records: 300, Fields: []string{"payment"}, Result: models.ResultAllowed},
		models.Event{EventID: "d1", TS: base.Add(13 * time.Minute), Tenant: "t1", Actor: agent, Action: models.ActionRead, Store: "crm",
			Resource: models.Resource{Type: "customer_profile"}, SubjectID: "c9", Records: 1, Fields: []string{"health"}, Result: models.ResultDenied},
		models.Event{EventID: "o1", TS: base.Add(5 * time.Minute), Tenant: "t1", Actor: models.Actor{ID: "agent-2", Type: models.ActorHuman},
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: "c7", Records: 1, Result: models.ResultAllowed},
	)
	if err := s.InsertEvents(t.Context(), evs, base); err != nil {
		t.Fatal(err)
	}
	cs := []models.Consent{
		{TS: base.Add(-time.Hour), Tenant: "t1", SubjectID: "c0", Purpose: "marketing", Granted: false},
		{TS: base.Add(-time.Hour), Tenant: "t1", SubjectID: "c1", Purpose: "analytics", Granted: false},
		{TS: base.Add(-time.Hour), Tenant: "t1", SubjectID: "c2", Purpose: "marketing", Granted: true},
		{TS: base.Add(2 * time.Hour), Tenant: "t1", SubjectID: "c3", Purpose: "marketing", Granted: false}, // after the access
		{TS: base.Add(-time.Hour), Tenant: "t1", SubjectID: "c7", Purpose: "marketing", Granted: false},    // not in the incident
	}
	if err := s.InsertConsents(t.Context(), cs, base); err != nil {
		t.Fatal(err)
	}
	f, err := s.IncidentFacts(t.Context(), []store.ActorWindow{{Tenant: "t1", ActorID: "agent-1", From: base, To: base.Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tenants) != 1 {
		t.Fatalf("tenants %+v", f.Tenants)
	}
	ti := f.Tenants[0]
	if ti.Customers != 5 || ti.WithdrawnConsent != 2 || ti.Events != 8 || ti.Records != 310 || ti.Exports != 1 || ti.ExportRecords != 300 ||
		ti.Shares != 2 || ti.ShareRecords != 5 || ti.Denied != 1 || !ti.First.Equal(base) || !ti.Last.Equal(base.Add(12*time.Minute)) ||
		len(ti.Actors) != 1 || ti.Actors[0] != "agent-1" {
		t.Fatalf("impact %+v", ti)
	}
	cats := map[string]string{}
	for _, c := range f.Categories {
		cats[c.Category] = fmt.Sprintf("%d/%d", c.Customers, c.Records)
	}
	if cats["email"] != "5/10" || cats["phone"] != "5/5" || cats["payment"] != "0/300" || cats["health"] != "" {
		t.Fatalf("categories %v", cats)
	}
	if len(f.Destinations) != 1 || f.Destinations[0].Destination != "drop.example" || f.Destinations[0].Records != 5 || f.Destinations[0].Subjects != 2 {
		t.Fatalf("destinations %+v", f.Destinations)
	}
	if len(f.Queries) != 4 || !strings.Contains(f.Queries[0].SQL, "actor_id = 'agent-1'") || strings.Contains(f.Queries[0].SQL, "?") {
		t.Fatalf("queries %+v", f.Queries)
	}
}
