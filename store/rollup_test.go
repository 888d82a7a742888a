package store_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/report"
	"github.com/chatwarden/chatwarden/store"
)

// rollupEvents returns about 3,000 events around week w: two tenants, 30
// actors (every third a vendor actor of one of two vendors, one actor of
// the same id in both tenants; a few of a vendor actor's events name no
// vendor), reads, exports and shares, denied ones,
// events without a customer, customers that recur; some in the hour
// before and after the week, and at its first and last second.
func rollupEvents(w report.Week) []models.Event {
	from, to := w.Start(), w.End()
	span := to.Sub(from) + 2*time.Hour
	var evs []models.Event
	for i := range 3000 {
		ts := from.Add(-time.Hour + time.Duration(int64(i)*7919%int64(span/time.Second))*time.Second)
		switch i {
		case 0:
			ts = from
		case 1:
			ts = to.Add(-time.Second)
		case 2:
			ts = to
		}
		a := i * 13 % 30
		tenant := []string{"t1", "t2"}[i%2]
		if a == 7 {
			tenant = "t1" // actor-7 only in t1; actor-8 in both
		}
		actor := models.Actor{ID: fmt.Sprintf("actor-%d", a), Type: models.ActorHuman, Role: "agent"}
		if a%3 == 0 && i%50 != 3 { // a few of a vendor actor's events without the vendor
			actor.Type, actor.Vendor, actor.Role = models.ActorVendor, []string{"acme-bpo", "globex"}[a/3%2], "outsourced"
		}
		e := models.Event{EventID: fmt.Sprintf("r-%d", i), TS: ts, Tenant: tenant, Actor: actor, Action: models.ActionRead,
			Store: []string{"crm", "orders", "tickets"}[i%3], Resource: models.Resource{Type: "customer_profile"},
			Records: uint64(1 + i%4), Fields: []string{"email"}, Result: models.ResultAllowed}
		if i%4 != 0 {
			e.SubjectID = fmt.Sprintf("s%d", i%211)
		}
		switch {
		case i%17 == 0:
			e.Action, e.Records, e.Destination = models.ActionShare, uint64(40+i%9), "partner.example"
		case i%11 == 0:
			e.Action, e.Records = models.ActionExport, uint64(100+i%7)
		}
		if i%23 == 0 {
			e.Result = models.ResultDenied
		}
		evs = append(evs, e)
	}
	return evs
}

// rollupAlerts returns alerts of week w on vendor and other actors, so
// that the report's vendors table has alerts and scores as well.
func rollupAlerts(w report.Week) []store.AlertRow {
	var rows []store.AlertRow
	for i := range 12 {
		first := w.Start().Add(time.Duration(i) * 9 * time.Hour)
		a := models.Alert{ID: fmt.Sprintf("ra-%d", i), Detector: []string{"volume_spike", "vendor_scope", "enumeration"}[i%3],
			Tenant: []string{"t1", "t2"}[i%2], ActorID: fmt.Sprintf("actor-%d", i*3%30), Severity: models.Severity(i % 5),
			Status: models.AlertStatuses[i%4], FirstSeen: first, LastSeen: first.Add(20 * time.Minute), Findings: 1 + i%3,
			Latest: models.Finding{WindowStart: first, WindowEnd: first.Add(20 * time.Minute), Summary: "rollup test"}}
		if i%2 == 0 {
			a.Latest.ActorVendor = []string{"acme-bpo", "globex"}[i/2%2]
		}
		rows = append(rows, store.AlertRow{Alert: a, Version: 1})
	}
	return rows
}

