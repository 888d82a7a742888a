package detect

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// rowCtx is what the detectors of one actor in one window share.
type rowCtx struct {
	c      *cycle
	r      *windowRow
	st     *actorState
	warm   bool
	how    int // hour of week in the actor's time zone
	peer   *peerStats
	idle   time.Duration // since the actor's previous active window
	newIts []string      // items new to the actor this window
	fired  map[string]bool
	// expRec is the expected records (seasonal, times the tenant
	// multiplier) used by volume and learning.
	expRec float64
	// ser is the actor's count series prepared for this window (nil
	// when the actor is not a continuous series).
	ser *seriesState
}

// base builds a finding with the fields every window detector fills.
func (e *Engine) base(det string, x *rowCtx, score, prob float64, ev models.Evidence) models.Finding {
	r := x.r
	ev.TopStores = slices.Clone(r.Stores)
	ev.Categories = slices.Clone(r.Categories)
	ev.Records = r.Records
	ev.Subjects = r.Subjects
	if ev.Query == "" {
		ev.Query = windowQuery(r.Tenant, r.ActorID, x.c.start.Add(-24*time.Hour), x.c.end, e.cfg.Window)
	}
	return models.Finding{Detector: det, Tenant: r.Tenant, ActorID: r.ActorID, ActorType: models.ActorType(r.ActorType),
		ActorRole: r.ActorRole, ActorVendor: r.ActorVendor, WindowStart: x.c.start, WindowEnd: x.c.end,
		DetectedAt: x.c.end, Score: score, Probability: prob, Severity: e.cfg.severity(det), Evidence: ev}
}

// detectRow runs the window detectors on one actor's window.
func (e *Engine) detectRow(c *cycle, r *windowRow, st *actorState) []models.Finding {
	x := &rowCtx{c: c, r: r, st: st, warm: e.warm(st), how: hourOfWeek(c.start.In(e.locOf(st))),
		peer: e.peers[peerKey{r.Tenant, peerGroup(r.ActorRole, r.ActorVendor)}], fired: map[string]bool{}}
	if st.LastSeen > 0 {
		x.idle = c.start.Sub(time.Unix(st.LastSeen, 0))
	}
	for _, set := range []struct{ have, now []string }{{st.Stores, r.Stores}, {st.ResourceTypes, r.ResourceTypes}, {st.Categories, r.Categories}} {
		for _, it := range set.now {
			if !slices.Contains(set.have, it) {
				x.newIts = append(x.newIts, it)
			}
		}
	}
	e.scratch = st.stats(e.scratch)
	x.ser = e.seriesPrepare(st, c.start.Unix()/int64(e.cfg.Window/time.Second))
	if x.ser != nil {
		e.series[actorKey{r.Tenant, r.ActorID}] = st
	}
	e.session(x)
	var out []models.Finding
	for _, d := range windowDetectors {
		if !e.cfg.enabled(d.name) || (d.alone && len(out) > 0) {
			continue
		}
		if fd, ok := d.check(e, x); ok {
			x.fired[d.name] = true
			out = append(out, fd)
		}
	}
	return out
}

// learnRow folds the window into the actor's baselines. After a volume or
// enumeration finding the learned values are clipped, unless a
// false-positive mark re-baselines exactly that pattern.
func (e *Engine) learnRow(c *cycle, r *windowRow, st *actorState, fs []models.Finding) {
	rec, subj := float64(r.Records), float64(r.Subjects)
	warm := e.warm(st)
	for _, f := range fs {
		// While an actor warms up (judged against its peers) its own
		// baseline learns what it does: censoring it would make a new
		// account's routine heavy calls look new forever.
		if !warm || e.falsePositive(f.Detector, r.Tenant, r.ActorID, c.end) {
			continue
		}
		switch f.Detector {
		case DetVolumeSpike, DetPeerDeviation, DetDormant:
			rec = clip(rec, math.Max(st.recMed, 1))
			subj = clip(subj, math.Max(st.subjMed, 1))
		case DetEnumeration:
			subj = clip(subj, math.Max(st.subjMed, 1))
		}
	}
	if warm {
		if v, ok := e.features(c, r, st); ok {
			e.mahal.add(v)
		}
	}
	if st.Series != nil {
		st.Series.learn(c.start.Unix()/int64(e.cfg.Window/time.Second), float64(r.Records))
	}
	st.learn(c.start, hourOfWeek(c.start.In(e.locOf(st))), int64(e.cfg.Window/time.Second), e.cfg.Detectors.VolumeSpan,
		rec, subj, float64(r.Denied), c.multiplier(r.Tenant), st.heavyThreshold(e.cfg.Detectors.VolumeMin), r)
}

