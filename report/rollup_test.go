package report

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// rollupAlerts returns alerts of week w on vendor and other actors, so
// that the report's vendors table has alerts and scores as well.
func rollupAlerts(w Week) []store.AlertRow {
	var rows []store.AlertRow
	// 150 alerts of 20 minutes: 3,000 minutes, more than the exposure
	// reads minute by minute, so it reads whole hours (events_by_hour).
	for i := range 150 {
		first := w.Start().Add(time.Duration(i) * 67 * time.Minute)
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
// volume reads the hourly rollup actor_hour, its vendor activity the
// vendors' vendor_actor_hour and its flagged exposure events_by_hour; the same
// report over the raw tables
// (store.RawReads: actor_minute and events)
// must be the same, field for field, for every tenant and for one.
func TestWeeklyRollupMatchesRawEvents(t *testing.T) {
	t.Parallel() // a database of its own
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	ctx := t.Context()
	w := Week{Year: 2026, Num: 47}
	evs := storetest.MixedEvents(w.Start(), w.End())
	if err := s.InsertEvents(ctx, evs, w.End()); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAlerts(ctx, rollupAlerts(w)); err != nil {
		t.Fatal(err)
	}
	now := w.End().Add(time.Hour)
	for _, tenants := range [][]string{nil, {"t1"}} {
		rep := func(st *store.Store) string {
			r := &Reporter{Events: st, Risk: st, Shares: st, Alerts: StoreAlerts(st)}
			sum, err := r.WeeklyFor(ctx, w, tenants, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(sum.Volume) != 7 || len(sum.TopVendors) == 0 || sum.Exposure.Events == 0 {
				t.Fatalf("tenants %v: the report has %d days of volume and %d vendors, and %d flagged events, want 7 and some", tenants, len(sum.Volume), len(sum.TopVendors), sum.Exposure.Events)
			}
			b, err := json.MarshalIndent(sum, "", " ")
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		if got, want := rep(s), rep(s.RawReads()); got != want {
			t.Errorf("tenants %v: the weekly report from the rollup differs from the one from raw events:\n%s\nwant\n%s", tenants, got, want)
		}
	}
}