// TestWeeklyRollupMatchesRawEvents (issue 12): the weekly report's daily
// volume and vendor activity read the hourly rollup actor_hour; the same
// report over the raw tables (actor_minute and events) must be the same,
// field for field, for every tenant and for one.
func TestWeeklyRollupMatchesRawEvents(t *testing.T) {
	t.Parallel() // a database of its own
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	ctx := t.Context()
	w := report.Week{Year: 2026, Num: 47}
	evs := rollupEvents(w)
	if err := s.InsertEvents(ctx, evs, w.End()); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAlerts(ctx, rollupAlerts(w)); err != nil {
		t.Fatal(err)
	}
	raw := store.WithoutRollups(s)
	// The rollup holds what it must: every event once (not read by the
	// report through it unless it does).
	if n := storetest.Count(t, cfg, "SELECT sum(n) FROM (SELECT sumMerge(events) AS n FROM actor_hour GROUP BY hour, tenant, actor_id)"); n != uint64(len(evs)) {
		t.Fatalf("actor_hour counts %d events, want %d", n, len(evs))
	}
	now := w.End().Add(time.Hour)
	for _, tenants := range [][]string{nil, {"t1"}} {
		for _, rng := range []struct{ from, to time.Time }{{w.Start(), w.End()}, {w.Start().Add(5 * time.Hour), w.Start().Add(29 * time.Hour)}} {
			vol, err := s.DailyVolume(ctx, tenants, rng.from, rng.to)
			if err != nil {
				t.Fatal(err)
			}
			rawVol, err := raw.DailyVolume(ctx, tenants, rng.from, rng.to)
			if err != nil {
				t.Fatal(err)
			}
			if len(vol) == 0 || !slices.Equal(vol, rawVol) {
				t.Errorf("tenants %v, %s..%s: DailyVolume from actor_hour %+v, from actor_minute %+v", tenants, rng.from, rng.to, vol, rawVol)
			}
			vend, err := s.VendorActivity(ctx, tenants, rng.from, rng.to)
			if err != nil {
				t.Fatal(err)
			}
			rawVend, err := raw.VendorActivity(ctx, tenants, rng.from, rng.to)
			if err != nil {
				t.Fatal(err)
			}
			if len(vend) == 0 || !slices.Equal(vend, rawVend) {
				t.Errorf("tenants %v, %s..%s: VendorActivity from actor_hour %+v, from events %+v", tenants, rng.from, rng.to, vend, rawVend)
			}
		}
		rep := func(st *store.Store) string {
			r := &report.Reporter{Events: st, Risk: st, Shares: st, Alerts: report.StoreAlerts(st)}
			sum, err := r.WeeklyFor(ctx, w, tenants, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(sum.Volume) != 7 || len(sum.TopVendors) == 0 {
				t.Fatalf("tenants %v: the report has %d days of volume and %d vendors, want 7 and some", tenants, len(sum.Volume), len(sum.TopVendors))
			}
			b, err := json.MarshalIndent(sum, "", " ")
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		if got, want := rep(s), rep(raw); got != want {
			t.Errorf("tenants %v: the weekly report from the rollup differs from the one from raw events:\n%s\nwant\n%s", tenants, got, want)
		}
	}
}

// TestActorHourBackFill: on a database whose events were stored before
// actor_hour existed (its view detached while they were inserted), the
// migration that creates it fills it from the stored events.
func TestActorHourBackFill(t *testing.T) {
	t.Parallel() // a database of its own
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	ctx := t.Context()
	w := report.Week{Year: 2026, Num: 47}
	evs := rollupEvents(w)
	onCluster := ""
	if cfg.Cluster != "" {
		onCluster = " ON CLUSTER " + cfg.Cluster
	}
	storetest.Exec(t, cfg, "DETACH TABLE "+cfg.Database+".actor_hour_mv"+onCluster)
	if err := s.InsertEvents(ctx, evs, w.End()); err != nil {
		t.Fatal(err)
	}
	storetest.Exec(t, cfg, "ATTACH TABLE "+cfg.Database+".actor_hour_mv"+onCluster)
	const q = "SELECT sum(n) FROM (SELECT sumMerge(events) AS n FROM actor_hour GROUP BY hour, tenant, actor_id)"
	if n := storetest.Count(t, cfg, q); n != 0 {
		t.Fatalf("actor_hour counts %d events before the back-fill, want 0", n)
	}
	if err := store.RunMigration(ctx, s, 13); err != nil {
		t.Fatal(err)
	}
	if n := storetest.Count(t, cfg, q); n != uint64(len(evs)) {
		t.Fatalf("actor_hour counts %d events after the back-fill, want %d", n, len(evs))
	}
	raw := store.WithoutRollups(s)
	vol, err := s.DailyVolume(ctx, nil, w.Start(), w.End())
	if err != nil {
		t.Fatal(err)
	}
	rawVol, err := raw.DailyVolume(ctx, nil, w.Start(), w.End())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(vol, rawVol) {
		t.Errorf("after the back-fill DailyVolume from actor_hour %+v, from actor_minute %+v", vol, rawVol)
	}
	vend, err := s.VendorActivity(ctx, nil, w.Start(), w.End())
	if err != nil {
		t.Fatal(err)
	}
	rawVend, err := raw.VendorActivity(ctx, nil, w.Start(), w.End())
	if err != nil {
		t.Fatal(err)
	}
	if len(vend) == 0 || !slices.Equal(vend, rawVend) {
		t.Errorf("after the back-fill VendorActivity from actor_hour %+v, from events %+v", vend, rawVend)
	}
}

// TestHourDaysByTimeZone: actor_hour's UTC hours make up the days of a
// server time zone with whole-hour offsets only; in a zone with a half- or
// quarter-hour offset (or a half-hour daylight saving shift) DailyVolume
// reads actor_minute.
func TestHourDaysByTimeZone(t *testing.T) {
	s := storetest.New(t)
	for tz, want := range map[string]bool{"UTC": true, "Europe/Berlin": true, "America/New_York": true,
		"Asia/Kolkata": false, "America/St_Johns": false, "Asia/Kathmandu": false, "Australia/Lord_Howe": false} {
		got, err := store.HourDaysIn(t.Context(), s, tz)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: days start on whole UTC hours = %v, want %v", tz, got, want)
		}
	}
}
