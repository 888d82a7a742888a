package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
)

// TestAssess (issue 14 item 3) on the real store: an alert on an agent who
// read three customers (one of whom had withdrawn consent) and shared one
// with a new destination; the figures, the 72-hour clock from the alert's
// first_seen, the draft, and every format naming the queries.
func TestAssess(t *testing.T) {
	s := storetest.New(t)
	base := time.Date(2026, 11, 16, 9, 0, 0, 0, time.UTC)
	agent := models.Actor{ID: "agent-5", Type: models.ActorHuman}
	var evs []models.Event
	for i := range 3 {
		evs = append(evs, models.Event{EventID: fmt.Sprintf("r%d", i), TS: base.Add(time.Duration(i) * time.Minute), Tenant: "t1", Actor: agent,
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: fmt.Sprintf("c%d", i),
			Records: 1, Fields: []string{"email", "dob"}, Result: models.ResultAllowed})
	}
	evs = append(evs, models.Event{EventID: "s1", TS: base.Add(5 * time.Minute), Tenant: "t1", Actor: agent, Action: models.ActionShare,
		Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: "c0", Records: 40, Fields: []string{"email"},
		Result: models.ResultAllowed, Destination: "quickdrop.example"})
	if err := s.InsertEvents(t.Context(), evs, base); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertConsents(t.Context(), []models.Consent{{TS: base.Add(-time.Hour), Tenant: "t1", SubjectID: "c2", Purpose: "marketing"}}, base); err != nil {
		t.Fatal(err)
	}
	detected := base.Add(6 * time.Minute)
	al := models.Alert{ID: "al-9", Detector: "destination_new", Tenant: "t1", ActorID: "agent-5", Severity: models.SeverityHigh,
		Status: models.StatusOpen, FirstSeen: detected, LastSeen: detected,
		Latest: models.Finding{WindowStart: base, WindowEnd: base.Add(6 * time.Minute), Summary: "agent-5 sent 40 records to quickdrop.example"}}
	now := detected.Add(10 * time.Hour)
	as, err := Assess(t.Context(), s, []models.Alert{al}, now)
	if err != nil {
		t.Fatal(err)
	}
	if as.ID != "al-9" || as.Customers != 3 || as.WithdrawnConsent != 1 || as.Records != 43 || as.Events != 4 || !as.DataLeft ||
		!as.First.Equal(base) || !as.Last.Equal(base.Add(5*time.Minute)) || len(as.Actors) != 1 {
		t.Fatalf("assessment %+v", as)
	}
	if !as.NotifyBy.Equal(detected.Add(72*time.Hour)) || as.HoursLeft != 62 {
		t.Fatalf("clock: notify by %s, %.1f h left", as.NotifyBy, as.HoursLeft)
	}
	if got := as.CategoryNames(); strings.Join(got, ",") != "dob,email" {
		t.Fatalf("categories %v (sensitive first)", got)
	}
	for _, want := range []string{"2026-11-19 09:06", "Approximately 3 customer(s) and 43 record(s)", "dob, email",
		"1 of these customers had withdrawn consent", "quickdrop.example (40 records)"} {
		if !strings.Contains(as.Draft, want) {
			t.Errorf("draft lacks %q:\n%s", want, as.Draft)
		}
	}
	for _, f := range []string{AssessText, AssessMarkdown, AssessJSON} {
		var b bytes.Buffer
		if err := RenderAssessment(&b, as, f); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, q := range []string{"impact", "withdrawn_consent", "categories", "destinations"} {
			if !strings.Contains(out, q) {
				t.Errorf("%s output does not name query %s", f, q)
			}
		}
		if !strings.Contains(out, "actor_id = 'agent-5'") {
			t.Errorf("%s output lacks the queries' SQL", f)
		}
	}
	var b bytes.Buffer
	_ = RenderAssessment(&b, as, AssessMarkdown)
	if !strings.Contains(b.String(), "[withdrawn_consent](#query-withdrawn_consent)") || !strings.Contains(b.String(), `<a id="query-withdrawn_consent"></a>`) {
		t.Fatalf("markdown figures do not link their queries:\n%s", b.String())
	}
	var back Assessment
	b.Reset()
	_ = RenderAssessment(&b, as, AssessJSON)
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.FigureQuery["withdrawn_consent"] != "withdrawn_consent" {
		t.Fatalf("json: %v %+v", err, back.FigureQuery)
	}
	if err := RenderAssessment(&b, as, "pdf"); err == nil {
		t.Fatal("unknown format accepted")
	}
	if ids, err := ParseIncidentID("al-2+al-1+al-2"); err != nil || strings.Join(ids, ",") != "al-1,al-2" || IncidentID(ids) != "al-1+al-2" {
		t.Fatalf("ids %v %v", ids, err)
	}
	if _, err := ParseIncidentID("al-1++al-2"); err == nil {
		t.Fatal("empty alert id accepted")
	}
}
