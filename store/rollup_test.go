package store_test

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// rollupFrom starts the week the rollup tests store events around (2026-W47).
var rollupFrom = time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)

// TestRollupReadersMatchRawEvents (issue 12): DailyVolume reads the
// hourly rollup actor_hour and VendorActivity the vendors' vendor_actor_hour for
// whole-hour ranges;
// over the raw tables (RawReads: actor_minute and events) they must return
// the same rows, for every tenant and for one, over a week and over a day
// that does not start at midnight. (report's
// TestWeeklyRollupMatchesRawEvents compares whole weekly reports.)
func TestRollupReadersMatchRawEvents(t *testing.T) {
	t.Parallel() // a database of its own
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	ctx := t.Context()
	from, to := rollupFrom, rollupFrom.AddDate(0, 0, 7)
	evs := storetest.MixedEvents(from, to)
	if err := s.InsertEvents(ctx, evs, to); err != nil {
		t.Fatal(err)
	}
	raw := s.RawReads()
	// The rollup holds every event once.
	if n := storetest.Count(t, cfg, "SELECT sum(n) FROM (SELECT sumMerge(events) AS n FROM actor_hour GROUP BY hour, tenant, actor_id)"); n != uint64(len(evs)) {
		t.Fatalf("actor_hour counts %d events, want %d", n, len(evs))
	}
	// vendor_actor_hour holds every vendor event once, and only those.
	vendorEvents := 0
	for _, e := range evs {
		if e.Actor.Vendor != "" {
			vendorEvents++
		}
	}
	if n := storetest.Count(t, cfg, "SELECT sum(n) FROM (SELECT sumMerge(events) AS n FROM vendor_actor_hour GROUP BY hour, tenant, actor_id)"); vendorEvents == 0 || n != uint64(vendorEvents) {
		t.Fatalf("vendor_actor_hour counts %d events, want the %d vendor events", n, vendorEvents)
	}
	for _, tenants := range [][]string{nil, {"t1"}} {
		for _, rng := range []struct{ from, to time.Time }{{from, to}, {from.Add(5 * time.Hour), from.Add(29 * time.Hour)}} {
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
				t.Errorf("tenants %v, %s..%s: VendorActivity from vendor_actor_hour %+v, from events %+v", tenants, rng.from, rng.to, vend, rawVend)
			}
		}
	}
}

// TestExposureFromEventsByHour (issue 12): the blast radius of many alert
// windows (more minutes than maxExposureSlots, so widened to hours) reads
// events_by_hour; over events (RawReads) it must be the same, and so must
// the blast radius of few windows (minutes, read from events either way).
func TestExposureFromEventsByHour(t *testing.T) {
	t.Parallel() // a database of its own
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	ctx := t.Context()
	from, to := rollupFrom, rollupFrom.AddDate(0, 0, 7)
	evs := storetest.MixedEvents(from, to)
	if err := s.InsertEvents(ctx, evs, to); err != nil {
		t.Fatal(err)
	}
	if n := storetest.Count(t, cfg, "SELECT count() FROM events_by_hour"); n != uint64(len(evs)) {
		t.Fatalf("events_by_hour holds %d events, want %d", n, len(evs))
	}
	var many []store.ActorWindow
	for i := range 150 {
		start := from.Add(time.Duration(i) * 67 * time.Minute)
		many = append(many, store.ActorWindow{Tenant: []string{"t1", "t2"}[i%2], ActorID: fmt.Sprintf("actor-%d", i%30),
			From: start, To: start.Add(20 * time.Minute)})
	}
	if !store.ExposureReadsHours(many) || store.ExposureReadsHours(many[:20]) {
		t.Fatalf("150 windows of 20 minutes must read events_by_hour, 20 of them events")
	}
	for _, ws := range [][]store.ActorWindow{many, many[:20]} {
		got, err := s.ExposureOfWindows(ctx, ws)
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.RawReads().ExposureOfWindows(ctx, ws)
		if err != nil {
			t.Fatal(err)
		}
		if got.Events == 0 || !reflect.DeepEqual(got, want) {
			t.Errorf("%d windows: exposure %+v, from events %+v", len(ws), got, want)
		}
	}
}

