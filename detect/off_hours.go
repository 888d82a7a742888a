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
	// for scales with the evidence (active days before the session):
	// OffHoursGap from OffHoursMinDays active days on,
	// OffHoursGap*OffHoursMinDays/days with fewer (6 hours with 2 days, 4
	// with 3 at the defaults). An actor with under 2 days of its own (one,
	// possibly partial, day) is judged on its role peers' hours as well:
	// the gap is measured from the nearest hour usual for it or for its
	// warm peers (their pooled profile) or for its role's members that
	// have worked a day, warm or not (theirs: another shift of the role),
	// and each warm peer adds the
	// warm-up days it has at least to the evidence; with no warm peer
	// (or no day of its own) nothing is judged. From 2 days on the actor
	// is judged by its own hours only (its shift may not be the role's).
	// Off hours are hours the actor is never active in: a session starting
	// in an hour of the day it has been active in before (a chat bot's thin
	// night, each hour under off_hours_share but never empty) is not off
	// hours for it.
	if int(st.SessWins) < d.OffHoursMinWindows || st.SessHourN > 0 || x.r.Subjects == 0 || st.lastOffHours == st.SessStart {
		return models.Finding{}, false
	}
	loc := e.locOf(st)
	startLocal := time.Unix(st.SessStart, 0).In(loc)
	gap, days, src := int(st.SessGap), int(st.SessDays), "actor hour-of-day profile"
	if days == 1 && x.peer != nil && x.peer.members > 0 {
		if pg := x.peer.hourGap(startLocal.Hour(), d.OffHoursShare); pg >= 0 {
			if gap < 0 || pg < gap {
				gap = pg
			}
			days += x.peer.members * d.WarmupDays
			src = "actor and peers hour-of-day profiles"
			// The warm peers may all work one shift of several: the
			// role's members that have worked a day (warm or not, as
			// first_seen's item peers) show the other shifts' hours,
			// which are usual for the role too. They widen the usual
			// hours only; the evidence stays the warm peers'.
			if ip := e.itemPeers[peerKey{x.r.Tenant, e.groupOf(x.r.ActorRole, x.r.ActorVendor)}]; ip != nil && ip.members > 0 {
				if ig := ip.hourGap(startLocal.Hour(), d.OffHoursShare); ig >= 0 && ig < gap {
					gap = ig
				}
			}
		}
	}
	need := offHoursGapNeeded(d, days)
	if need == 0 || gap < need {
		return models.Finding{}, false
	}
	st.lastOffHours = st.SessStart
	share := st.share(hourOfWeek(startLocal))
	peerShare := x.peer.hourShare(hourOfWeek(startLocal))
	f := e.base(DetOffHours, x, float64(gap), share, models.Evidence{
		Metric: "hours between the session start and the actor's nearest usual hour", Observed: float64(gap),
		Threshold: float64(need), BaselineSource: src, Peers: peerGroup(x.r.ActorRole, x.r.ActorVendor),
		Notes: map[string]float64{"hour_of_week_share": share, "peer_share": peerShare, "active_days": float64(st.SessDays),
			"session_windows": float64(st.SessWins), "gap_needed": float64(need), "evidence_days": float64(days)}})
	if x.peer != nil {
		f.Evidence.PeerCount = x.peer.members
	}
	f.WindowStart = time.Unix(st.SessStart, 0).UTC()
	f.Summary = fmt.Sprintf("%s started a session at %s (%s), %d hours from its usual hours (this hour of the week holds %.2f%% of its activity, %.2f%% of its peers')",
		x.r.ActorID, startLocal.Format("Mon 15:04"), loc, gap, 100*share, 100*peerShare)
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
