package detect

import (
	"math"
	"slices"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// rowCtx is what the detectors of one actor in one window share.
type rowCtx struct {
	c    *cycle
	r    *windowRow
	st   *actorState
	warm bool
	how  int // hour of week in the actor's time zone
	peer *peerStats
	// vpeer is the peer group a warming-up actor's volume is judged by
	// (volumePeers): peer, or the group over every tenant when its own
	// tenant has too few warm members.
	vpeer  *peerStats
	idle   time.Duration // since the actor's previous active window
	newIts []string      // items new to the actor this window
	// expRec is the expected records (seasonal, times the tenant
	// multiplier) used by volume and learning.
	expRec float64
	// ser is the actor's count series prepared for this window (nil
	// when the actor is not a continuous series).
	ser *seriesState
	// feat is the row's multivariate deviation vector (features) and
	// featOK its ok, once featSet: mahalanobis judges it and learnRow
	// learns it, and nothing it reads changes in between (rowFeatures).
	feat            [mahalanobisDims]float64
	featOK, featSet bool
}

// rowFeatures returns e.features of x's row, computed once per row: the
// detectors and learnRow (right after them) both use it, and the vector
// was a tenth of a replay's window detection, computed twice.
func (e *Engine) rowFeatures(x *rowCtx) ([mahalanobisDims]float64, bool) {
	if !x.featSet {
		x.feat, x.featOK = e.features(x.c, x.r, x.st)
		x.featSet = true
	}
	return x.feat, x.featOK
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
	// one rowCtx per engine, reused row after row (no allocation per row)
	x := &e.row
	*x = rowCtx{c: c, r: r, st: st, warm: e.warm(st), how: hourOfWeek(c.start.In(e.locOf(st))),
		peer: e.peers[peerKey{r.Tenant, e.groupOf(r.ActorRole, r.ActorVendor)}], newIts: x.newIts[:0]}
	x.vpeer = e.volumePeers(x)
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
	if len(e.flagged) > 0 {
		// An item the actor first used in a finding is the finding's, not
		// its routine (as for its peers' shares): until it has used it on
		// flagDays later days, its first use on a later day is new again.
		if fl := e.flagged[actorKey{r.Tenant, r.ActorID}]; len(fl) > 0 {
			d := int32(c.start.Unix() / 86400)
			for _, set := range [][]string{r.Stores, r.ResourceTypes, r.Categories} {
				for _, it := range set {
					if flaggedBefore(fl, it, d) && !slices.Contains(x.newIts, it) {
						x.newIts = append(x.newIts, it)
					}
				}
			}
			if r.ExportOnly > 0 && flaggedBefore(fl, itemExport, d) && !slices.Contains(x.newIts, itemExport) {
				x.newIts = append(x.newIts, itemExport)
			}
		}
	}
	if firstExport(st, r) {
		x.newIts = append(x.newIts, itemExport)
	}
	e.scratch = st.stats(e.scratch)
	x.ser = e.seriesPrepare(st, c.start.Unix()/int64(e.cfg.Window/time.Second))
	if x.ser != nil && !e.reopening {
		e.series[actorKey{r.Tenant, r.ActorID}] = st
	}
	e.session(x)
	var out []models.Finding
	for _, d := range windowDetectors {
		if !e.cfg.enabled(d.name) || (d.alone && len(out) > 0) {
			continue
		}
		if fd, ok := d.check(e, x); ok {
			out = append(out, fd)
		}
	}
	return out
}

// learnRow folds the window into the actor's baselines. After a volume or
// enumeration finding the learned values are clipped, and the windows of
// a session off_hours reported are left out of the hour-of-week profile,
// unless a false-positive mark re-baselines exactly that pattern.
func (e *Engine) learnRow(c *cycle, r *windowRow, st *actorState, fs []models.Finding) {
	rec, subj := float64(r.Records), float64(r.Subjects)
	warm := e.warm(st)
	if warm && st.Incident && !volumeFinding(e, fs, r, c.end) {
		// the episode ends at the first ordinary span
		wn := c.start.Unix() / int64(e.cfg.Window/time.Second)
		sp := st.rolling(wn-1, e.cfg.Detectors.VolumeSpan-1) + rec
		st.Incident = sp > math.Max(float64(st.SpanMax), 3*st.spanMed+1)
	}
	if warm && !st.Incident && volumeFinding(e, fs, r, c.end) {
		// the ramp that led to the first finding is the episode's too:
		// the day keeps at most the largest span seen before it
		st.Incident = true
		st.SpanMaxDay = min(st.SpanMaxDay, st.SpanMax)
	}
	if warm && st.Incident {
		// a window of an episode a volume finding opened: not the
		// actor's habit, like the finding's own window
		rec = clip(rec, math.Max(st.recMed, 1))
		subj = clip(subj, math.Max(st.subjMed, 1))
	}
	for _, f := range fs {
		// Items first used in a finding are the finding's, not the
		// role's: flagged, so they do not count in the peers' shares
		// (warm or not: a new account's finding is judged by its peers).
		if (f.Detector == DetFirstSeen || f.Detector == DetNewCountry) && !e.falsePositive(f.Detector, r.Tenant, r.ActorID, c.end) {
			k := actorKey{r.Tenant, r.ActorID}
			e.flagged[k] = flagItems(e.flagged[k], int32(c.start.Unix()/86400), newItems(st, r))
		}
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
		// the vector the detectors judged, when they did (detectRow ran
		// on this row just before: it reset e.row), else computed here;
		// learnRow has changed nothing features reads yet
		x := &e.row
		if x.c != c || x.r != r || x.st != st {
			*x = rowCtx{c: c, r: r, st: st, newIts: x.newIts[:0]}
		}
		if v, ok := e.rowFeatures(x); ok {
			e.mahal.add(v)
		}
		x.featSet = false
	}
	if st.Series != nil {
		st.Series.learn(c.start.Unix()/int64(e.cfg.Window/time.Second), float64(r.Records))
	}
	if len(e.flagged) > 0 {
		k := actorKey{r.Tenant, r.ActorID}
		if fl, ok := e.flagged[k]; ok {
			if fl = useFlagged(fl, int32(c.start.Unix()/86400), r); len(fl) == 0 {
				delete(e.flagged, k)
			} else {
				e.flagged[k] = fl
			}
		}
	}
	n := len(st.Stores) + len(st.ResourceTypes) + len(st.Categories) + len(st.Countries)
	heavy := st.heavyThreshold(e.cfg.Detectors.VolumeMin)
	how := hourOfWeek(c.start.In(e.locOf(st)))
	if offHoursSession(st) && !e.falsePositive(DetOffHours, r.Tenant, r.ActorID, c.end) {
		// The windows of a session off_hours reported are the finding's,
		// not the actor's habit: its hours stay unusual, so a repeat at
		// the same hour is judged like the first (a false-positive mark
		// learns them).
		how = -1
	}
	st.learn(c.start, how, int64(e.cfg.Window/time.Second), e.cfg.Detectors.VolumeSpan,
		rec, subj, float64(r.Denied), c.multiplier(r.Tenant), heavy, r)
	if float64(r.Records) >= heavy { // learn put it in HeavyLog's latest slot
		bit := uint64(1) << ((int(st.HeavyLog.I) + ringLen - 1) % ringLen)
		if volumeFinding(e, fs, r, c.end) {
			st.HeavyFound |= bit
		} else {
			st.HeavyFound &^= bit
		}
	}
	if n != len(st.Stores)+len(st.ResourceTypes)+len(st.Categories)+len(st.Countries) {
		e.sets.internAll(st)
	}
}

// offHoursSession reports whether the actor's current session is one
// off_hours reported.
func offHoursSession(st *actorState) bool {
	return st.lastOffHours != 0 && st.lastOffHours == st.SessStart
}

// volumeFinding reports whether fs holds a volume finding (volume_spike,
// peer_deviation) that no false-positive mark re-baselines.
func volumeFinding(e *Engine, fs []models.Finding, r *windowRow, at time.Time) bool {
	for _, f := range fs {
		if (f.Detector == DetVolumeSpike || f.Detector == DetPeerDeviation) && !e.falsePositive(f.Detector, r.Tenant, r.ActorID, at) {
			return true
		}
	}
	return false
}

// newItems returns the stores, resource types, categories and countries
// of the window the actor has not used before, and itemExport for its
// first export.
func newItems(st *actorState, r *windowRow) []string {
	var out []string
	for _, set := range []struct{ have, now []string }{{st.Stores, r.Stores}, {st.ResourceTypes, r.ResourceTypes},
		{st.Categories, r.Categories}, {st.Countries, r.Countries}} {
		for _, it := range set.now {
			if !slices.Contains(set.have, it) {
				out = append(out, it)
			}
		}
	}
	if firstExport(st, r) {
		out = append(out, itemExport)
	}
	return out
}

// itemExport is the item first_seen and the peers' shares give the export
// action: an actor that has exported has "used" it (ExportMax > 0). It
// cannot collide with a store, resource type, category or country name:
// those are lower-case identifiers without a colon.
const itemExport = "action:export"

// firstExport reports whether the window holds the actor's first export
// (ExportMax, its decaying most exports in a window, is still 0). Export
// actions only (WindowActivity.ExportOnly): a share to a destination is
// not one.
func firstExport(st *actorState, r *windowRow) bool {
	return r.ExportOnly > 0 && st.ExportMax == 0
}

// exported reports whether the actor has used itemExport.
func exported(st *actorState) bool { return st.ExportMax > 0 }

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
	p := x.peer
	if !subjects {
		p = x.vpeer
	}
	if p != nil && p.members >= e.cfg.Detectors.PeerMinPeers {
		mu, scale = p.baseline(subjects)
		src = "peers"
		if p != x.peer {
			src = "peers, every tenant"
		}
		return math.Max(mu, 0.5), math.Max(scale, 1), src, true
	}
	return 0, 0, "warming-up", false
}

