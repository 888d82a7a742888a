package detect

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

func (e *Engine) detectEnumWindow(x *rowCtx) (models.Finding, bool) {
	d := e.cfg.Detectors
	mu, scale, src, ok := e.expected(x, true)
	if !ok {
		return models.Finding{}, false
	}
	mult := x.c.multiplier(x.r.Tenant)
	mu *= mult
	scale *= mult
	obs := float64(x.r.Subjects)
	if obs < d.EnumWindowMin || obs < d.EnumWindowRatio*mu {
		return models.Finding{}, false
	}
	z := (obs - mu) / math.Max(scale, 1)
	if z < d.EnumWindowZ {
		return models.Finding{}, false
	}
	p := countTail(obs, mu, scale*scale)
	f := e.base(DetEnumeration, x, z, p, models.Evidence{Metric: "distinct customers per window", Observed: obs,
		Baseline: mu, Spread: scale, Threshold: math.Max(d.EnumWindowMin, d.EnumWindowRatio*mu), BaselineSource: src,
		Notes: map[string]float64{"z": z, "tenant_multiplier": mult}})
	e.peerInfo(&f, x)
	f.Summary = fmt.Sprintf("%s touched %.0f distinct customers in %s, expected %.1f (z %.1f)", x.r.ActorID, obs, e.cfg.Window, mu, z)
	return f, true
}

