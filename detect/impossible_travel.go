package detect

import (
	"fmt"
	"math"
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
	// One incident, one finding: the same two countries seen again
	// within the time the trip takes (at travel_kmh) since they were last
	// seen together is the incident already reported going on, or its
	// end (the actor back in its own country after a session abroad ran
	// alongside its own work), not a new trip.
	k := actorKey{x.r.Tenant, x.r.ActorID}
	pair := min(from, to) + "|" + max(from, to)
	now := x.c.end.Unix()
	trip := int64(km/e.cfg.Detectors.TravelKMH*3600) + int64(e.cfg.Window/time.Second)
	if m, ok := e.travel[k]; ok && m.Pair == pair && now-m.At <= trip {
		e.travel[k] = travelMark{Pair: pair, At: now}
		return models.Finding{}, false
	}
	e.travel[k] = travelMark{Pair: pair, At: now}
	f := e.base(DetImpossibleTravel, x, best/e.cfg.Detectors.TravelKMH, 0, models.Evidence{Metric: "implied travel speed km/h",
		Observed: best, Threshold: e.cfg.Detectors.TravelKMH, BaselineSource: "rule",
		Notes: map[string]float64{"km": km, "hours": hours}})
	f.Summary = fmt.Sprintf("%s accessed from %s then %s within %.1f h (%.0f km, %.0f km/h)", x.r.ActorID, from, to, hours, km, best)
	return f, true
}

// travelMark is an actor's latest impossible_travel incident: the two
// countries (in order, "|"-joined) and when they were last seen together.
type travelMark struct {
	Pair string
	At   int64
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
