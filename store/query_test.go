package store_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// queryFixture inserts a small, hand-countable set of events:
// agent-1 reads s1..s5 (email, phone) in crm, one per minute from base;
// vendor-1 exports s1 and s6 (payment) from payments at base+1h;
// bot-1 reads s1 in conversation c-9 at base+2h with a purpose.
func queryFixture(t *testing.T) (*store.Store, time.Time) {
	t.Helper()
	s := storetest.New(t)
	base := time.Date(2026, 11, 16, 9, 0, 0, 0, time.UTC)
	var evs []models.Event
	for i := range 5 {
		evs = append(evs, models.Event{EventID: fmt.Sprintf("a%d", i), TS: base.Add(time.Duration(i) * time.Minute), Tenant: "t1",
			Actor: models.Actor{ID: "agent-1", Type: models.ActorHuman, Role: "support"}, Action: models.ActionRead, Store: "crm",
			Resource: models.Resource{Type: "customer_profile"}, SubjectID: fmt.Sprintf("s%d", i+1), Records: 1,
			Fields: []string{"email", "phone"}, Purpose: "support", Result: models.ResultAllowed, Client: models.Client{Country: "DE"}})
	}
	for i, sub := range []string{"s1", "s6"} {
		evs = append(evs, models.Event{EventID: fmt.Sprintf("v%d", i), TS: base.Add(time.Hour + time.Duration(i)*time.Second), Tenant: "t1",
			Actor: models.Actor{ID: "vendor-1", Type: models.ActorVendor, Vendor: "acme-bpo"}, Action: models.ActionExport, Store: "payments",
			Resource: models.Resource{Type: "payment_method"}, SubjectID: sub, Records: 100, Fields: []string{"payment"},
			Purpose: "billing", Result: models.ResultAllowed, Client: models.Client{Country: "PH"}})
	}
	evs = append(evs, models.Event{EventID: "b0", TS: base.Add(2 * time.Hour), Tenant: "t1",
		Actor: models.Actor{ID: "bot-1", Type: models.ActorBot}, Action: models.ActionRead, Store: "orders",
		Resource: models.Resource{Type: "order"}, SubjectID: "s1", Records: 2, Fields: []string{"order_history"},
		Purpose: "support", Conversation: models.Conversation{ID: "c-9", SubjectID: "s1"}, Tool: "lookup_order", Result: models.ResultDenied})
	if err := s.InsertEvents(t.Context(), evs, base); err != nil {
		t.Fatal(err)
	}
	return s, base
}

func TestHistoryFilters(t *testing.T) {
	s, base := queryFixture(t)
	day := store.HistoryFilter{From: base.Add(-time.Hour), To: base.Add(24 * time.Hour)}
	with := func(mod func(*store.HistoryFilter)) store.HistoryFilter { f := day; mod(&f); return f }
	cases := []struct {
		name string
		f    store.HistoryFilter
		want []string // event ids, newest first
		more bool
	}{
		{"actor", with(func(f *store.HistoryFilter) { f.ActorID = "agent-1" }), []string{"a4", "a3", "a2", "a1", "a0"}, false},
		{"actor limit", with(func(f *store.HistoryFilter) { f.ActorID = "agent-1"; f.Limit = 2 }), []string{"a4", "a3"}, true},
		{"subject any key", with(func(f *store.HistoryFilter) { f.SubjectIDs = []string{"s1", "s-old-key"} }), []string{"b0", "v0", "a0"}, false},
		{"store", with(func(f *store.HistoryFilter) { f.Store = "payments" }), []string{"v1", "v0"}, false},
		{"action", with(func(f *store.HistoryFilter) { f.Action = "export"; f.Tenant = "t1" }), []string{"v1", "v0"}, false},
		{"conversation", with(func(f *store.HistoryFilter) { f.ConversationID = "c-9" }), []string{"b0"}, false},
		{"time range", with(func(f *store.HistoryFilter) {
			f.ActorID = "agent-1"
			f.From = base.Add(time.Minute)
			f.To = base.Add(3 * time.Minute)
		}), []string{"a2", "a1"}, false},
		{"other tenant", with(func(f *store.HistoryFilter) { f.Tenant = "t2" }), nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs, more, err := s.History(t.Context(), c.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, e := range evs {
				ids = append(ids, e.EventID)
			}
			if !slices.Equal(ids, c.want) || more != c.more {
				t.Fatalf("got %v more=%v, want %v more=%v", ids, more, c.want, c.more)
			}
		})
	}
	t.Run("row content", func(t *testing.T) {
		evs, _, err := s.History(t.Context(), with(func(f *store.HistoryFilter) { f.ConversationID = "c-9" }))
		if err != nil {
			t.Fatal(err)
		}
		e := evs[0]
		if e.Actor.Type != models.ActorBot || e.Tool != "lookup_order" || e.Result != models.ResultDenied ||
			e.Conversation.SubjectID != "s1" || !slices.Equal(e.Fields, []string{"order_history"}) || !e.TS.Equal(base.Add(2*time.Hour)) {
			t.Fatalf("row = %+v", e)
		}
	})
	t.Run("bad range", func(t *testing.T) {
		if _, _, err := s.History(t.Context(), store.HistoryFilter{From: base, To: base}); err == nil {
			t.Fatal("empty range accepted")
		}
	})
}

