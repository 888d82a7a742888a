package rota

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

func generate(t *testing.T, c Config) ([]byte, *Result) {
	t.Helper()
	var b bytes.Buffer
	r, err := Generate(c, &b)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return b.Bytes(), r
}

// TestTrafficIsValidOrderedAndLabelled decodes every line as ingest
// would, checks time order and that each label names an actor that acts
// in its interval (hard negatives aside).
func TestTrafficIsValidOrderedAndLabelled(t *testing.T) {
	c := Config{Seed: 3, Actors: 60, Duration: 14 * 24 * time.Hour, Attacks: true, HardNegatives: true}
	out, r := generate(t, c)
	never := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	lim := models.Limits{MaxFuture: 1 << 62, MaxAge: 1 << 62}
	var last time.Time
	acts := map[string][]time.Time{}
	countries := map[string]map[string][]time.Time{} // actor -> client country -> times
	vendors := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		var ts time.Time
		if models.SchemaOf(line) == models.SchemaConsent {
			cn, err := models.DecodeConsent(line, never, lim)
			if err != nil {
				t.Fatalf("line %d: consent: %v: %s", n, err, line)
			}
			ts = cn.TS
		} else {
			e, err := models.DecodeAccess(line, never, lim)
			if err != nil {
				t.Fatalf("line %d: access: %v: %s", n, err, line)
			}
			ts = e.TS
			acts[e.Tenant+"/"+e.Actor.ID] = append(acts[e.Tenant+"/"+e.Actor.ID], ts)
			if countries[e.Tenant+"/"+e.Actor.ID] == nil {
				countries[e.Tenant+"/"+e.Actor.ID] = map[string][]time.Time{}
			}
			countries[e.Tenant+"/"+e.Actor.ID][e.Client.Country] = append(countries[e.Tenant+"/"+e.Actor.ID][e.Client.Country], ts)
			if e.Actor.Vendor != "" {
				vendors++
			}
		}
		if ts.Before(last) {
			t.Fatalf("line %d: %s before the previous line's %s", n, ts, last)
		}
		last = ts
	}
	if n != r.Access+r.Consent || r.Consent == 0 || vendors == 0 {
		t.Fatalf("lines %d, result access %d + consent %d, vendor events %d", n, r.Access, r.Consent, vendors)
	}
	kinds := map[string]bool{}
	for _, l := range r.Labels {
		kinds[l.Kind] = true
		ok := false
		for _, ts := range acts[l.Tenant+"/"+l.ActorID] {
			ok = ok || (!ts.Before(l.Start) && !ts.After(l.End))
		}
		if !ok && l.Kind != KindSlowDrift {
			t.Errorf("label %s (%s %s): the actor makes no event in [%s, %s]", l.ID, l.Kind, l.ActorID, l.Start, l.End)
		}
		// an attack from abroad lies inside its label, to its last event:
		// a label that ends before it scores the detection of the
		// attacker's last access as a false alert
		if l.Kind == KindNewCountry || l.Kind == KindImpossibleTravel {
			for cc, tss := range countries[l.Tenant+"/"+l.ActorID] {
				if len(tss) > len(acts[l.Tenant+"/"+l.ActorID])/2 {
					continue // its home country
				}
				for _, ts := range tss {
					if ts.After(l.Start.Add(-time.Hour)) && ts.Before(l.End.Add(time.Hour)) && (ts.Before(l.Start) || ts.After(l.End)) {
						t.Errorf("label %s (%s %s, [%s, %s]): an access from %s at %s outside it", l.ID, l.Kind, l.ActorID, l.Start, l.End, cc, ts)
					}
				}
			}
		}
	}
	for _, k := range AttackKinds {
		if !kinds[k] {
			t.Errorf("no %s attack in a 14-day run (skipped: %v)", k, r.Skipped)
		}
	}
	if len(r.Negatives) == 0 {
		t.Error("no hard negatives")
	}
}

// TestDeterministic: the same config gives the same bytes, another seed
// other bytes.
func TestDeterministic(t *testing.T) {
	c := Config{Seed: 7, Actors: 20, Duration: 2 * 24 * time.Hour, Attacks: true, HardNegatives: true}
	a, _ := generate(t, c)
	b, _ := generate(t, c)
	if !bytes.Equal(a, b) {
		t.Fatal("same config, different output")
	}
	c.Seed = 8
	d, _ := generate(t, c)
	if bytes.Equal(a, d) {
		t.Fatal("different seeds, same output")
	}
}

// TestShapes: no vendors means no vendor actor; sparse actors work one
// weekday; low volume stays under 5,000 events a day.
func TestShapes(t *testing.T) {
	out, r := generate(t, Config{Seed: 1, Actors: 20, Tenants: DefaultTenants[:1], Duration: 7 * 24 * time.Hour,
		NoVendors: true, SparseShare: 0.5, Attacks: true})
	if bytes.Contains(out, []byte(`"vendor":`)) {
		t.Error("a vendor event with NoVendors")
	}
	if perDay := float64(r.Access) / 7; perDay > 5000 || perDay < 500 {
		t.Errorf("%.0f events a day for 20 actors", perDay)
	}
	days := map[string]map[time.Weekday]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		e, err := models.DecodeAccess(sc.Bytes(), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), models.Limits{MaxFuture: 1 << 62, MaxAge: 1 << 62})
		if err != nil || e.Actor.Role != "qa-reviewer" {
			continue
		}
		if days[e.Actor.ID] == nil {
			days[e.Actor.ID] = map[time.Weekday]bool{}
		}
		days[e.Actor.ID][e.TS.In(time.UTC).Weekday()] = true
	}
	if len(days) == 0 {
		t.Fatal("no sparse actor with SparseShare 0.5")
	}
	for id, d := range days {
		if len(d) > 1 {
			t.Errorf("sparse actor %s works on %d weekdays", id, len(d))
		}
	}
}

func TestValidate(t *testing.T) {
	for name, c := range map[string]Config{
		"tenant name":  {Tenants: []Tenant{{"Bad Name", "UTC", "NL"}}},
		"zone":         {Tenants: []Tenant{{"a", "Mars/Base", "NL"}}},
		"sparse share": {SparseShare: 2},
		"rate":         {RateScale: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}
