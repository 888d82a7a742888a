package store_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// partialEvents returns n events of batch: two actors (the second a
// vendor's), a subject on two of three, a share to a destination on one
// of five, an export on the others of one of seven.
func partialEvents(batch string, n int, ts time.Time) []models.Event {
	var evs []models.Event
	for i := range n {
		e := models.Event{EventID: fmt.Sprintf("%s-%d", batch, i), TS: ts.Add(time.Duration(i) * 7 * time.Second), Tenant: "t",
			Actor:  models.Actor{ID: fmt.Sprintf("%s-actor-%d", batch, i%2), Type: models.ActorHuman, Role: "agent"},
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, Records: uint64(i + 1),
			Fields: []string{"email"}, Result: models.ResultAllowed}
		if i%2 == 1 {
			e.Actor.Type, e.Actor.Vendor = models.ActorVendor, "acme-bpo"
		}
		if i%3 != 0 {
			e.SubjectID = fmt.Sprintf("s%d", i)
		}
		if i%5 == 0 {
			e.Action, e.Destination = models.ActionShare, "partner.example"
		} else if i%7 == 0 {
			e.Action = models.ActionExport
		}
		evs = append(evs, e)
	}
	return evs
}

// viewCounts is what each view target holds, as counts.
func viewCounts(t *testing.T, cfg store.Config) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for name, q := range map[string]string{
		"events":                       "SELECT count() FROM events",
		"event_ids":                    "SELECT count() FROM event_ids",
		"events_by_subject":            "SELECT count() FROM events_by_subject",
		"shares":                       "SELECT count() FROM shares",
		"actor_minute events":          "SELECT sum(n) FROM (SELECT sumMerge(events) AS n FROM actor_minute GROUP BY minute, tenant, actor_id)",
		"actor_minute records":         "SELECT sum(n) FROM (SELECT sumMerge(records_sum) AS n FROM actor_minute GROUP BY minute, tenant, actor_id)",
		"actor_minute export recs.":    "SELECT sum(n) FROM (SELECT sumMerge(export_records) AS n FROM actor_minute GROUP BY minute, tenant, actor_id)",
		"actor_hour events":            "SELECT sum(n) FROM (SELECT sumMerge(events) AS n FROM actor_hour GROUP BY hour, tenant, actor_id)",
		"events_by_hour":               "SELECT count() FROM events_by_hour",
		"actor_hour records":           "SELECT sum(n) FROM (SELECT sumMerge(records_sum) AS n FROM actor_hour GROUP BY hour, tenant, actor_id)",
		"vendor_actor_hour events":     "SELECT sum(n) FROM (SELECT sumMerge(events) AS n FROM vendor_actor_hour GROUP BY hour, tenant, actor_id)",
		"vendor_actor_hour records":    "SELECT sum(n) FROM (SELECT sumMerge(records_sum) AS n FROM vendor_actor_hour GROUP BY hour, tenant, actor_id)",
		"actor_minute_exports events":  "SELECT sum(n) FROM (SELECT sumMerge(events) AS n FROM actor_minute_exports GROUP BY minute, tenant, actor_id)",
		"actor_minute_exports records": "SELECT sum(n) FROM (SELECT sumMerge(records_sum) AS n FROM actor_minute_exports GROUP BY minute, tenant, actor_id)",
	} {
		out[name] = storetest.Count(t, cfg, q)
	}
	return out
}

// wantCounts is what viewCounts must say once evs are stored completely.
func wantCounts(evs []models.Event) map[string]uint64 {
	out := map[string]uint64{"events": 0, "event_ids": 0, "events_by_subject": 0, "shares": 0,
		"actor_minute events": 0, "actor_minute records": 0, "actor_minute export recs.": 0,
		"actor_hour events": 0, "actor_hour records": 0, "events_by_hour": 0, "vendor_actor_hour events": 0, "vendor_actor_hour records": 0,
		"actor_minute_exports events": 0, "actor_minute_exports records": 0}
	for _, e := range evs {
		out["events"]++
		out["event_ids"]++
		out["actor_minute events"]++
		out["actor_minute records"] += e.Records
		out["actor_hour events"]++
		out["events_by_hour"]++
		out["actor_hour records"] += e.Records
		if e.Actor.Vendor != "" {
			out["vendor_actor_hour events"]++
			out["vendor_actor_hour records"] += e.Records
		}
		if e.SubjectID != "" {
			out["events_by_subject"]++
		}
		if e.Destination != "" {
			out["shares"]++
		}
		if e.Action == models.ActionShare || e.Action == models.ActionExport {
			out["actor_minute export recs."] += e.Records
		}
		if e.Action == models.ActionExport {
			out["actor_minute_exports events"]++
			out["actor_minute_exports records"] += e.Records
		}
	}
	return out
}