func TestExposure(t *testing.T) {
	s, base := queryFixture(t)
	x, err := s.Exposure(t.Context(), store.HistoryFilter{From: base.Add(-time.Hour), To: base.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if x.Events != 8 || x.Subjects != 6 || x.Records != 207 || x.Actors != 3 || x.Exports != 2 || x.Denied != 1 {
		t.Fatalf("exposure = %+v", x)
	}
	if !x.First.Equal(base) || !x.Last.Equal(base.Add(2*time.Hour)) {
		t.Fatalf("first/last = %s %s", x.First, x.Last)
	}
	wantCats := []store.Count{{"email", 5}, {"phone", 5}, {"payment", 2}, {"order_history", 1}}
	if !slices.Equal(x.Categories, wantCats) {
		t.Fatalf("categories = %v", x.Categories)
	}
	if x.SensitiveSubjects() != 2 {
		t.Fatalf("sensitive subjects = %d", x.SensitiveSubjects())
	}
	w, err := s.ExposureOfWindows(t.Context(), []store.ActorWindow{
		{Tenant: "t1", ActorID: "vendor-1", From: base, To: base.Add(2 * time.Hour)},
		{Tenant: "t1", ActorID: "agent-1", From: base, To: base.Add(2 * time.Minute)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if w.Events != 4 || w.Subjects != 3 || w.Records != 202 {
		t.Fatalf("window exposure = %+v", w)
	}
	// A window of another tenant must not pull in the same actor's events here.
	cross, err := s.ExposureOfWindows(t.Context(), []store.ActorWindow{
		{Tenant: "t1", ActorID: "vendor-1", From: base, To: base.Add(2 * time.Hour)},
		{Tenant: "t2", ActorID: "agent-1", From: base, To: base.Add(2 * time.Hour)},
	})
	if err != nil || cross.Events != 2 || cross.Subjects != 2 {
		t.Fatalf("cross-tenant window exposure = %+v %v", cross, err)
	}
	empty, err := s.ExposureOfWindows(t.Context(), nil)
	if err != nil || empty.Events != 0 {
		t.Fatalf("empty windows: %+v %v", empty, err)
	}
}

func TestActorSeriesAndSubjectAccesses(t *testing.T) {
	s, base := queryFixture(t)
	ctx := t.Context()
	pts, err := s.ActorSeries(ctx, "t1", "agent-1", base, base.Add(time.Hour), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 5 || pts[0].Events != 1 || !pts[4].T.Equal(base.Add(4*time.Minute)) {
		t.Fatalf("minute series = %+v", pts)
	}
	hrs, err := s.ActorSeries(ctx, "", "agent-1", base, base.Add(time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(hrs) != 1 || hrs[0].Events != 5 || hrs[0].Subjects != 5 {
		t.Fatalf("hour series = %+v", hrs)
	}
	acc, more, err := s.SubjectAccesses(ctx, nil, []string{"s1"}, base.Add(-time.Hour), base.Add(24*time.Hour))
	if err != nil || more {
		t.Fatal(err, more)
	}
	var who []string
	for _, a := range acc {
		who = append(who, a.ActorID+"/"+a.Purpose+"/"+a.ConversationID)
	}
	if !slices.Equal(who, []string{"bot-1/support/c-9", "vendor-1/billing/", "agent-1/support/"}) {
		t.Fatalf("accesses = %v", who)
	}
	if acc[1].ActorVendor != "acme-bpo" || !slices.Equal(acc[1].Categories, []string{"payment"}) || acc[0].Denied != 1 {
		t.Fatalf("access lines = %+v", acc)
	}
	vol, err := s.DailyVolume(ctx, nil, base.Add(-24*time.Hour), base.Add(24*time.Hour))
	if err != nil || len(vol) != 1 || vol[0].Events != 8 || vol[0].Actors != 3 || vol[0].Exports != 2 {
		t.Fatalf("daily volume = %+v %v", vol, err)
	}
	vs, err := s.VendorActivity(ctx, nil, base.Add(-24*time.Hour), base.Add(24*time.Hour))
	if err != nil || len(vs) != 1 || vs[0].Vendor != "acme-bpo" || vs[0].Records != 200 || vs[0].Subjects != 2 {
		t.Fatalf("vendor activity = %+v %v", vs, err)
	}
	// Tenant-scoped (issue 10 item 8): t1's rows for t1, none for t2.
	if vol, err := s.DailyVolume(ctx, []string{"t1"}, base.Add(-24*time.Hour), base.Add(24*time.Hour)); err != nil || len(vol) != 1 || vol[0].Events != 8 {
		t.Fatalf("daily volume of t1 = %+v %v", vol, err)
	}
	if vol, err := s.DailyVolume(ctx, []string{"t2"}, base.Add(-24*time.Hour), base.Add(24*time.Hour)); err != nil || len(vol) != 0 {
		t.Fatalf("daily volume of t2 = %+v %v, want none", vol, err)
	}
	if vs, err := s.VendorActivity(ctx, []string{"t2"}, base.Add(-24*time.Hour), base.Add(24*time.Hour)); err != nil || len(vs) != 0 {
		t.Fatalf("vendor activity of t2 = %+v %v, want none", vs, err)
	}
}

func TestAuditLog(t *testing.T) {
	t.Parallel() // a database of its own
	s := storetest.New(t)
	ctx := t.Context()
	t0 := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	for i, a := range []store.AuditEntry{
		{TS: t0, User: "rita", Role: "responder", Source: "web", Action: "history", Detail: "actor=agent-1", Rows: 5},
		{TS: t0.Add(time.Minute), User: "root", Role: "admin", Source: "cli", Action: "dsar", Detail: "subject=p1ab", Rows: 3},
	} {
		if err := s.InsertAudit(ctx, a); err != nil {
			t.Fatal(i, err)
		}
	}
	all, err := s.AuditLog(ctx, store.AuditFilter{From: t0.Add(-time.Hour), To: t0.Add(time.Hour)})
	if err != nil || len(all) != 2 || all[0].Action != "dsar" || all[1].Rows != 5 {
		t.Fatalf("audit = %+v %v", all, err)
	}
	only, err := s.AuditLog(ctx, store.AuditFilter{From: t0.Add(-time.Hour), To: t0.Add(time.Hour), User: "rita"})
	if err != nil || len(only) != 1 || only[0].Detail != "actor=agent-1" {
		t.Fatalf("audit by user = %+v %v", only, err)
	}
}
