package detect

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

func shareEvent(tenant, actor, dest string, recs uint64, res models.Result) models.Event {
	return models.Event{EventID: "e-" + actor + "-" + dest, TS: time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC), Tenant: tenant,
		Actor: models.Actor{ID: actor, Type: models.ActorHuman}, Action: models.ActionShare, Store: "crm",
		Resource: models.Resource{Type: "customer_profile"}, Records: recs, Fields: []string{"email"}, Result: res, Destination: dest}
}

// TestDestinationAllowlist: the rule fires for a share or export to a
// destination the tenant's allow-list does not name (exact names without
// letter case, "*." subdomains, per-tenant additions), not for a denied
// one, not for a tenant without a list, not for a share without one.
func TestDestinationAllowlist(t *testing.T) {
	cfg := Config{Destinations: DestinationsConfig{Tenants: map[string][]string{
		"retail": {"acme-analytics.example", "*.partner.example"}, "bank": {"ledger.example"}}}}
	r, err := NewRules(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 16, 10, 1, 0, 0, time.UTC)
	exp := shareEvent("retail", "a6", "dropbox.example", 9, models.ResultAllowed)
	exp.Action = models.ActionExport
	cases := []struct {
		name string
		ev   models.Event
		fire bool
	}{
		{"listed", shareEvent("retail", "a1", "acme-analytics.example", 5, models.ResultAllowed), false},
		{"listed other case", shareEvent("retail", "a1", "ACME-Analytics.example", 5, models.ResultAllowed), false},
		{"subdomain", shareEvent("retail", "a1", "eu.partner.example", 5, models.ResultAllowed), false},
		{"the wildcard's own domain", shareEvent("retail", "a2", "partner.example", 5, models.ResultAllowed), true},
		{"another tenant's entry", shareEvent("retail", "a3", "ledger.example", 5, models.ResultAllowed), true},
		{"unlisted", shareEvent("retail", "a4", "dropbox.example", 5, models.ResultAllowed), true},
		{"unlisted but denied", shareEvent("retail", "a5", "dropbox.example", 5, models.ResultDenied), false},
		{"unlisted export", exp, true},
		{"tenant without a list", shareEvent("travel", "a7", "dropbox.example", 5, models.ResultAllowed), false},
		{"no destination", shareEvent("retail", "a8", "", 5, models.ResultAllowed), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := r.Check(now, []models.Event{c.ev}, nil)
			if got := len(fs) == 1 && fs[0].Detector == RuleDestinationAllowlist; got != c.fire || len(fs) > 1 {
				t.Fatalf("findings %+v, want fire=%v", fs, c.fire)
			}
			if c.fire && (fs[0].Evidence.Destinations[0] != c.ev.Destination || !strings.Contains(fs[0].Evidence.Query, "destination = ")) {
				t.Fatalf("evidence %+v", fs[0].Evidence)
			}
		})
	}
	// A global list applies to every tenant.
	r, _ = NewRules(Config{Destinations: DestinationsConfig{Allow: []string{"acme-analytics.example"}}}, nil)
	if fs := r.Check(now, []models.Event{shareEvent("travel", "a7", "dropbox.example", 5, models.ResultAllowed)}, nil); len(fs) != 1 {
		t.Fatalf("global list: %+v", fs)
	}
}

