package rota

import (
	"bufio"
	"bytes"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// TestSharing (issue 14 item 2 in the rota model): every tenant shares
// with its four processors every day, on share and export only and under
// the bulk limit; the attacks look as their labels say (a destination
// never seen in the tenant before; one outside the first tenant's
// allow-list; an hour to the carrier far above its usual hours), and the
// hard negatives are where their labels are (the roll-out's new service
// only in the first tenant and only in its window, allow-listed; the
// month-end exports to the warehouse the tenant uses every hour).
func TestSharing(t *testing.T) {
	// Three tenants: with more tenants than the first's agents can serve
	// as attackers, an attack placed in the first tenant fell back to
	// another's agent (share_outside_allowlist in a tenant without a list).
	tenants := []Tenant{{"default", "Europe/Berlin", "DE"}, {"brand-b", "America/Los_Angeles", "US"}, {"brand-c", "Asia/Tokyo", "JP"}}
	out, r := generate(t, Config{Seed: 2, Start: time.Date(2026, 10, 19, 0, 0, 0, 0, time.UTC), Actors: 60, Tenants: tenants,
		Duration: 8 * 24 * time.Hour, Attacks: true, HardNegatives: true})
	never := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	lim := models.Limits{MaxFuture: 1 << 62, MaxAge: 1 << 62}
	var shares []models.Event
	perDest := map[string]map[string]int{} // tenant -> destination -> shares
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if models.SchemaOf(sc.Bytes()) == models.SchemaConsent {
			continue
		}
		e, err := models.DecodeAccess(sc.Bytes(), never, lim)
		if err != nil {
			t.Fatalf("access line: %v", err)
		}
		if e.Destination == "" {
			continue
		}
		if e.Action != models.ActionShare && e.Action != models.ActionExport {
			t.Fatalf("destination on a %s: %+v", e.Action, e)
		}
		if e.Records > 1000 {
			t.Errorf("a share of %d records (over the bulk limit): %+v", e.Records, e)
		}
		shares = append(shares, e)
		if perDest[e.Tenant] == nil {
			perDest[e.Tenant] = map[string]int{}
		}
		perDest[e.Tenant][e.Destination]++
	}
	days := 8
	for _, ten := range tenants {
		for _, d := range []string{DestCarrier, DestTranslation, DestWarehouse, DestMailingHouse} {
			want := days
			if d == DestMailingHouse {
				want = days * 5 / 7 // working days
			}
			if n := perDest[ten.Name][d]; n < want {
				t.Errorf("tenant %s: %d shares with %s in %d days, want %d or more", ten.Name, n, d, days, want)
			}
		}
	}
	inLabel := func(l Label, e *models.Event) bool {
		return e.Tenant == l.Tenant && (l.ActorID == "*" || e.Actor.ID == l.ActorID) && !e.TS.Before(l.Start) && !e.TS.After(l.End)
	}
	kinds := map[string]int{}
	for _, l := range r.Labels {
		switch l.Kind {
		case KindShareNewDestination, KindShareOutsideAllowlist:
			kinds[l.Kind]++
			var dest string
			for i := range shares {
				if inLabel(l, &shares[i]) && !slices.Contains(Destinations, shares[i].Destination) {
					dest = shares[i].Destination
				}
			}
			if dest == "" {
				t.Errorf("label %s (%s): no share to an unknown destination in it", l.ID, l.Kind)
				continue
			}
			for i := range shares {
				if e := &shares[i]; e.Destination == dest && !inLabel(l, e) {
					t.Errorf("label %s (%s): %s also used outside it, by %s at %s", l.ID, l.Kind, dest, e.Actor.ID, e.TS)
				}
			}
			if l.Kind == KindShareOutsideAllowlist && l.Tenant != DefaultTenants[0].Name {
				t.Errorf("label %s: outside the allow-list in tenant %s, which has none", l.ID, l.Tenant)
			}
		case KindShareVolume:
			kinds[l.Kind]++
			hours := map[time.Time]uint64{} // the tenant's carrier records per hour
			var attack uint64
			for i := range shares {
				e := &shares[i]
				if e.Tenant != l.Tenant || e.Destination != DestCarrier {
					continue
				}
				if inLabel(l, e) && e.Actor.ID == l.ActorID && e.Records > 1 {
					attack += e.Records
					continue
				}
				hours[e.TS.Truncate(time.Hour)] += e.Records
			}
			var hs []uint64
			for _, n := range hours {
				hs = append(hs, n)
			}
			sort.Slice(hs, func(i, j int) bool { return hs[i] < hs[j] })
			if len(hs) == 0 || attack < 10*hs[len(hs)/2] || attack < 500 {
				t.Errorf("label %s: %d records to the carrier; the tenant's median hour %v: want 10 times that and 500 or more", l.ID, attack, hs[len(hs)/2])
			}
		}
	}
	for _, k := range []string{KindShareNewDestination, KindShareOutsideAllowlist, KindShareVolume} {
		if kinds[k] == 0 {
			t.Errorf("no %s attack (skipped: %v)", k, r.Skipped)
		}
	}
	negs := map[string]int{}
	for _, l := range r.Negatives {
		switch l.Kind {
		case NegativePrefix + NegDestinationRollout:
			negs[l.Kind]++
			n := 0
			for i := range shares {
				if e := &shares[i]; e.Destination == DestNewTranslation {
					if !inLabel(l, e) {
						t.Errorf("the rolled-out %s used outside the roll-out: %s %s at %s", DestNewTranslation, e.Tenant, e.Actor.ID, e.TS)
					}
					n++
				}
			}
			if l.Tenant != DefaultTenants[0].Name || n < 10 || !slices.Contains(Destinations, DestNewTranslation) {
				t.Errorf("roll-out in %s with %d shares; want the first tenant, 10 or more, allow-listed", l.Tenant, n)
			}
		case NegativePrefix + NegMonthEndShare:
			negs[l.Kind]++
			n := 0
			for i := range shares {
				if e := &shares[i]; inLabel(l, e) && e.Destination == DestWarehouse {
					n++
				}
			}
			if n != 3 {
				t.Errorf("month-end %s %s: %d exports to the warehouse, want 3", l.Tenant, l.ActorID, n)
			}
		}
	}
	if negs[NegativePrefix+NegDestinationRollout] != 1 || negs[NegativePrefix+NegMonthEndShare] != len(tenants) {
		t.Errorf("sharing negatives %v: want one roll-out and a month-end per tenant", negs)
	}
}
