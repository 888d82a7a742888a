package detect

import (
	"fmt"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

func (e *Engine) detectOffHours(x *rowCtx) (models.Finding, bool) {
	d := e.cfg.Detectors
	st := x.st
	// Once per session, at its first active window from the
	// OffHoursMinWindows-th on that touches customer data. The gap asked
	// for scales with the actor's own evidence (its active days before
	// the session): OffHoursGap from OffHoursMinDays active days on,
	// OffHoursGap*OffHoursMinDays/days with fewer (6 hours with 2 days, 4
	// with 3 at the defaults); with under 2 days (a first, possibly
	// partial, day) nothing is judged. Off hours are hours the actor is
	// never active in: a session starting in an hour of the day it has
	// been active in before (a chat bot's thin night, each hour under
	// off_hours_share but never empty) is not off hours for it.
	need := offHoursGapNeeded(d, int(st.SessDays))
	if need == 0 || int(st.SessWins) < d.OffHoursMinWindows || int(st.SessGap) < need || st.SessHourN > 0 ||
		x.r.Subjects == 0 || st.lastOffHours == st.SessStart {
		return models.Finding{}, false
	}
	st.lastOffHours = st.SessStart
	loc := e.locOf(st)
	startLocal := time.Unix(st.SessStart, 0).In(loc)
	share := st.share(hourOfWeek(startLocal))
	peerShare := x.peer.hourShare(hourOfWeek(startLocal))
	f := e.base(DetOffHours, x, float64(st.SessGap), share, models.Evidence{
		Metric: "hours between the session start and the actor's nearest usual hour", Observed: float64(st.SessGap),
		Threshold: float64(need), BaselineSource: "actor hour-of-day profile", Peers: peerGroup(x.r.ActorRole, x.r.ActorVendor),
		Notes: map[string]float64{"hour_of_week_share": share, "peer_share": peerShare, "active_days": float64(st.SessDays),
			"session_windows": float64(st.SessWins), "gap_needed": float64(need)}})
	if x.peer != nil {
		f.Evidence.PeerCount = x.peer.members
	}
	f.WindowStart = time.Unix(st.SessStart, 0).UTC()
	f.Summary = fmt.Sprintf("%s started a session at %s (%s), %d hours from its usual hours (this hour of the week holds %.2f%% of its activity, %.2f%% of its peers')",
		x.r.ActorID, startLocal.Format("Mon 15:04"), loc, st.SessGap, 100*share, 100*peerShare)
	return f, true
}

// offHoursGapNeeded is the gap (hours) a session start needs to be off
// hours for an actor with days active days: OffHoursGap once it has
// OffHoursMinDays, more with less evidence, 0 (not judged) under two days.
// A 24/7 rota leaves an agent with two or three working days when an
// attack comes; its peers' pooled profile covers every hour, so only its
// own (short) history can tell.
func offHoursGapNeeded(d DetectorsConfig, days int) int {
	switch {
	case days >= d.OffHoursMinDays:
		return d.OffHoursGap
	case days < 2:
		return 0
	}
	return (d.OffHoursGap*d.OffHoursMinDays + days - 1) / days
}
