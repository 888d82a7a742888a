// Package traffic is the evaluation's traffic: the two traffic models
// (package sim's office shifts and package sim/rota's 24/7 rota), the
// shapes the evaluation matrix runs for each, and one cell's generation with
// its labels and the contracts a deployment would configure for it.
// `chatwarden simulate -model rota` and `chatwarden-bench eval-matrix` use it.
package traffic

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/detect/eval"
	"github.com/chatwarden/chatwarden/sim"
	"github.com/chatwarden/chatwarden/sim/rota"
)

// Traffic models `simulate -model` and `eval-matrix` know.
const (
	Office = "office" // package sim: office shifts, Zipf customers
	Rota   = "rota"   // package sim/rota: 24/7 rota, demand-driven, open cases
)

// Models are the traffic models, in the order the matrix runs them.
var Models = []string{Office, Rota}

// Shape is one structure of traffic the evaluation matrix runs for
// every model and seed. Rates are per model because the models' natural
// volumes per actor differ (office ~1,000 events per actor-day, rota ~150).
type Shape struct {
	Name    string
	Days    float64 // span of the generated traffic
	Actors  int
	Tenants int
	// Zones are the tenants' time zones (rota: also their countries)
	Zones      []string
	OfficeRate float64 // office model's rate scale
	RotaRate   float64 // rota model's rate scale
	NoVendors  bool
	Sparse     float64 // share of agents working one fixed weekday
	Note       string  // what the shape is, for the matrix's table
}

// Shapes are the structures `make eval` runs. Sized so that the
// whole matrix (6 shapes x 5 seeds x 2 models) replays in about 20
// minutes on two cores.
var Shapes = []Shape{
	{Name: "low-volume", Days: 14, Actors: 20, Tenants: 1, OfficeRate: 0.2, RotaRate: 1,
		Note: "20 actors, one tenant, <= 5k events/day, 14 days"},
	{Name: "high-volume", Days: 6, Actors: 100, Tenants: 2, OfficeRate: 0.8, RotaRate: 3,
		Note: "100 actors, ~80k (office) / ~40k (rota) events a day, 6 days"},
	{Name: "three-zones", Days: 8, Actors: 60, Tenants: 3, Zones: []string{"Europe/Berlin", "America/Los_Angeles", "Asia/Tokyo"},
		OfficeRate: 0.5, RotaRate: 1, Note: "3 tenants in Berlin, Los Angeles and Tokyo, 8 days"},
	{Name: "no-vendors", Days: 8, Actors: 60, Tenants: 2, OfficeRate: 0.5, RotaRate: 1, NoVendors: true,
		Note: "no vendor actors, 8 days"},
	{Name: "sparse-weekly", Days: 12, Actors: 40, Tenants: 2, OfficeRate: 0.5, RotaRate: 1, Sparse: 0.5,
		Note: "half the agents work one fixed weekday, 12 days"},
	{Name: "cold-start", Days: 7, Actors: 60, Tenants: 2, OfficeRate: 0.5, RotaRate: 1,
		Note: "the first week is all there is"},
}

var zoneCountries = map[string]string{"Europe/Berlin": "DE", "Europe/Amsterdam": "NL", "America/Los_Angeles": "US",
	"America/Chicago": "US", "America/New_York": "US", "Asia/Tokyo": "JP", "Australia/Sydney": "AU"}

// Cell is what a model generated for one cell.
type Cell struct {
	Labels, Negatives []eval.Label
	Access, Consent   int
	Actors            int
	Skipped           []string
	// Vendors are the contracts the deployment would configure for the
	// model's vendors.
	Vendors map[string]detect.VendorContract
	// Purposes is the purpose policy the deployment would configure (the
	// product ships none): both models' traffic follows the simulator's.
	Purposes map[string][]string
	// Destinations is the destination allow-list per tenant: the first
	// tenant's processors (sim.Destinations, rota.Destinations); the other
	// tenants have none.
	Destinations map[string][]string
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

// Generate writes the traffic of (model, shape, seed) to w.
func Generate(model string, sh Shape, seed uint64, start time.Time, w io.Writer) (*Cell, error) {
	dur := time.Duration(sh.Days * float64(24*time.Hour))
	switch model {
	case Office:
		cfg := sim.Config{Seed: seed, Start: start, Duration: dur, Actors: sh.Actors, Tenants: tenantNames(sh.Tenants),
			Attacks: sim.AttackKinds, HardNegatives: true, RateScale: sh.OfficeRate, NoVendors: sh.NoVendors,
			SparseShare: sh.Sparse, Zones: sh.Zones}
		if len(cfg.Attacks) > 0 && sh.Actors < 40 {
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
		return &Cell{Labels: fromSim(g.Labels()), Negatives: fromSim(g.Negatives()), Access: int(st.Access),
			Consent: int(st.Consent), Actors: g.Actors(), Skipped: g.Skipped(), Vendors: officeVendors(), Purposes: sim.DefaultPolicy().Purposes,
			Destinations: map[string][]string{cfg.Tenants[0]: sim.Destinations}}, nil
	case Rota:
		cfg := rota.Config{Seed: seed, Start: start, Duration: dur, Actors: sh.Actors, RateScale: sh.RotaRate,
			NoVendors: sh.NoVendors, SparseShare: sh.Sparse, Attacks: true, HardNegatives: true}
		for i, name := range tenantNames(sh.Tenants) {
			t := rota.DefaultTenants[i%len(rota.DefaultTenants)]
			t.Name = name
			if i < len(sh.Zones) {
				t.Zone, t.Country = sh.Zones[i], zoneCountries[sh.Zones[i]]
			}
			cfg.Tenants = append(cfg.Tenants, t)
		}
		r, err := rota.Generate(cfg, w)
		if err != nil {
			return nil, err
		}
		return &Cell{Labels: fromRota(r.Labels), Negatives: fromRota(r.Negatives), Access: r.Access,
			Consent: r.Consent, Actors: r.Actors, Skipped: r.Skipped, Vendors: rotaVendors(), Purposes: sim.DefaultPolicy().Purposes,
			Destinations: map[string][]string{cfg.Tenants[0].Name: rota.Destinations}}, nil
	}
	return nil, fmt.Errorf("unknown traffic model %q (known: %s)", model, strings.Join(Models, ", "))
}

// ShapeNames lists the shapes' names, comma-separated.
func ShapeNames() string {
	var n []string
	for _, s := range Shapes {
		n = append(n, s.Name)
	}
	return strings.Join(n, ",")
}

// FindShape returns the shape called name.
func FindShape(name string) (Shape, error) {
	i := slices.IndexFunc(Shapes, func(s Shape) bool { return s.Name == name })
	if i < 0 {
		return Shape{}, fmt.Errorf("unknown shape %q (known: %s)", name, ShapeNames())
	}
	return Shapes[i], nil
}

// WriteLabels writes labels as JSONL, the format eval.ReadLabels reads.
func WriteLabels(path string, ls []eval.Label) error {
	var b strings.Builder
	for _, l := range ls {
		j, _ := json.Marshal(l)
		b.Write(j)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing labels: %w", err)
	}
	return nil
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
