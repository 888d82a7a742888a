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
	// OffHoursMinWindows-th on that touches customer data.
	if int(st.ActiveDays) < d.OffHoursMinDays || int(st.SessWins) < d.OffHoursMinWindows || int(st.SessGap) < d.OffHoursGap ||
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
		Threshold: float64(d.OffHoursGap), BaselineSource: "actor hour-of-day profile", Peers: peerGroup(x.r.ActorRole, x.r.ActorVendor),
		Notes: map[string]float64{"hour_of_week_share": share, "peer_share": peerShare, "active_days": float64(st.ActiveDays),
			"session_windows": float64(st.SessWins)}})
	if x.peer != nil {
		f.Evidence.PeerCount = x.peer.members
	}
	f.WindowStart = time.Unix(st.SessStart, 0).UTC()
	f.Summary = fmt.Sprintf("%s started a session at %s (%s), %d hours from its usual hours (this hour of the week holds %.2f%% of its activity, %.2f%% of its peers')",
		x.r.ActorID, startLocal.Format("Mon 15:04"), loc, st.SessGap, 100*share, 100*peerShare)
	return f, true
}
