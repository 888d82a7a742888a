package store_test

import (
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

func TestMigrateIdempotent(t *testing.T) {
	t.Parallel() // a database of its own
	s := storetest.New(t)
	res, err := s.Migrate(t.Context(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 0 {
		t.Fatalf("second migrate applied %v", res.Applied)
	}
	ms, _ := store.Migrations()
	if res.Current != ms[len(ms)-1].Version {
		t.Fatalf("current %d, want %d", res.Current, ms[len(ms)-1].Version)
	}
}

func TestInsertEventsAndViews(t *testing.T) {
	t.Parallel() // a database of its own
	s := storetest.New(t)
	ctx := t.Context()
	base := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	evs := []models.Event{
		{EventID: "a", TS: base, Tenant: "t1", Actor: models.Actor{ID: "bot-1", Type: models.ActorBot},
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"},
			SubjectID: "s1", Records: 1, Fields: []string{"email", "phone"}, Result: models.ResultAllowed},
		{EventID: "b", TS: base.Add(10 * time.Second), Tenant: "t1", Actor: models.Actor{ID: "bot-1", Type: models.ActorBot},
			Action: models.ActionExport, Store: "crm", Resource: models.Resource{Type: "customer_profile"},
			SubjectID: "s2", Records: 500, Result: models.ResultDenied, Client: models.Client{Country: "DE"}},
		{EventID: "c", TS: base.Add(90 * time.Second), Tenant: "t1", Actor: models.Actor{ID: "agent-1", Type: models.ActorHuman},
			Action: models.ActionRead, Store: "orders", Resource: models.Resource{Type: "order"}, Records: 3, Result: models.ResultAllowed},
	}
	if err := s.InsertEvents(ctx, evs, base); err != nil {
		t.Fatal(err)
	}
	got, err := s.ExistingEventIDs(ctx, []string{"a", "c", "zzz"})
	if err != nil {
		t.Fatal(err)
	}
	if !got["a"] || !got["c"] || got["zzz"] || len(got) != 2 {
		t.Fatalf("existing ids = %v", got)
	}
	sum, err := s.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != 3 || sum.DistinctIDs != 3 || !sum.LastEventTS.Equal(base.Add(90*time.Second)) {
		t.Fatalf("summary = %+v", sum)
	}
	if sum.SchemaVersion == 0 || sum.Version == "" {
		t.Fatalf("summary lacks versions: %+v", sum)
	}
}

func TestConsentsLatestWins(t *testing.T) {
	t.Parallel() // a database of its own
	s := storetest.New(t)
	ctx := t.Context()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	err := s.InsertConsents(ctx, []models.Consent{
		{Tenant: "t", SubjectID: "s1", Purpose: "marketing", Granted: true, TS: t0},
		{Tenant: "t", SubjectID: "s1", Purpose: "marketing", Granted: false, TS: t0.Add(time.Hour)},
		{Tenant: "t", SubjectID: "s1", Purpose: "support", Granted: true, TS: t0},
	}, t0)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := s.ConsentsFor(ctx, "t", []string{"s1"})
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]bool{}
	for _, c := range cs {
		state[c.Purpose] = c.Granted
	}
	if state["marketing"] || !state["support"] || len(state) != 2 {
		t.Fatalf("consent state = %v", state)
	}
}

func TestDeadLettersDedupeByOffset(t *testing.T) {
	t.Parallel() // a database of its own
	s := storetest.New(t)
	ctx := t.Context()
	now := time.Now()
	dl := store.DeadLetter{ReceivedAt: now, Topic: "x", Partition: 1, Offset: 7, Reason: "bad_json", Payload: []byte("{")}
	for range 2 { // a redelivery writes the same offset again
		if err := s.InsertDeadLetters(ctx, []store.DeadLetter{dl}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.DeadLetterCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c["bad_json"] != 1 {
		t.Fatalf("dead letter counts = %v", c)
	}
}

// TestPIIStoredCounts (issue 14 item 4): the summary counts per producer
// the events stored pseudonymized, from the pii_in_payload findings
// ingest raised against them (score = events); other detectors' findings
// do not count.
func TestPIIStoredCounts(t *testing.T) {
	t.Parallel() // a database of its own
	s := storetest.New(t)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	f := func(det, actor string, n float64) store.StoredFinding {
		return store.StoredFinding{Finding: models.Finding{Detector: det, Tenant: "acme", ActorID: actor, WindowStart: now,
			WindowEnd: now.Add(time.Minute), DetectedAt: now, Score: n, Severity: models.SeverityMedium}}
	}
	if err := s.InsertFindings(ctx, []store.StoredFinding{f("pii_in_payload", "crm", 3), f("pii_in_payload", "crm", 2),
		f("pii_in_payload", "orders", 1), f("volume_spike", "crm", 40)}); err != nil {
		t.Fatal(err)
	}
	sum, err := s.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.PIIStoredByStore) != 2 || sum.PIIStoredByStore["crm"] != 5 || sum.PIIStoredByStore["orders"] != 1 {
		t.Fatalf("pii stored per producer = %v, want crm=5 orders=1", sum.PIIStoredByStore)
	}
}

func TestSuppressions(t *testing.T) {
	t.Parallel() // a database of its own
	s := storetest.New(t)
	ctx := t.Context()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	put := func(sp models.Suppression, v uint64) {
		t.Helper()
		if err := s.PutSuppression(ctx, sp, v); err != nil {
			t.Fatal(err)
		}
	}
	put(models.Suppression{ID: "a", Kind: models.SuppressAllow, ActorID: "svc-batch", CreatedAt: now, Author: "ana", Reason: "nightly job"}, 1)
	put(models.Suppression{ID: "b", Kind: models.SuppressSilence, Detector: "volume_spike", CreatedAt: now, Until: now.Add(time.Hour), Author: "bo", Reason: "promo"}, 1)
	put(models.Suppression{ID: "c", Kind: models.SuppressSilence, CreatedAt: now, Until: now.Add(-time.Minute), Author: "bo", Reason: "expired"}, 1)
	put(models.Suppression{ID: "d", Kind: models.SuppressFalsePositive, ActorID: "x", CreatedAt: now, Author: "cy", Reason: "fp"}, 1)
	put(models.Suppression{ID: "d", Kind: models.SuppressFalsePositive, ActorID: "x", CreatedAt: now, Author: "cy", Reason: "lifted", Deleted: true}, 2)
	got, err := s.Suppressions(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, sp := range got {
		ids[sp.ID] = true
	}
	if len(ids) != 2 || !ids["a"] || !ids["b"] {
		t.Fatalf("active suppressions = %v", got)
	}
}