// TestDestinationsConfigNamesField: each bad entry is reported with its
// field path.
func TestDestinationsConfigNamesField(t *testing.T) {
	cases := map[string]DestinationsConfig{
		"detect.destinations.allow[1]":            {Allow: []string{"ok.example", " padded.example"}},
		"detect.destinations.allow[0]":            {Allow: []string{"a*.example"}},
		"detect.destinations.tenants.retail[0]":   {Tenants: map[string][]string{"retail": {""}}},
		"detect.destinations.tenants.retail":      {Tenants: map[string][]string{"retail": {}}},
		"detect.destinations.volume_tail_prob":    {VolumeTailProb: 2},
		"detect.destinations.volume_min_hours":    {VolumeMinHours: 1},
		"detect.destinations.rare_actors":         {RareActors: -1},
		"detect.destinations.allow[0]: \"*.\": a": {Allow: []string{"*."}},
	}
	for want, dc := range cases {
		err := Config{Destinations: dc}.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: error %v, want it to name %s", dc, err, want)
		}
	}
	if err := (Config{Destinations: DestinationsConfig{Allow: []string{"*.partner.example", "Acme Ltd"}}}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func destRow(start time.Time, tenant, actor, dest string, recs uint64) store.DestinationActivity {
	return store.DestinationActivity{WindowStart: start, Tenant: tenant, ActorID: actor, Destination: dest, Events: 1, Records: recs,
		Categories: []string{"email"}}
}

func findingsOf(fs []models.Finding, det string) []models.Finding {
	var out []models.Finding
	for _, f := range fs {
		if f.Detector == det {
			out = append(out, f)
		}
	}
	return out
}

// TestDestinationNew: a destination new to the actor fires while few
// actors on few days used it in the tenant, once; not for a destination
// common in the tenant, not for an allow-listed one, not before the tenant
// was watched for the warm-up.
func TestDestinationNew(t *testing.T) {
	e, err := New(Config{Destinations: DestinationsConfig{Allow: []string{"new-processor.example"}}}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	day0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	e.tenantSeen["t"] = day0.Unix()
	// 4 days in which five agents share with the BPO every day (the
	// tenant is watched from day0; the warm-up is 1 day)
	for d := range 4 {
		at := day0.Add(time.Duration(d) * 24 * time.Hour)
		var rows []store.DestinationActivity
		for a := range 5 {
			rows = append(rows, destRow(at, "t", fmt.Sprintf("agent-%d", a), "bpo.example", 3))
		}
		if d == 0 {
			rows = append(rows, destRow(at, "t", "agent-0", "early.example", 3))
		}
		fs := e.destinations(at, at.Add(time.Minute), rows)
		if got := findingsOf(fs, DetDestinationNew); len(got) > 0 {
			t.Fatalf("day %d (early.example on day 0, before the warm-up): %+v", d, got)
		}
	}
	at := day0.Add(4*24*time.Hour + time.Hour)
	fs := e.destinations(at, at.Add(time.Minute), []store.DestinationActivity{
		destRow(at, "t", "agent-9", "bpo.example", 2),            // new to the actor, common in the tenant
		destRow(at, "t", "agent-1", "pastebin.example", 40),      // new to the tenant
		destRow(at, "t", "agent-2", "new-processor.example", 30), // new, but allow-listed
		destRow(at, "t", "agent-3", "early.example", 3),          // one actor, one day before: rare
	})
	got := findingsOf(fs, DetDestinationNew)
	if len(got) != 2 || got[0].ActorID != "agent-1" || got[0].Evidence.Destinations[0] != "pastebin.example" || got[1].ActorID != "agent-3" {
		t.Fatalf("findings %+v, want agent-1 (pastebin) and agent-3 (early)", got)
	}
	if !strings.Contains(got[0].Evidence.Query, "FROM shares") || got[0].Evidence.Notes["actors_before"] != 0 {
		t.Fatalf("evidence %+v", got[0].Evidence)
	}
	at = at.Add(time.Minute)
	if fs := findingsOf(e.destinations(at, at.Add(time.Minute), []store.DestinationActivity{destRow(at, "t", "agent-1", "pastebin.example", 40)}), DetDestinationNew); len(fs) != 0 {
		t.Fatalf("fired again for the same actor: %+v", fs)
	}
}

// TestDestinationVolume: an hour far above the destination's own hours
// fires once, naming the actor that sent most; a busy but plausible hour
// does not; a fired hour is not learned.
func TestDestinationVolume(t *testing.T) {
	e, err := New(Config{}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	// 48 hours of 80..130 records
	for h := range 48 {
		at := h0.Add(time.Duration(h) * time.Hour)
		recs := uint64(80 + (h*37)%50)
		if fs := e.destinations(at, at.Add(time.Minute), []store.DestinationActivity{destRow(at, "t", "svc-sync", "crm-partner.example", recs)}); len(fs) != 0 {
			t.Fatalf("hour %d: %+v", h, fs)
		}
	}
	busy := h0.Add(48 * time.Hour)
	if fs := e.destinations(busy, busy.Add(time.Minute), []store.DestinationActivity{destRow(busy, "t", "svc-sync", "crm-partner.example", 190)}); len(fs) != 0 {
		t.Fatalf("a busy hour fired: %+v", fs)
	}
	spike := h0.Add(49 * time.Hour)
	fs := e.destinations(spike, spike.Add(time.Minute), []store.DestinationActivity{
		destRow(spike, "t", "agent-7", "crm-partner.example", 4000),
		destRow(spike, "t", "svc-sync", "crm-partner.example", 100),
	})
	got := findingsOf(fs, DetDestinationVolume)
	if len(got) != 1 || got[0].ActorID != "agent-7" || got[0].Probability >= 1e-4 || got[0].Evidence.Observed != 4100 {
		t.Fatalf("findings %+v", fs)
	}
	next := spike.Add(time.Minute)
	if fs := e.destinations(next, next.Add(time.Minute), []store.DestinationActivity{destRow(next, "t", "agent-7", "crm-partner.example", 4000)}); len(fs) != 0 {
		t.Fatalf("fired twice in one hour: %+v", fs)
	}
	d := e.dests[destKey{"t", "crm-partner.example"}]
	after := spike.Add(time.Hour)
	e.destinations(after, after.Add(time.Minute), []store.DestinationActivity{destRow(after, "t", "svc-sync", "crm-partner.example", 100)})
	if len(d.Hours) != 49 {
		t.Fatalf("%d hours learned, want 49 (the fired hour left out)", len(d.Hours))
	}
}

// TestDestinationNewEarlyDays: on the tenant's second day, a destination
// used (by two actors) on its first day is not rare; one never used is.
func TestDestinationNewEarlyDays(t *testing.T) {
	e, err := New(Config{}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	day0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	e.tenantSeen["t"] = day0.Unix()
	e.destinations(day0, day0.Add(time.Minute), []store.DestinationActivity{destRow(day0, "t", "bill-1", "psp.example", 1), destRow(day0, "t", "bill-2", "psp.example", 1)})
	at := day0.Add(25 * time.Hour)
	got := findingsOf(e.destinations(at, at.Add(time.Minute), []store.DestinationActivity{
		destRow(at, "t", "bill-3", "psp.example", 1), destRow(at, "t", "bill-3", "quickdrop.example", 5)}), DetDestinationNew)
	if len(got) != 1 || got[0].Evidence.Destinations[0] != "quickdrop.example" {
		t.Fatalf("findings %+v, want quickdrop.example only", got)
	}
}

// TestDestinationNewWarmsUpPerGroup: a tenant whose bot was watched from
// day 0 and whose support agents start work at 19:00 on day 1 (a sparse
// rota): the agents' everyday carrier is not "new" while the agents' own
// group has been watched for less than the warm-up, nor, on the group's
// first whole day, once it was used on every day the group was watched. A
// destination none of them used is new once the group is warm, and so is
// one the bot (its group warm from day 0) never used. Before the warm-up
// was per group, the three agents' first shares raised three findings
// (the rota sparse-weekly seed 4 cell).
func TestDestinationNewWarmsUpPerGroup(t *testing.T) {
	e, err := New(Config{}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	day0 := time.Date(2026, 10, 19, 0, 0, 0, 0, time.UTC)
	see := func(at time.Time, actor, role string) {
		if e.actors[actorKey{"t", actor}] == nil {
			e.actors[actorKey{"t", actor}] = &actorState{Role: role}
		}
		e.noteTenants(at, []windowRow{{WindowStart: at, Tenant: "t", ActorID: actor, ActorRole: role}})
	}
	judge := func(at time.Time, rows ...store.DestinationActivity) []models.Finding {
		t.Helper()
		return findingsOf(e.destinations(at, at.Add(time.Minute), rows), DetDestinationNew)
	}
	see(day0, "va", "virtual-agent")
	see(day0.Add(24*time.Hour+19*time.Hour), "agent-1", "care-agent")
	for _, s := range []struct {
		after time.Duration
		actor string
	}{{26*time.Hour + 59*time.Minute, "agent-1"}, {38 * time.Hour, "agent-2"}, {43*time.Hour + 20*time.Minute, "agent-3"}} {
		at := day0.Add(s.after)
		see(at, s.actor, "care-agent")
		if got := judge(at, destRow(at, "t", s.actor, "parcelco.example", 1)); len(got) != 0 {
			t.Errorf("%s's first share with the carrier at %s: %+v, want none", s.actor, at.Format(time.RFC3339), got)
		}
	}
	at := day0.Add(3*24*time.Hour + 10*time.Hour)
	see(at, "agent-4", "care-agent")
	if got := judge(at, destRow(at, "t", "agent-4", "box-personal.example", 3)); len(got) != 1 || got[0].ActorID != "agent-4" {
		t.Errorf("an agent's share with a destination nobody used, the group warm: %+v, want one finding", got)
	}
	at = day0.Add(3*24*time.Hour + 11*time.Hour)
	if got := judge(at, destRow(at, "t", "va", "pastebin.example", 3)); len(got) != 1 || got[0].ActorID != "va" {
		t.Errorf("the bot's share with a destination nobody used: %+v, want one finding", got)
	}
}

// TestGroupSeenCheckpoint: the groups' first sights survive a checkpoint;
// one written before they were kept seeds them from the actors' first
// windows.
func TestGroupSeenCheckpoint(t *testing.T) {
	e, err := New(Config{}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 10, 20, 19, 11, 0, 0, time.UTC)
	e.noteTenants(at, []windowRow{{WindowStart: at, Tenant: "t", ActorID: "agent-1", ActorRole: "care-agent"}})
	b, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := New(Config{}, nil, Options{})
	if err := e2.Restore(b); err != nil {
		t.Fatal(err)
	}
	k := groupKey{"t", e2.groupOf("care-agent", "")}
	if got := e2.groupSeen[k]; got != at.Unix() {
		t.Errorf("restored first sight %d, want %d", got, at.Unix())
	}
	old, err := encodeSnapshot(&snapshot{TenantSeen: map[string]int64{"t": at.Unix() - 86400},
		Actors: map[actorKey]*actorState{{"t", "agent-1"}: {Role: "care-agent", FirstSeen: at.Unix()}, {"t", "agent-2"}: {Role: "care-agent", FirstSeen: at.Unix() + 3600}}})
	if err != nil {
		t.Fatal(err)
	}
	e3, _ := New(Config{}, nil, Options{})
	if err := e3.Restore(old); err != nil {
		t.Fatal(err)
	}
	if got := e3.groupSeen[k]; got != at.Unix() {
		t.Errorf("seeded first sight %d, want the earliest actor's %d", got, at.Unix())
	}
}