// TestBackFillOfTheRollups: on a database whose events were stored before
// actor_hour, events_by_hour, vendor_actor_hour (0018) and
// actor_minute_exports existed
// (their views detached
// while the events were inserted), the migrations that create them fill them from
// the stored events, and running them again (a back-fill that stopped
// part-way, then migrate again) leaves every event counted once.
func TestBackFillOfTheRollups(t *testing.T) {
	t.Parallel() // a database of its own
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	ctx := t.Context()
	// A day (26 hours of events): the back-fill runs hour by hour.
	from, to := rollupFrom, rollupFrom.AddDate(0, 0, 1)
	evs := storetest.MixedEvents(from, to)
	onCluster := ""
	if cfg.Cluster != "" {
		onCluster = " ON CLUSTER " + cfg.Cluster
	}
	views := []string{"actor_hour_mv", "events_by_hour_mv", "vendor_actor_hour_mv", "actor_minute_exports_mv"}
	for _, v := range views {
		storetest.Exec(t, cfg, "DETACH TABLE "+cfg.Database+"."+v+onCluster)
	}
	err := s.InsertEvents(ctx, evs, to)
	for _, v := range views {
		storetest.Exec(t, cfg, "ATTACH TABLE "+cfg.Database+"."+v+onCluster)
	}
	if err != nil {
		t.Fatal(err)
	}
	vendorEvents, exports := uint64(0), uint64(0)
	for _, e := range evs {
		if e.Actor.Vendor != "" {
			vendorEvents++
		}
		if e.Action == models.ActionExport {
			exports++
		}
	}
	if vendorEvents == 0 || exports == 0 {
		t.Fatalf("the events have %d of a vendor actor and %d exports, want some of each", vendorEvents, exports)
	}
	counts := map[string]string{
		"actor_hour":           "SELECT sum(n) FROM (SELECT sumMerge(events) AS n FROM actor_hour GROUP BY hour, tenant, actor_id)",
		"events_by_hour":       "SELECT count() FROM events_by_hour",
		"vendor_actor_hour":    "SELECT sum(n) FROM (SELECT sumMerge(events) AS n FROM vendor_actor_hour GROUP BY hour, tenant, actor_id)",
		"actor_minute_exports": "SELECT sum(n) FROM (SELECT sumMerge(events) AS n FROM actor_minute_exports GROUP BY minute, tenant, actor_id)",
	}
	check := func(when string, all, vendor, export uint64) {
		t.Helper()
		for table, q := range counts {
			want := all
			switch table {
			case "vendor_actor_hour":
				want = vendor
			case "actor_minute_exports":
				want = export
			}
			if n := storetest.Count(t, cfg, q); n != want {
				t.Fatalf("%s: %s counts %d events, want %d", when, table, n, want)
			}
		}
	}
	check("before the back-fill", 0, 0, 0)
	// 0018 creates vendor_actor_hour, back-fills it and drops vendor_hour
	// (which 0015 created and 0017 rebuilt), so those two cannot run
	// after it.
	backFills := []int{13, 14, 16, 18}
	for _, v := range backFills {
		if err := store.RunMigration(ctx, s, v); err != nil {
			t.Fatal(err)
		}
	}
	check("after the back-fill", uint64(len(evs)), vendorEvents, exports)
	for _, v := range backFills {
		if err := store.RunMigration(ctx, s, v); err != nil {
			t.Fatal(err)
		}
	}
	check("after the back-fill ran again", uint64(len(evs)), vendorEvents, exports)
	raw := s.RawReads()
	vol, err := s.DailyVolume(ctx, nil, from, to)
	if err != nil {
		t.Fatal(err)
	}
	rawVol, err := raw.DailyVolume(ctx, nil, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(vol, rawVol) {
		t.Errorf("after the back-fill DailyVolume from actor_hour %+v, from actor_minute %+v", vol, rawVol)
	}
	vend, err := s.VendorActivity(ctx, nil, from, to)
	if err != nil {
		t.Fatal(err)
	}
	rawVend, err := raw.VendorActivity(ctx, nil, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(vend) == 0 || !slices.Equal(vend, rawVend) {
		t.Errorf("after the back-fill VendorActivity from vendor_actor_hour %+v, from events %+v", vend, rawVend)
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

// TestVendorActivityRanksBeforeMerging (issue 12): VendorActivity over
// vendor_actor_hour merges the customer sets of the first MaxVendorActors actors
// by records only; with more vendor actors than that (ties on records,
// and the same actor id in two tenants with the same records) it must
// return the rows of the raw read over events, which aggregates every
// actor and keeps the first: the same actors, in the same order, with
// the same customer counts.
func TestVendorActivityRanksBeforeMerging(t *testing.T) {
	t.Parallel() // a database of its own
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	ctx := t.Context()
	from, to := rollupFrom, rollupFrom.AddDate(0, 0, 7)
	var evs []models.Event
	actors := store.MaxVendorActors + 60
	for a := range actors {
		for _, tenant := range []string{"t1", "t2"} {
			if tenant == "t2" && a%5 != 0 {
				continue
			}
			// 1 to 4 events an actor, records 1 to 3 each: many ties.
			for j := range 1 + a%4 {
				evs = append(evs, models.Event{EventID: fmt.Sprintf("v-%s-%d-%d", tenant, a, j), TS: from.Add(time.Duration(a*7+j*3000) * time.Minute % (7 * 24 * time.Hour)),
					Tenant: tenant, Actor: models.Actor{ID: fmt.Sprintf("vendor-%03d", a), Type: models.ActorVendor, Role: "outsourced", Vendor: "acme-bpo"},
					Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: fmt.Sprintf("s%d", (a+j)%(2+a%7)),
					Records: uint64(1 + (a+j)%3), Fields: []string{"email"}, Result: models.ResultAllowed})
			}
		}
	}
	if err := s.InsertEvents(ctx, evs, to); err != nil {
		t.Fatal(err)
	}
	raw := s.RawReads()
	for _, tenants := range [][]string{nil, {"t1"}} {
		vend, err := s.VendorActivity(ctx, tenants, from, to)
		if err != nil {
			t.Fatal(err)
		}
		rawVend, err := raw.VendorActivity(ctx, tenants, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if len(vend) != store.MaxVendorActors || !slices.Equal(vend, rawVend) {
			t.Errorf("tenants %v: VendorActivity from vendor_actor_hour (%d rows) %+v\nfrom events (%d rows) %+v", tenants, len(vend), vend, len(rawVend), rawVend)
		}
		for i := 1; i < len(vend); i++ {
			p, c := vend[i-1], vend[i]
			if p.Records < c.Records || p.Records == c.Records && (p.ActorID > c.ActorID || p.ActorID == c.ActorID && p.Tenant > c.Tenant) {
				t.Fatalf("tenants %v: row %d %+v before row %d %+v: not most records, then actor, then tenant first", tenants, i-1, p, i, c)
			}
		}
	}
}