// insertWithViewsDetached inserts evs with the views named detached: what
// an insert that failed on a full disk before pushing to them leaves.
func insertWithViewsDetached(t *testing.T, s *store.Store, cfg store.Config, evs []models.Event, views ...string) {
	t.Helper()
	onCluster := ""
	if cfg.Cluster != "" {
		onCluster = " ON CLUSTER " + cfg.Cluster
	}
	for _, v := range views {
		storetest.Exec(t, cfg, "DETACH TABLE "+cfg.Database+"."+v+onCluster)
	}
	if err := s.InsertEvents(t.Context(), evs, evs[0].TS); err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		storetest.Exec(t, cfg, "ATTACH TABLE "+cfg.Database+"."+v+onCluster)
	}
}

func ids(evs []models.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.EventID)
	}
	return out
}

// TestCompletePartialInsert (issue 10 item 13, drill 5 full-serve): an
// insert that failed on a full disk may have written the events table and
// some of its materialized views but not the others. The retry's look-up
// returns the ids the events table holds, and writes the missing views'
// rows for them, without doubling the views that have them: every view
// ends as if the insert had succeeded. Before, the retry dropped the
// stored ids and event_ids, events_by_subject and actor_minute never got
// them (drill 5 full-serve: 30,000 events stored, 26,013 in event_ids).
func TestCompletePartialInsert(t *testing.T) {
	t.Parallel() // a database of its own
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute)
	ctx := t.Context()

	// No view written (the failure in the first view push).
	none := partialEvents("none", 20, base)
	insertWithViewsDetached(t, s, cfg, none, "actor_minute_mv", "event_ids_mv", "events_by_subject_mv", "shares_mv", "actor_hour_mv", "events_by_hour_mv", "vendor_actor_hour_mv",
		"actor_minute_exports_mv")
	// actor_minute and event_ids written, events_by_subject and shares not.
	half := partialEvents("half", 20, base.Add(time.Minute))
	insertWithViewsDetached(t, s, cfg, half, "events_by_subject_mv", "shares_mv")
	// event_ids only: actor_minute missing, the view pushed first on 18.16.
	first := partialEvents("first", 20, base.Add(3*time.Minute))
	insertWithViewsDetached(t, s, cfg, first, "actor_minute_mv", "events_by_subject_mv", "shares_mv", "actor_hour_mv", "vendor_actor_hour_mv",
		"actor_minute_exports_mv")
	// Stored completely.
	whole := partialEvents("whole", 20, base.Add(5*time.Minute))
	if err := s.InsertEvents(ctx, whole, base); err != nil {
		t.Fatal(err)
	}
	all := slices.Concat(none, half, first, whole)

	batch := append(ids(all), "never-stored-1", "never-stored-2")
	got, err := s.CompletePartialInsert(ctx, batch, base, base.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Stored) != len(all) || got.Stored["never-stored-1"] {
		t.Errorf("Stored holds %d ids (never-stored-1 %v), want the %d stored", len(got.Stored), got.Stored["never-stored-1"], len(all))
	}
	if len(got.Unsure) != 0 {
		t.Errorf("Unsure = %v, want none", got.Unsure)
	}
	wantWritten := map[string]int{
		"event_ids":            len(none),
		"events_by_subject":    int(wantCounts(none)["events_by_subject"] + wantCounts(half)["events_by_subject"] + wantCounts(first)["events_by_subject"]),
		"shares":               int(wantCounts(none)["shares"] + wantCounts(half)["shares"] + wantCounts(first)["shares"]),
		"actor_minute":         len(none) + len(first),
		"actor_hour":           len(none) + len(first),
		"events_by_hour":       len(none),
		"vendor_actor_hour":    int(wantCounts(none)["vendor_actor_hour events"] + wantCounts(first)["vendor_actor_hour events"]),
		"actor_minute_exports": int(wantCounts(none)["actor_minute_exports events"] + wantCounts(first)["actor_minute_exports events"]),
	}
	if !maps.Equal(got.Written, wantWritten) {
		t.Errorf("Written = %v, want %v", got.Written, wantWritten)
	}
	want := wantCounts(all)
	if c := viewCounts(t, cfg); !maps.Equal(c, want) {
		t.Errorf("after completing: %v, want %v", c, want)
	}

	// A second call (another retry) writes nothing.
	got, err = s.CompletePartialInsert(ctx, batch, base, base.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Written) != 0 || len(got.Stored) != len(all) {
		t.Errorf("second call: Written %v, %d stored; want nothing written, %d stored", got.Written, len(got.Stored), len(all))
	}
	if c := viewCounts(t, cfg); !maps.Equal(c, want) {
		t.Errorf("after a second call: %v, want %v", c, want)
	}

	// Nothing stored: nothing to write.
	got, err = s.CompletePartialInsert(ctx, []string{"never-stored-1"}, base, base.Add(time.Hour))
	if err != nil || len(got.Stored) != 0 || len(got.Written) != 0 {
		t.Errorf("ids never stored: %+v, %v; want nothing stored or written", got, err)
	}
}
