package detect

import (
	"fmt"
	"math"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// detectDrift looks for daily records creeping up day after day.
func (e *Engine) detectDrift(k actorKey, st *actorState, d int32, dayStart, t time.Time) (models.Finding, bool) {
	cfg := e.cfg.Detectors
	if !e.cfg.enabled(DetDrift) || !e.warm(st) {
		return models.Finding{}, false
	}
	days := st.recentDays(d-dayRingLen, d)
	n := cfg.DriftDays
	if len(days) < n+3 {
		return models.Finding{}, false
	}
	run := days[len(days)-n:]
	before := days[:len(days)-n]
	// Daily totals of ordinary (not heavy) windows, net of tenant-wide
	// swings (a promotion day): each window's records divided by that
	// window's tenant multiplier.
	var bs, logs []float64
	for _, b := range before {
		bs = append(bs, b.light())
		logs = append(logs, math.Log(math.Max(b.light(), 1)))
	}
	base := math.Max(median64(bs), 1)
	// The bar rises with the actor's own day-to-day spread: an actor whose
	// days vary a lot must climb further (3 robust standard deviations of
	// its log daily totals).
	medLog := median64(logs)
	for i := range logs {
		logs[i] = math.Abs(logs[i] - medLog)
	}
	ratio := math.Max(cfg.DriftRatio, math.Exp(3*madScale*median64(logs)))
	ys := make([]float64, n)
	for i, r := range run {
		ys[i] = r.light()
	}
	last := ys[n-1]
	// Today is partial until midnight: it counts only once it has passed
	// the day before, or when it is over (a session started yesterday may
	// be the latest day).
	complete := run[n-1].day() < d || !t.Before(dayStart.Add(24*time.Hour))
	if !complete && last < ys[n-2] {
		return models.Finding{}, false
	}
	up := 0
	for i := 1; i < n; i++ {
		if ys[i] > ys[i-1] {
			up++
		}
	}
	// Mann-Kendall S over the run.
	s := 0
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			switch {
			case ys[j] > ys[i]:
				s++
			case ys[j] < ys[i]:
				s--
			}
		}
	}
	maxS := n * (n - 1) / 2
	slope := theilSen(ys)
	if up < n-2 || s < maxS-3 || slope <= 0 || last < ratio*base || ys[n-2] < 1.3*base {
		return models.Finding{}, false
	}
	if st.lastDriftDay == d { // reported today already
		return models.Finding{}, false
	}
	st.lastDriftDay = d
	f := models.Finding{Detector: DetDrift, Tenant: k.Tenant, ActorID: k.Actor, ActorType: models.ActorType(st.Type),
		ActorRole: st.Role, ActorVendor: st.Vendor, WindowStart: time.Unix(int64(run[0].day())*86400, 0).UTC(), WindowEnd: t,
		DetectedAt: t, Score: last / base, Severity: e.cfg.severity(DetDrift),
		Summary: fmt.Sprintf("%s's daily records rose %d days running to %.0f, %.1fx its earlier median %.0f (Theil-Sen slope %.0f/day)",
			k.Actor, up, last, last/base, base, slope),
		Evidence: models.Evidence{Metric: "records per active day in ordinary windows (net of tenant-wide swings)", Observed: last, Baseline: base, Threshold: ratio * base,
			BaselineSource: "actor days", Notes: map[string]float64{"slope_per_day": slope, "mann_kendall_s": float64(s), "days_up": float64(up),
				"raw_records_last_day": run[n-1].records()},
			Query: fmt.Sprintf("SELECT toDate(minute) AS day, sumMerge(records_sum) AS records FROM actor_minute WHERE tenant = %s AND actor_id = %s AND minute >= %s AND minute < %s GROUP BY day ORDER BY day",
				lit(k.Tenant), lit(k.Actor), litTime(time.Unix(int64(before[0].day())*86400, 0)), litTime(t))}}
	return f, true
}
