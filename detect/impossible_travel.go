package detect

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

func (e *Engine) detectTravel(x *rowCtx) (models.Finding, bool) {
	st := x.st
	cs := x.r.Countries
	prev, prevAt := st.LastCountry, st.LastCountryAt
	var best float64
	var from, to string
	var hours float64
	check := func(a, b string, h float64) {
		if a == "" || a == b {
			return
		}
		km, ok := distanceKM(a, b)
		if !ok {
			return
		}
		h = math.Max(h, e.cfg.Window.Hours())
		if v := km / h; v > best {
			best, from, to, hours = v, a, b, h
		}
	}
	for _, c := range cs {
		if prev != "" {
			check(prev, c, x.c.end.Sub(time.Unix(prevAt, 0)).Hours())
		}
	}
	for i := range cs {
		for j := i + 1; j < len(cs); j++ {
			check(cs[i], cs[j], 0)
		}
	}
	if best <= e.cfg.Detectors.TravelKMH {
		return models.Finding{}, false
	}
	km, _ := distanceKM(from, to)
	// One incident, one finding: after a session from a far country ran
	// alongside the actor's work at home (the country it was in before),
	// its next access from home within the time the trip takes (at
	// travel_kmh) since the two were last seen together is the incident
	// ending, not a trip back. Both countries seen again (a new session
	// abroad) are judged as before.
	k := actorKey{x.r.Tenant, x.r.ActorID}
	pair := min(from, to) + "|" + max(from, to)
	now := x.c.end.Unix()
	trip := int64(km/e.cfg.Detectors.TravelKMH*3600) + int64(e.cfg.Window/time.Second)
	m, marked := e.travel[k]
	marked = marked && m.Pair == pair && now-m.At <= trip
	if marked && to == m.Home && !slices.Contains(cs, from) {
		return models.Finding{}, false
	}
	home := ""
	switch {
	case marked:
		home = m.Home
	case prev == from || prev == to:
		home = prev
	}
	e.travel[k] = travelMark{Pair: pair, Home: home, At: now}
	f := e.base(DetImpossibleTravel, x, best/e.cfg.Detectors.TravelKMH, 0, models.Evidence{Metric: "implied travel speed km/h",
		Observed: best, Threshold: e.cfg.Detectors.TravelKMH, BaselineSource: "rule",
		Notes: map[string]float64{"km": km, "hours": hours}})
	f.Summary = fmt.Sprintf("%s accessed from %s then %s within %.1f h (%.0f km, %.0f km/h)", x.r.ActorID, from, to, hours, km, best)
	return f, true
}

// travelMark is an actor's latest impossible_travel incident: the two
// countries (in order, "|"-joined), the one the actor was in before the
// incident (its home; "" when unknown) and when the two were last seen
// together.
type travelMark struct {
	Pair, Home string
	At         int64
}

// maxTravelAge is how long a travel mark is kept: longer than any trip at
// a plausible travel_kmh (half the earth's circumference at 1,000 km/h is
// 20 hours).
const maxTravelAge = 48 * 3600

// pruneTravel forgets the travel marks older than maxTravelAge at t.
func (e *Engine) pruneTravel(t time.Time) {
	for k, m := range e.travel {
		if t.Unix()-m.At > maxTravelAge {
			delete(e.travel, k)
		}
	}
}
