package detect

import (
	"fmt"
	"math"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

func (e *Engine) detectDenied(x *rowCtx) (models.Finding, bool) {
	d := e.cfg.Detectors
	st := x.st
	span := d.VolumeSpan
	w := x.c.start.Unix() / int64(e.cfg.Window/time.Second)
	obs := st.rollingDenied(w-1, span-1) + float64(x.r.Denied)
	if obs < d.DeniedMin || x.r.Denied == 0 {
		return models.Finding{}, false
	}
	// Fire once per burst: not again while the previous window's rolling
	// count already crossed the threshold.
	prev := st.rollingDenied(w-1, span)
	perWin := math.Max(float64(st.DeniedMean), 0.02)
	src := "actor"
	if !x.warm {
		perWin, src = 0.1, "prior"
	}
	mu := perWin * float64(span) * x.c.multiplier(x.r.Tenant)
	if obs < 5*mu {
		return models.Finding{}, false
	}
	p := poissonTail(obs, mu)
	if p > d.DeniedTailProb || (prev >= d.DeniedMin && poissonTail(prev, mu) <= d.DeniedTailProb) {
		return models.Finding{}, false
	}
	f := e.base(DetDeniedBurst, x, obs/mu, p, models.Evidence{Metric: fmt.Sprintf("denied accesses per %s (rolling)", time.Duration(span)*e.cfg.Window),
		Observed: obs, Baseline: mu, Threshold: d.DeniedMin, BaselineSource: src, Notes: map[string]float64{"tail_probability": p}})
	f.WindowStart = x.c.end.Add(-time.Duration(span) * e.cfg.Window)
	f.Summary = fmt.Sprintf("%s was denied %.0f times in %s (usual %.2f, p %.1e)", x.r.ActorID, obs, time.Duration(span)*e.cfg.Window, mu, p)
	return f, true
}
