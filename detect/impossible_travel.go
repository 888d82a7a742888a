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
	f := e.base(DetImpossibleTravel, x, best/e.cfg.Detectors.TravelKMH, 0, models.Evidence{Metric: "implied travel speed km/h",
		Observed: best, Threshold: e.cfg.Detectors.TravelKMH, BaselineSource: "rule",
		Notes: map[string]float64{"km": km, "hours": hours}})
	f.Summary = fmt.Sprintf("%s accessed from %s then %s within %.1f h (%.0f km, %.0f km/h)", x.r.ActorID, from, to, hours, km, best)
	return f, true
}
