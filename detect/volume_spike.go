package detect

import (
	"fmt"
	"math"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

func (e *Engine) detectVolume(x *rowCtx) (models.Finding, bool) {
	f, fired, judged := e.detectVolumeWindow(x)
	if fired || !judged {
		return f, fired
	}
	return e.detectVolumeSpan(x, x.c.multiplier(x.r.Tenant))
}

// detectVolumeWindow judges the records of the window alone: far above
// the actor's seasonal baseline (or its peers' while it warms up) and above
// the largest window it (or its peers) made. judged is false while neither
// the actor nor its peers have history. Streaming (stream.go) runs this
// check on the open window's records so far.
func (e *Engine) detectVolumeWindow(x *rowCtx) (f models.Finding, fired, judged bool) {
	d := e.cfg.Detectors
	mu, scale, src, ok := e.expected(x, false)
	if !ok {
		return models.Finding{}, false, false
	}
	mult := x.c.multiplier(x.r.Tenant)
	mu *= mult
	scale *= mult
	obs := float64(x.r.Records)
	x.expRec = mu
	if obs < d.VolumeRatio*mu || obs-mu < d.VolumeMin {
		return models.Finding{}, false, true
	}
	if x.warm && obs < e.maxFactor(x)*math.Max(float64(x.st.RecMax), x.peerMax(false))*mult {
		return models.Finding{}, false, true
	}
	if !x.warm && obs < e.maxFactor(x)*x.peerMax(false)*mult {
		// warming up: judged by what its peers do at most, not only by
		// their typical window (a new marketer's first segment pull)
		return models.Finding{}, false, true
	}
	z := (obs - mu) / math.Max(scale, 1)
	if z < d.VolumeZ {
		return models.Finding{}, false, true
	}
	p := countTail(obs, mu, scale*scale)
	if p > d.VolumeTailProb {
		return models.Finding{}, false, true
	}
	if hp, ok := x.st.heavyExplains(obs, mult, x.st.heavyThreshold(d.VolumeMin), e.peerHeavy(x)); ok && hp > d.VolumeTailProb {
		// a rare-but-heavy actor's call of a size its own heavy calls
		// (none yet: its role's) make plausible: judged by the span
		// detector, not alone
		return models.Finding{}, false, true
	}
	f = e.base(DetVolumeSpike, x, z, p, models.Evidence{Metric: "records per window", Observed: obs, Baseline: mu,
		Spread: scale, Threshold: math.Max(d.VolumeRatio*mu, mu+d.VolumeZ*scale), BaselineSource: src,
		Notes: map[string]float64{"z": z, "ratio": obs / mu, "tenant_multiplier": mult, "tail_probability": p}})
	e.peerInfo(&f, x)
	f.Summary = fmt.Sprintf("%s read %.0f records in %s, %.0fx the expected %.1f (z %.1f, p %.1e)", x.r.ActorID, obs,
		e.cfg.Window, obs/mu, mu, z, p)
	return f, true, true
}

// detectVolumeSpan judges the records of the last VolumeSpan windows
// against the actor's own rolling sums: a sustained rise that no single
// window shows.
func (e *Engine) detectVolumeSpan(x *rowCtx, mult float64) (models.Finding, bool) {
	d := e.cfg.Detectors
	st := x.st
	if !x.warm {
		return e.detectVolumeSpanPeers(x, mult)
	}
	if st.Span.N < 16 {
		return models.Finding{}, false
	}
	w := x.c.start.Unix() / int64(e.cfg.Window/time.Second)
	obs := st.rolling(w-1, d.VolumeSpan-1) + float64(x.r.Records)
	mu := math.Max(st.spanMed, 1) * mult
	scale := math.Max(madScale*st.spanMAD*mult, math.Sqrt(mu))
	largest := math.Max(float64(st.SpanMax), x.peerMax(true))
	if obs < d.VolumeSpanRatio*mu || obs-mu < d.VolumeMin || obs < e.maxFactor(x)*largest*mult {
		return models.Finding{}, false
	}
	z := (obs - mu) / scale
	// Overlapping spans are not independent, and a negative binomial
	// through their median and MAD has a fatter tail than the actor
	// shows: the tail probability is an exponential tail calibrated on the
	// largest span the actor has made over its active span-long blocks
	// (a sparse actor's spans barely overlap: as many as its active
	// windows; an always-active one's WinN/VolumeSpan).
	p, ok := expTail(obs, mu, float64(st.SpanMax)*mult, st.spans(d.VolumeSpan))
	if !ok {
		p = countTail(obs, mu, scale*scale)
	}
	if z < d.VolumeZ || p > d.VolumeTailProb {
		return models.Finding{}, false
	}
	// A rare-but-heavy actor (a marketer pulling a segment of a few
	// hundred records twice a day) is judged by how often it makes heavy
	// calls: the span is explained when its heavy windows are no more
	// than a Poisson count at the actor's own heavy-call rate makes
	// plausible, none is above the largest window it has made, and the
	// rest of the span is ordinary.
	heavy := st.heavyThreshold(d.VolumeMin)
	k, heavySum, biggest, active := st.heavyInSpan(w-1, d.VolumeSpan-1, heavy)
	if rec := float64(x.r.Records); rec >= heavy {
		k, heavySum, biggest = k+1, heavySum+rec, math.Max(biggest, rec)
	}
	active++
	var heavyP float64 = 1
	if k > 0 {
		lambda := st.heavyRate() * float64(active) * mult
		heavyP = poissonTail(float64(k), lambda)
		light := obs - heavySum
		sizeOK := biggest <= e.maxFactor(x)*math.Max(float64(st.RecMax), x.peerMax(false))*mult
		if hp, ok := st.heavyExplains(biggest, mult, heavy, e.peerHeavy(x)); ok && hp > d.VolumeTailProb {
			sizeOK = true // a size its own heavy calls make plausible
		}
		if heavyP > d.VolumeTailProb && light < d.VolumeSpanRatio*mu && sizeOK {
			return models.Finding{}, false
		}
	}
	span := time.Duration(d.VolumeSpan) * e.cfg.Window
	f := e.base(DetVolumeSpike, x, z, p, models.Evidence{Metric: fmt.Sprintf("records per %s (rolling)", span), Observed: obs,
		Baseline: mu, Spread: scale, Threshold: math.Max(d.VolumeSpanRatio*mu, e.maxFactor(x)*largest*mult),
		BaselineSource: "actor rolling median",
		Notes: map[string]float64{"z": z, "ratio": obs / mu, "tenant_multiplier": mult, "tail_probability": p,
			"largest_seen": float64(st.SpanMax), "peers_largest": x.peerMax(true), "heavy_windows": float64(k),
			"heavy_rate": st.heavyRate(), "heavy_count_probability": heavyP}})
	f.WindowStart = x.c.end.Add(-span)
	f.Summary = fmt.Sprintf("%s read %.0f records in the last %s, %.1fx its usual %.0f and above the largest seen %.0f (z %.1f, p %.1e)",
		x.r.ActorID, obs, span, obs/mu, mu, largest, z, p)
	return f, true
}

// detectVolumeSpanPeers judges the rolling span of an actor still warming
// up against its peers' rolling spans: above volume_max_factor times their
// median largest span, volume_span_ratio times their median span,
// and an exponential tail calibrated on that largest span as improbable as
// volume_tail_prob. A new account that starts by pulling a thousand
// records in a quarter hour has no own history to be judged by.
func (e *Engine) detectVolumeSpanPeers(x *rowCtx, mult float64) (models.Finding, bool) {
	d := e.cfg.Detectors
	p := x.vpeer
	if p == nil || p.members < d.PeerMinPeers || p.spanMax <= 0 {
		return models.Finding{}, false
	}
	w := x.c.start.Unix() / int64(e.cfg.Window/time.Second)
	obs := x.st.rolling(w-1, d.VolumeSpan-1) + float64(x.r.Records)
	mu := math.Max(p.spanMed, 1) * mult
	largest := p.spanMax * mult
	if obs < d.VolumeSpanRatio*mu || obs-mu < d.VolumeMin || obs < e.maxFactor(x)*largest {
		return models.Finding{}, false
	}
	prob, ok := expTail(obs, mu, largest, p.spanN)
	if !ok {
		// the peers' largest span says nothing (as regular as their
		// median): a Poisson tail through their median
		prob = poissonTail(obs, mu)
	}
	if prob > d.VolumeTailProb {
		return models.Finding{}, false
	}
	span := time.Duration(d.VolumeSpan) * e.cfg.Window
	f := e.base(DetVolumeSpike, x, obs/mu, prob, models.Evidence{Metric: fmt.Sprintf("records per %s (rolling)", span),
		Observed: obs, Baseline: mu, Threshold: math.Max(d.VolumeSpanRatio*mu, e.maxFactor(x)*largest),
		BaselineSource: "peers rolling",
		Notes: map[string]float64{"ratio": obs / mu, "tenant_multiplier": mult, "tail_probability": prob,
			"peers_largest": p.spanMax, "peers_spans": p.spanN}})
	e.peerInfo(&f, x)
	f.WindowStart = x.c.end.Add(-span)
	f.Summary = fmt.Sprintf("%s (warming up) read %.0f records in the last %s, %.1fx its peers' usual %.0f and above their largest %.0f (p %.1e)",
		x.r.ActorID, obs, span, obs/mu, mu, largest, prob)
	return f, true
}