// volumePeers returns the peer group a warming-up actor's records are
// judged by: its group in its tenant, or, when the tenant has fewer than
// peer_min_peers warm members in it (a weekly worker's brand, a small
// tenant), the group over every tenant if that has enough. A warm actor
// keeps its tenant's group.
func (e *Engine) volumePeers(x *rowCtx) *peerStats {
	if x.warm || (x.peer != nil && x.peer.members >= e.cfg.Detectors.PeerMinPeers) {
		return x.peer
	}
	if all := e.peers[peerKey{everyTenant, e.groupOf(x.r.ActorRole, x.r.ActorVendor)}]; all != nil && all.members >= e.cfg.Detectors.PeerMinPeers {
		return all
	}
	return x.peer
}

// maxFactor is how far above the largest value seen a volume must be.
func (e *Engine) maxFactor(x *rowCtx) float64 {
	if f, ok := e.cfg.Detectors.VolumeMaxFactorByType[x.r.ActorType]; ok {
		return f
	}
	return e.cfg.Detectors.VolumeMaxFactor
}

// peerMax is the peers' median largest window (or rolling span): the
// volume peers' (vpeer) while the actor warms up.
func (x *rowCtx) peerMax(span bool) float64 {
	p := x.peer
	if !x.warm && x.vpeer != nil {
		p = x.vpeer
	}
	if p == nil {
		return 0
	}
	if span {
		return p.spanMax
	}
	return p.recMax
}

// session tracks the actor's current run of activity and dormancy.
func (e *Engine) session(x *rowCtx) {
	st := x.st
	ts := x.c.start.Unix()
	if st.LastSeen == 0 || x.idle > 30*time.Minute {
		st.SessStart, st.SessWins, st.SessDays = ts, 0, st.ActiveDays
		h := x.c.start.In(e.locOf(st)).Hour()
		st.SessGap = int8(st.hourGap(h, e.cfg.Detectors.OffHoursShare))
		st.SessHourN = uint16(min(st.hourCount(h), math.MaxUint16))
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
	switch {
	case f.Evidence.BaselineSource == "peers" && x.peer != nil:
		f.Evidence.Peers = peerGroup(x.r.ActorRole, x.r.ActorVendor)
		f.Evidence.PeerCount = x.peer.members
	case f.Evidence.BaselineSource == "peers, every tenant" && x.vpeer != nil:
		f.Evidence.Peers = peerGroup(x.r.ActorRole, x.r.ActorVendor) + " (every tenant)"
		f.Evidence.PeerCount = x.vpeer.members
	}
}