// detectCountEnumeration compares distinct customers over a period (the
// day so far, or the last hour) with the actor's busy day or hour (its 90th
// percentile), or its peers' while it has too little history.
func (e *Engine) detectCountEnumeration(ctx context.Context, st *actorState, c store.ActorCount, hourly bool, from, t time.Time) (models.Finding, bool) {
	cfg := e.cfg.Detectors
	obs := float64(c.Count)
	ratio, minimum, what := cfg.EnumDayRatio, cfg.EnumDayMin, "today so far"
	if hourly {
		ratio, minimum, what = cfg.EnumHourRatio, cfg.EnumHourMin, "in the last hour"
	}
	if f, ok := cfg.EnumRatioFactorByType[st.Type]; ok {
		ratio *= f
	}
	if obs < minimum || !e.cfg.enabled(DetEnumeration) {
		if hourly {
			st.enumHourOn = false
		}
		return models.Finding{}, false
	}
	d := int32(from.Unix() / 86400)
	if !hourly && st.lastEnumDay == d {
		return models.Finding{}, false // reported today already
	}
	p := e.peers[peerKey{c.Tenant, peerGroup(st.Role, st.Vendor)}]
	var base float64
	src := "actor"
	own, ok := st.busyDay(d)
	// Baselines are learned net of tenant-wide swings; the bar is lifted
	// by the actor's current tenant multiplier (a promotion day).
	mult := 1.0
	if t := st.Days[int(d)%dayRingLen]; t.day() == d {
		mult = t.mult()
	}
	if hourly {
		own, ok = st.busyHour(), st.HourSubj.N >= 8
		mult = st.multAvg()
	}
	switch {
	case ok:
		base = own
	case p != nil && !hourly && p.dayN >= cfg.PeerMinPeers:
		base, src = p.daySubj, "peers"
	case p != nil && hourly && p.hourN >= cfg.PeerMinPeers:
		base, src = p.hourSubj, "peers"
	default:
		return models.Finding{}, false
	}
	base = math.Max(base, 1) * mult
	// An hour is also judged by the count distribution of the actor's own
	// hours (median and MAD of its past hourly distinct customers, net of
	// tenant swings): far in the negative-binomial tail and at least
	// enum_hour_tail_ratio times its busy hour is enough, so that a slow
	// trickle of strangers on top of a steady queue of tickets shows.
	judge := func(obs float64) (prob, thr float64) {
		prob, thr = poissonTail(obs, base), ratio*base
		if hourly && src == "actor" {
			med, mad, _ := st.HourSubj.medianMAD(e.scratch[:0])
			mu := math.Max(med, 1) * mult
			sd := math.Max(madScale*mad*mult, math.Sqrt(mu))
			prob = countTail(obs, mu, sd*sd)
			if prob <= cfg.EnumTailProb {
				thr = math.Min(thr, cfg.EnumHourTailRatio*base)
			}
		}
		return prob, thr
	}
	prob, thr := judge(obs)
	if obs <= thr {
		if hourly {
			st.enumHourOn = false
		}
		return models.Finding{}, false
	}
	total := obs
	metric := "distinct customers " + what
	query := fmt.Sprintf("SELECT uniqExactIfMerge(subjects) FROM actor_minute WHERE tenant = %s AND actor_id = %s AND minute >= %s AND minute < %s",
		lit(c.Tenant), lit(c.ActorID), litTime(from), litTime(t))
	// The count above is of customers touched, refused reads included
	// (actor_minute keeps no per-customer result): a denied burst's
	// refused reads are its own evidence, not customers whose data was
	// read. Once the count is over the bar it is confirmed on raw events,
	// so at most one query per check and only for an unusual actor.
	if models.ActorType(st.Type) == models.ActorBot {
		// A bot acts inside conversations, each opened by one customer: the
		// customers it reads as its conversations' own subjects are demand
		// (a surge of contacts raises them with the conversations), the
		// others are what enumeration is about.
		n, err := e.agg.SubjectsOutsideConversation(ctx, c.Tenant, c.ActorID, from, t)
		if err != nil {
			// judged on all its customers, as an actor without conversations
			e.log.Warn("reading a bot's customers outside its conversations; judging all its customers", "actor", c.ActorID, "err", err)
		} else {
			obs = float64(n)
			metric = "distinct customers read outside their own conversation " + what
			query = fmt.Sprintf("SELECT uniqExactIf(subject_id, subject_id != '' AND subject_id != conversation_subject_id AND result != 'denied') FROM events WHERE tenant = %s AND actor_id = %s AND ts >= %s AND ts < %s",
				lit(c.Tenant), lit(c.ActorID), litTime(from), litTime(t))
		}
	} else {
		n, err := e.agg.SubjectsRead(ctx, c.Tenant, c.ActorID, from, t)
		if err != nil {
			e.log.Warn("reading the customers an actor read; judging every customer it touched", "actor", c.ActorID, "err", err)
		} else if float64(n) < obs {
			obs = float64(n)
			metric = "distinct customers read (refused reads left out) " + what
			query = fmt.Sprintf("SELECT uniqExactIf(subject_id, subject_id != '' AND result != 'denied') FROM events WHERE tenant = %s AND actor_id = %s AND ts >= %s AND ts < %s",
				lit(c.Tenant), lit(c.ActorID), litTime(from), litTime(t))
		}
	}
	if obs != total {
		prob, thr = judge(obs)
		if obs < minimum || obs <= thr {
			if hourly {
				st.enumHourOn = false // asked again at the next check
			}
			return models.Finding{}, false
		}
	}
	if hourly {
		// once per burst: the rolling hour is checked every few
		// minutes, and an ongoing burst was reported when it started
		if st.enumHourOn {
			// still the burst reported when it started: the day's count
			// holds its customers, also on a new day the burst runs into
			st.lastEnumDay = int32(t.Add(-time.Nanosecond).Unix() / 86400)
			return models.Finding{}, false
		}
		st.enumHourOn = true
	}
	// The day's count holds the customers of an hour already reported: one
	// incident, one enumeration finding a day.
	st.lastEnumDay = d
	f := models.Finding{Detector: DetEnumeration, Tenant: c.Tenant, ActorID: c.ActorID, ActorType: models.ActorType(st.Type),
		ActorRole: st.Role, ActorVendor: st.Vendor, WindowStart: from, WindowEnd: t, DetectedAt: t,
		Score: obs / base, Probability: prob, Severity: e.cfg.severity(DetEnumeration),
		Summary: fmt.Sprintf("%s touched %.0f %s, %.1fx a busy period of its %s (%.0f)", c.ActorID, obs, metric, obs/base, src, base),
		Evidence: models.Evidence{Metric: metric, Observed: obs, Baseline: base,
			Threshold: thr, BaselineSource: src, Subjects: uint64(obs), Notes: map[string]float64{"tenant_multiplier": mult, "tail_probability": prob, "customers_total": total},
			Query: query}}
	if src == "peers" && p != nil {
		f.Evidence.Peers, f.Evidence.PeerCount = peerGroup(st.Role, st.Vendor), p.members
	}
	return f, true
}
