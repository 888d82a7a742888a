package detect

import (
	"fmt"
	"math"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

func (e *Engine) detectDormant(x *rowCtx) (models.Finding, bool) {
	d := e.cfg.Detectors
	st := x.st
	// Once per wake-up, at its first active window from the
	// DormantMinWindows-th on that touches customer data.
	if st.WokeAt == 0 || int(st.WokeWins) < d.DormantMinWindows || st.ActiveWindows < uint32(d.WarmupWindows/2) ||
		x.r.Subjects == 0 || st.lastDormant == st.WokeAt {
		return models.Finding{}, false
	}
	st.lastDormant = st.WokeAt
	var idle float64
	// the idle time is measured at waking: from the activity before it
	for _, dt := range st.recentDays(int32(st.WokeAt/86400)-dayRingLen, int32(st.WokeAt/86400)-1) {
		idle = float64(st.WokeAt/86400 - int64(dt.day()))
	}
	if idle == 0 {
		idle = d.DormantDays
	}
	mu := math.Max(st.recMed, 1)
	rec := float64(x.r.Records)
	f := e.base(DetDormant, x, idle, 0, models.Evidence{Metric: "days idle before waking", Observed: idle,
		Baseline: mu, Threshold: d.DormantDays, BaselineSource: "actor",
		Notes: map[string]float64{"records_ratio": rec / mu, "windows_since_waking": float64(st.WokeWins)}})
	f.WindowStart = time.Unix(st.WokeAt, 0).UTC()
	f.Summary = fmt.Sprintf("%s woke after about %.0f idle days (threshold %.0f) and has been active in %d windows since",
		x.r.ActorID, idle, d.DormantDays, st.WokeWins)
	return f, true
}