// expected returns the expected records of the actor in this window, its
// scale, and where it came from; ok is false while neither the actor nor
// its peers have history.
func (e *Engine) expected(x *rowCtx, subjects bool) (mu, scale float64, src string, ok bool) {
	st := x.st
	if x.warm {
		if subjects {
			mu = math.Max(st.subjMed, 0.5)
			return mu, math.Max(madScale*st.subjMAD, math.Sqrt(mu)), "actor median", true
		}
		mu, _, src = st.seasonal(x.how)
		mu = math.Max(mu, 0.5)
		rel := 1.0
		if st.recMed > 0 {
			rel = mu / st.recMed
		}
		return mu, math.Max(madScale*st.recMAD*rel, math.Sqrt(mu)), src, true
	}
	if x.peer != nil && x.peer.members >= e.cfg.Detectors.PeerMinPeers {
		mu, scale = x.peer.baseline(subjects)
		return math.Max(mu, 0.5), math.Max(scale, 1), "peers", true
	}
	return 0, 0, "warming-up", false
}

func (e *Engine) detectVolume(x *rowCtx) (models.Finding, bool) {
	d := e.cfg.Detectors
	mu, scale, src, ok := e.expected(x, false)
	if !ok {
		return models.Finding{}, false
	}
	mult := x.c.multiplier(x.r.Tenant)
	mu *= mult
	scale *= mult
	obs := float64(x.r.Records)
	x.expRec = mu
	if obs < d.VolumeRatio*mu || obs-mu < d.VolumeMin {
		return e.detectVolumeSpan(x, mult)
	}
	if x.warm && obs < e.maxFactor(x)*math.Max(float64(x.st.RecMax), x.peerMax(false))*mult {
		return e.detectVolumeSpan(x, mult)
	}
	if !x.warm && obs < e.maxFactor(x)*x.peerMax(false)*mult {
		// warming up: judged by what its peers do at most, not only by
		// their typical window (a new marketer's first segment pull)
		return e.detectVolumeSpan(x, mult)
	}
	z := (obs - mu) / math.Max(scale, 1)
	if z < d.VolumeZ {
		return e.detectVolumeSpan(x, mult)
	}
	p := countTail(obs, mu, scale*scale)
	if p > d.VolumeTailProb {
		return e.detectVolumeSpan(x, mult)
	}
	if hp, ok := x.st.heavyExplains(obs, mult, x.st.heavyThreshold(d.VolumeMin)); ok && hp > d.VolumeTailProb {
		// a rare-but-heavy actor's call of a size its own heavy calls
		// make plausible: judged by the span detector, not alone
		return e.detectVolumeSpan(x, mult)
	}
	f := e.base(DetVolumeSpike, x, z, p, models.Evidence{Metric: "records per window", Observed: obs, Baseline: mu,
		Spread: scale, Threshold: math.Max(d.VolumeRatio*mu, mu+d.VolumeZ*scale), BaselineSource: src,
		Notes: map[string]float64{"z": z, "ratio": obs / mu, "tenant_multiplier": mult, "tail_probability": p}})
	e.peerInfo(&f, x)
	f.Summary = fmt.Sprintf("%s read %.0f records in %s, %.0fx the expected %.1f (z %.1f, p %.1e)", x.r.ActorID, obs,
		e.cfg.Window, obs/mu, mu, z, p)
	return f, true
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
	// largest span the actor has made over about WinN/VolumeSpan spans.
	p, ok := expTail(obs, mu, float64(st.SpanMax)*mult, float64(st.WinN)/float64(d.VolumeSpan))
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
		if hp, ok := st.heavyExplains(biggest, mult, heavy); ok && hp > d.VolumeTailProb {
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
// 90th-percentile largest span, volume_span_ratio times their median span,
// and an exponential tail calibrated on that largest span as improbable as
// volume_tail_prob. A new account that starts by pulling a thousand
// records in a quarter hour has no own history to be judged by.
func (e *Engine) detectVolumeSpanPeers(x *rowCtx, mult float64) (models.Finding, bool) {
	d := e.cfg.Detectors
	p := x.peer
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

// maxFactor is how far above the largest value seen a volume must be.
func (e *Engine) maxFactor(x *rowCtx) float64 {
	if f, ok := e.cfg.Detectors.VolumeMaxFactorByType[x.r.ActorType]; ok {
		return f
	}
	return e.cfg.Detectors.VolumeMaxFactor
}

// peerMax is the peers' 90th-percentile largest window (or rolling span).
func (x *rowCtx) peerMax(span bool) float64 {
	if x.peer == nil {
		return 0
	}
	if span {
		return x.peer.spanMax
	}
	return x.peer.recMax
}

// session tracks the actor's current run of activity and dormancy.
func (e *Engine) session(x *rowCtx) {
	st := x.st
	ts := x.c.start.Unix()
	if st.LastSeen == 0 || x.idle > 30*time.Minute {
		st.SessStart, st.SessWins = ts, 0
		st.SessGap = int8(st.hourGap(x.c.start.In(e.locOf(st)).Hour(), e.cfg.Detectors.OffHoursShare))
	}
	if st.LastSeen > 0 && x.idle >= time.Duration(e.cfg.Detectors.DormantDays*24*float64(time.Hour)) {
		st.WokeAt, st.WokeWins = ts, 0
	}
	if st.WokeAt > 0 && x.c.start.Sub(time.Unix(st.WokeAt, 0)) > e.cfg.Detectors.DormantWatch {
		st.WokeAt = 0
	}
	st.SessWins++
	if st.WokeAt > 0 {
		st.WokeWins++
	}
}

func (e *Engine) peerInfo(f *models.Finding, x *rowCtx) {
	if f.Evidence.BaselineSource == "peers" && x.peer != nil {
		f.Evidence.Peers = peerGroup(x.r.ActorRole, x.r.ActorVendor)
		f.Evidence.PeerCount = x.peer.members
	}
}

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
func (e *Engine) detectCountEnumeration(st *actorState, c store.ActorCount, hourly bool, from, t time.Time) (models.Finding, bool) {
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
	if t := st.Days[int(d)%dayRingLen]; t.Day == d {
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
	prob := poissonTail(obs, base)
	thr := ratio * base
	if hourly && src == "actor" {
		med, mad, _ := medianMAD(st.HourSubj.values(), e.scratch[:0])
		mu := math.Max(med, 1) * mult
		sd := math.Max(madScale*mad*mult, math.Sqrt(mu))
		prob = countTail(obs, mu, sd*sd)
		if prob <= cfg.EnumTailProb {
			thr = math.Min(thr, cfg.EnumHourTailRatio*base)
		}
	}
	if obs <= thr {
		if hourly {
			st.enumHourOn = false
		}
		return models.Finding{}, false
	}
	if hourly {
		// once per burst: the rolling hour is checked every few
		// minutes, and an ongoing burst was reported when it started
		if st.enumHourOn {
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
		Summary: fmt.Sprintf("%s touched %.0f distinct customers %s, %.1fx a busy period of its %s (%.0f)", c.ActorID, obs, what, obs/base, src, base),
		Evidence: models.Evidence{Metric: "distinct customers " + what, Observed: obs, Baseline: base,
			Threshold: thr, BaselineSource: src, Subjects: c.Count, Notes: map[string]float64{"tenant_multiplier": mult, "tail_probability": prob},
			Query: fmt.Sprintf("SELECT uniqExactIfMerge(subjects) FROM actor_minute WHERE tenant = %s AND actor_id = %s AND minute >= %s AND minute < %s",
				lit(c.Tenant), lit(c.ActorID), litTime(from), litTime(t))}}
	if src == "peers" && p != nil {
		f.Evidence.Peers, f.Evidence.PeerCount = peerGroup(st.Role, st.Vendor), p.members
	}
	return f, true
}

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

func (e *Engine) detectFirstSeen(x *rowCtx) (models.Finding, bool) {
	d := e.cfg.Detectors
	if len(x.newIts) == 0 {
		return models.Finding{}, false
	}
	havePeers := x.peer != nil && x.peer.members >= d.PeerMinPeers
	if !x.warm && !havePeers {
		return models.Finding{}, false
	}
	score := 0.0
	var items []string
	var sensitive int
	for _, it := range x.newIts {
		w := 1.0
		if models.SensitiveCategories[it] {
			w = d.FirstSeenSensitiveWeight
			sensitive++
		}
		share := x.peer.share(it)
		switch {
		case havePeers && share < d.FirstSeenPeerRare:
			w *= 2
		case havePeers && share >= 0.5:
			w *= 0.25
		case havePeers:
			w *= 0.5
		}
		if !x.warm && (!havePeers || share >= d.FirstSeenPeerRare) {
			continue // new actors are judged against their peers only
		}
		score += w
		items = append(items, it)
	}
	if score < d.FirstSeenScore {
		return models.Finding{}, false
	}
	src := "actor"
	if !x.warm {
		src = "peers"
	}
	f := e.base(DetFirstSeen, x, score, 0, models.Evidence{Metric: "weighted first-seen stores, resource types and categories",
		Observed: score, Threshold: d.FirstSeenScore, BaselineSource: src, Peers: peerGroup(x.r.ActorRole, x.r.ActorVendor),
		Notes: map[string]float64{"sensitive": float64(sensitive)}})
	if x.peer != nil {
		f.Evidence.PeerCount = x.peer.members
		for _, it := range items {
			f.Evidence.Notes["peer_share:"+it] = x.peer.share(it)
		}
	}
	if sensitive > 0 {
		f.Severity = max(f.Severity, models.SeverityHigh)
	}
	f.Summary = fmt.Sprintf("%s touched %s for the first time (rare among its peers)", x.r.ActorID, strings.Join(items, ", "))
	return f, true
}

func (e *Engine) detectNewCountry(x *rowCtx) (models.Finding, bool) {
	d := e.cfg.Detectors
	if !*d.NewCountry || !x.warm || len(x.st.Countries) == 0 {
		return models.Finding{}, false
	}
	for _, c := range x.r.Countries {
		if slices.Contains(x.st.Countries, c) {
			continue
		}
		share := x.peer.share(c)
		if share >= d.FirstSeenPeerRare {
			continue
		}
		f := e.base(DetNewCountry, x, 1-share, share, models.Evidence{Metric: "new client country", BaselineSource: "actor",
			Peers: peerGroup(x.r.ActorRole, x.r.ActorVendor), Notes: map[string]float64{"peer_share": share}})
		f.Evidence.TopStores = append(f.Evidence.TopStores, "country:"+c)
		f.Summary = fmt.Sprintf("%s accessed from %s, a country new to it (known: %s) and to %.0f%% of its peers",
			x.r.ActorID, c, strings.Join(x.st.Countries, ", "), 100*share)
		return f, true
	}
	return models.Finding{}, false
}

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
		idle = float64(st.WokeAt/86400 - int64(dt.Day))
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

func (e *Engine) detectPeer(x *rowCtx) (models.Finding, bool) {
	d := e.cfg.Detectors
	group := peerGroup(x.r.ActorRole, x.r.ActorVendor)
	pw := x.c.peersNow[peerKey{x.r.Tenant, group}]
	if pw == nil || len(pw.records)-1 < d.PeerMinPeers || group == "" {
		return models.Finding{}, false
	}
	obs := float64(x.r.Records)
	med := math.Max(pw.recMed, 1)
	scale := math.Max(madScale*pw.recMAD, math.Sqrt(med))
	z := (obs - med) / scale
	if z < d.PeerZ || obs < d.PeerRatio*med || obs-med < d.VolumeMin/2 {
		return models.Finding{}, false
	}
	if x.warm {
		mu, _, _ := x.st.seasonal(x.how)
		mult := x.c.multiplier(x.r.Tenant)
		if obs < 3*math.Max(mu, 1)*mult || obs < e.maxFactor(x)*float64(x.st.RecMax)*mult {
			return models.Finding{}, false // it always works above its peers, or has done this before
		}
	} else if obs < e.maxFactor(x)*x.peerMax(false)*x.c.multiplier(x.r.Tenant) {
		return models.Finding{}, false // warming up, within what its peers do at most
	}
	if hp, ok := x.st.heavyExplains(obs, x.c.multiplier(x.r.Tenant), x.st.heavyThreshold(d.VolumeMin)); ok && hp > d.VolumeTailProb {
		return models.Finding{}, false // a size its own rare heavy calls make plausible
	}
	f := e.base(DetPeerDeviation, x, z, 0, models.Evidence{Metric: "records per window vs peers in the same window",
		Observed: obs, Baseline: med, Spread: scale, Threshold: math.Max(d.PeerRatio*med, med+d.PeerZ*scale),
		BaselineSource: "peers", Peers: peerGroup(x.r.ActorRole, x.r.ActorVendor), PeerCount: len(pw.records) - 1,
		Notes: map[string]float64{"z": z}})
	f.Summary = fmt.Sprintf("%s read %.0f records, %.0fx the median of its %d peers (%s) in the same window (z %.1f)",
		x.r.ActorID, obs, obs/med, len(pw.records)-1, group, z)
	return f, true
}

// features is the actor's deviation vector for the multivariate model.
func (e *Engine) features(c *cycle, r *windowRow, st *actorState) ([mahalanobisDims]float64, bool) {
	var v [mahalanobisDims]float64
	if st.Records.N < 16 {
		return v, false
	}
	mu, _, _ := st.seasonal(hourOfWeek(c.start.In(e.locOf(st))))
	mu *= c.multiplier(r.Tenant)
	v[0] = math.Log1p(float64(r.Records)) - math.Log1p(mu)
	if hp, ok := st.heavyExplains(float64(r.Records), c.multiplier(r.Tenant), st.heavyThreshold(e.cfg.Detectors.VolumeMin)); ok && hp > e.cfg.Detectors.VolumeTailProb {
		v[0] = 0 // one of the actor's own rare heavy calls, of a plausible size: its records are not a deviation
	}
	v[1] = math.Log1p(float64(r.Subjects)) - math.Log1p(st.subjMed)
	v[2] = math.Log1p(float64(r.Denied))
	n := 0
	for _, set := range []struct{ have, now []string }{{st.Stores, r.Stores}, {st.ResourceTypes, r.ResourceTypes}, {st.Categories, r.Categories}} {
		for _, it := range set.now {
			if !slices.Contains(set.have, it) {
				n++
			}
		}
	}
	v[3] = float64(n)
	s := 0
	for _, cat := range r.Categories {
		if models.SensitiveCategories[cat] {
			s++
		}
	}
	v[4] = float64(s)
	// exports beyond the most the actor has made in a window (a nightly
	// job's own export is not unusual for it)
	v[5] = math.Max(0, math.Log1p(float64(r.Exports))-math.Log1p(float64(st.ExportMax)))
	return v, true
}

func (e *Engine) detectMahalanobis(x *rowCtx) (models.Finding, bool) {
	if !x.warm {
		return models.Finding{}, false
	}
	v, ok := e.features(x.c, x.r, x.st)
	if !ok {
		return models.Finding{}, false
	}
	d2, contrib, ok := e.mahal.distance2(v)
	if !ok {
		return models.Finding{}, false
	}
	p := chiSquareTail(d2, mahalanobisDims)
	thr := math.Max(chiSquareQuantile(e.cfg.Detectors.MahalanobisProb), 3*e.mahal.empirical)
	if p > e.cfg.Detectors.MahalanobisProb || d2 < thr {
		return models.Finding{}, false
	}
	notes := map[string]float64{"shrinkage": e.mahal.shrink, "samples": float64(e.mahal.fitN), "empirical_q999_d2": e.mahal.empirical}
	top, topV := "", 0.0
	for i, c := range contrib {
		notes["contribution:"+featureNames[i]] = c
		notes["value:"+featureNames[i]] = v[i]
		if c > topV {
			top, topV = featureNames[i], c
		}
	}
	f := e.base(DetMahalanobis, x, math.Sqrt(d2), p, models.Evidence{Metric: "Mahalanobis distance of the feature deviations",
		Observed: math.Sqrt(d2), Baseline: math.Sqrt(mahalanobisDims), BaselineSource: "population (Ledoit-Wolf shrinkage covariance)",
		Threshold: math.Sqrt(thr), Notes: notes})
	f.Summary = fmt.Sprintf("%s's window is a multivariate outlier (distance %.1f, p %.1e; largest part: %s)", x.r.ActorID, math.Sqrt(d2), p, top)
	return f, true
}

// chiSquareQuantile returns the squared distance whose tail probability is p.
func chiSquareQuantile(p float64) float64 {
	lo, hi := 0.0, 1000.0
	for i := 0; i < 60; i++ {
		mid := (lo + hi) / 2
		if chiSquareTail(mid, mahalanobisDims) > p {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

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
		bs = append(bs, float64(b.Light))
		logs = append(logs, math.Log(math.Max(float64(b.Light), 1)))
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
		ys[i] = float64(r.Light)
	}
	last := ys[n-1]
	// Today is partial until midnight: it counts only once it has passed
	// the day before, or when it is over (a session started yesterday may
	// be the latest day).
	complete := run[n-1].Day < d || !t.Before(dayStart.Add(24*time.Hour))
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
		ActorRole: st.Role, ActorVendor: st.Vendor, WindowStart: time.Unix(int64(run[0].Day)*86400, 0).UTC(), WindowEnd: t,
		DetectedAt: t, Score: last / base, Severity: e.cfg.severity(DetDrift),
		Summary: fmt.Sprintf("%s's daily records rose %d days running to %.0f, %.1fx its earlier median %.0f (Theil-Sen slope %.0f/day)",
			k.Actor, up, last, last/base, base, slope),
		Evidence: models.Evidence{Metric: "records per active day in ordinary windows (net of tenant-wide swings)", Observed: last, Baseline: base, Threshold: ratio * base,
			BaselineSource: "actor days", Notes: map[string]float64{"slope_per_day": slope, "mann_kendall_s": float64(s), "days_up": float64(up),
				"raw_records_last_day": float64(run[n-1].Records)},
			Query: fmt.Sprintf("SELECT toDate(minute) AS day, sumMerge(records_sum) AS records FROM actor_minute WHERE tenant = %s AND actor_id = %s AND minute >= %s AND minute < %s GROUP BY day ORDER BY day",
				lit(k.Tenant), lit(k.Actor), litTime(time.Unix(int64(before[0].Day)*86400, 0)), litTime(t))}}
	return f, true
}
