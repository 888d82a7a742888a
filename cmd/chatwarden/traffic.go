package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/detect/eval"
	"github.com/chatwarden/chatwarden/sim"
	"github.com/chatwarden/chatwarden/sim/rota"
)

// Traffic models `simulate -model` and `eval-matrix` know.
const (
	modelOffice = "office" // package sim: office shifts, Zipf customers
	modelRota   = "rota"   // package sim/rota: 24/7 rota, demand-driven, open cases
)

var trafficModels = []string{modelOffice, modelRota}

// trafficShape is one structure of traffic the evaluation matrix runs for
// every model and seed. Rates are per model because the models' natural
// volumes per actor differ (office ~1,000 events per actor-day, rota ~150).
type trafficShape struct {
	name    string
	days    float64
	actors  int
	tenants int
	// zones are the tenants' time zones (rota: also their countries)
	zones      []string
	officeRate float64
	rotaRate   float64
	noVendors  bool
	sparse     float64
	note       string
}

// matrixShapes are the structures `make eval` runs. Sized so that the
// whole matrix (6 shapes x 5 seeds x 2 models) replays in about 20
// minutes on two cores.
var matrixShapes = []trafficShape{
	{name: "low-volume", days: 14, actors: 20, tenants: 1, officeRate: 0.2, rotaRate: 1,
		note: "20 actors, one tenant, <= 5k events/day, 14 days"},
	{name: "high-volume", days: 6, actors: 100, tenants: 2, officeRate: 0.8, rotaRate: 3,
		note: "100 actors, ~80k (office) / ~40k (rota) events a day, 6 days"},
	{name: "three-zones", days: 8, actors: 60, tenants: 3, zones: []string{"Europe/Berlin", "America/Los_Angeles", "Asia/Tokyo"},
		officeRate: 0.5, rotaRate: 1, note: "3 tenants in Berlin, Los Angeles and Tokyo, 8 days"},
	{name: "no-vendors", days: 8, actors: 60, tenants: 2, officeRate: 0.5, rotaRate: 1, noVendors: true,
		note: "no vendor actors, 8 days"},
	{name: "sparse-weekly", days: 12, actors: 40, tenants: 2, officeRate: 0.5, rotaRate: 1, sparse: 0.5,
		note: "half the agents work one fixed weekday, 12 days"},
	{name: "cold-start", days: 7, actors: 60, tenants: 2, officeRate: 0.5, rotaRate: 1,
		note: "the first week is all there is"},
}

var zoneCountries = map[string]string{"Europe/Berlin": "DE", "Europe/Amsterdam": "NL", "America/Los_Angeles": "US",
	"America/Chicago": "US", "America/New_York": "US", "Asia/Tokyo": "JP", "Australia/Sydney": "AU"}

// cellTraffic is what a model generated for one cell.
type cellTraffic struct {
	labels, negatives []eval.Label
	access, consent   int
	actors            int
	skipped           []string
	// vendors are the contracts the deployment would configure for the
	// model's vendors.
	vendors map[string]detect.VendorContract
	// purposes is the purpose policy the deployment would configure (the
	// product ships none): both models' traffic follows the simulator's.
	purposes map[string][]string
}

// officeVendors is the contract of package sim's vendor (acme-bpo).
func officeVendors() map[string]detect.VendorContract {
	return map[string]detect.VendorContract{sim.VendorName: {
		Stores:     []string{"crm", "orders", "transcripts"},
		Categories: []string{"email", "phone", "name", "address", "order_history", "transcript_text"},
		Hours:      "00:00-12:00", Days: []string{"mon", "tue", "wed", "thu", "fri", "sat"},
		TimeZone: "UTC", Country: sim.VendorCountry,
	}}
}

func rotaVendors() map[string]detect.VendorContract {
	v := rota.Vendor
	return map[string]detect.VendorContract{v.Name: {Stores: v.Stores, Categories: v.Categories, Hours: v.Hours,
		Days: v.Days, TimeZone: v.TimeZone, Country: v.Country}}
}

func tenantNames(n int) []string {
	names := []string{"default", "brand-b", "brand-c", "brand-d"}
	if n <= len(names) {
		return names[:n]
	}
	for i := len(names); i < n; i++ {
		names = append(names, fmt.Sprintf("brand-%d", i))
	}
	return names
}

// generateCell writes the traffic of (model, shape, seed) to w.
func generateCell(model string, sh trafficShape, seed uint64, start time.Time, w io.Writer) (*cellTraffic, error) {
	dur := time.Duration(sh.days * float64(24*time.Hour))
	switch model {
	case modelOffice:
		cfg := sim.Config{Seed: seed, Start: start, Duration: dur, Actors: sh.actors, Tenants: tenantNames(sh.tenants),
			Attacks: sim.AttackKinds, HardNegatives: true, RateScale: sh.officeRate, NoVendors: sh.noVendors,
			SparseShare: sh.sparse, Zones: sh.zones}
		if len(cfg.Attacks) > 0 && sh.actors < 40 {
			cfg.AttacksPerKind = 2
		}
		g, err := sim.New(cfg)
		if err != nil {
			return nil, err
		}
		var b sim.Batch
		for g.Next(&b) {
			if _, err := w.Write(b.Buf); err != nil {
				return nil, fmt.Errorf("writing events: %w", err)
			}
		}
		st := g.Stats()
		return &cellTraffic{labels: fromSim(g.Labels()), negatives: fromSim(g.Negatives()), access: int(st.Access),
			consent: int(st.Consent), actors: g.Actors(), skipped: g.Skipped(), vendors: officeVendors(), purposes: sim.DefaultPolicy().Purposes}, nil
	case modelRota:
		cfg := rota.Config{Seed: seed, Start: start, Duration: dur, Actors: sh.actors, RateScale: sh.rotaRate,
			NoVendors: sh.noVendors, SparseShare: sh.sparse, Attacks: true, HardNegatives: true}
		for i, name := range tenantNames(sh.tenants) {
			t := rota.DefaultTenants[i%len(rota.DefaultTenants)]
			t.Name = name
			if i < len(sh.zones) {
				t.Zone, t.Country = sh.zones[i], zoneCountries[sh.zones[i]]
			}
			cfg.Tenants = append(cfg.Tenants, t)
		}
		r, err := rota.Generate(cfg, w)
		if err != nil {
			return nil, err
		}
		return &cellTraffic{labels: fromRota(r.Labels), negatives: fromRota(r.Negatives), access: r.Access,
			consent: r.Consent, actors: r.Actors, skipped: r.Skipped, vendors: rotaVendors(), purposes: sim.DefaultPolicy().Purposes}, nil
	}
	return nil, fmt.Errorf("unknown traffic model %q (known: %s)", model, strings.Join(trafficModels, ", "))
}

func fromSim(ls []sim.Label) []eval.Label {
	out := make([]eval.Label, len(ls))
	for i, l := range ls {
		out[i] = eval.Label{ID: l.ID, Kind: l.Kind, Tenant: l.Tenant, ActorID: l.ActorID, Start: l.Start, End: l.End}
	}
	return out
}

func fromRota(ls []rota.Label) []eval.Label {
	out := make([]eval.Label, len(ls))
	for i, l := range ls {
		out[i] = eval.Label{ID: l.ID, Kind: l.Kind, Tenant: l.Tenant, ActorID: l.ActorID, Start: l.Start, End: l.End}
	}
	return out
}
