package detect

import (
	"math"
)

// peerKey is a peer group in one tenant (group as peerGroup names it).
type peerKey struct{ tenant, group string }

// peerGroup names an actor's peer group: a vendor's users are compared
// with their own vendor organisation (a contractor's learned scope is its
// company's, whatever role it is given), everyone else with its role; ""
// is no group.
func peerGroup(role, vendor string) string {
	switch {
	case vendor != "":
		return "vendor " + vendor
	case role != "":
		return "role " + role
	}
	return ""
}

// groupOf is peerGroup without building the name for every row: names
// are kept per (role, vendor), at most maxGroupNames of them.
func (e *Engine) groupOf(role, vendor string) string {
	k := [2]string{role, vendor}
	if g, ok := e.groups[k]; ok {
		return g
	}
	if e.groups == nil || len(e.groups) >= maxGroupNames {
		e.groups = map[[2]string]string{}
	}
	g := peerGroup(role, vendor)
	e.groups[k] = g
	return g
}

// maxGroupNames bounds groupOf's names.
const maxGroupNames = 10000

// peerStats summarizes a peer group's warm members, recomputed hourly.
type peerStats struct {
	members int
	// recMed/subjMed: median over members of their own median per active
	// window; recMAD/subjMAD: median of their MADs.
	recMed, recMAD, subjMed, subjMAD float64
	// recMax, spanMax: median of members' largest window and rolling
	// span (what the role does at most, which one member — an attacked
	// one, its bulk export not yet decayed — cannot set); daySubj,
	// hourSubj: median of members' busy (p90) day and hour of distinct
	// customers.
	recMax, spanMax, daySubj, hourSubj float64
	// spanMed is the median over members of their median rolling span,
	// spanN the median number of spans a member's largest rests on
	// (its active span-long blocks, actorState.spans).
	spanMed, spanN float64
	// dayN, hourN: members whose busy day / hour is known.
	dayN, hourN int
	// have counts the members that have used each store, resource type,
	// category and country.
	have map[string]int
	// how is the members' pooled share of activity per hour of the week.
	how [168]float64
	// heavyLogs are the log sizes of the members' heavy calls
	// (actorState.HeavyLog) that raised no volume finding, kept when at
	// least half the members have made one: the role's habit, which a
	// minority cannot set and an attack does not join; nil else.
	heavyLogs []float64
}

// share returns the fraction of members that have used item.
func (p *peerStats) share(item string) float64 {
	if p == nil || p.members == 0 {
		return 0
	}
	return float64(p.have[item]) / float64(p.members)
}

// hourShare is the pooled activity share of the peers at hour h (with
// neighbours, as actorState.share).
func (p *peerStats) hourShare(h int) float64 {
	if p == nil {
		return 0
	}
	return (p.how[h] + 0.5*p.how[(h+167)%168] + 0.5*p.how[(h+1)%168]) / 2
}

// hourGap is the number of hours from hour of the day h to the nearest
// hour of the day holding at least share of the peers' pooled activity
// (as actorState.hourGap); -1 when no hour does.
func (p *peerStats) hourGap(h int, share float64) int {
	return pooledHourGap(&p.how, h, share)
}

// pooledHourGap is the number of hours from hour of the day h to the
// nearest hour of the day holding at least share of a pooled hour-of-week
// profile (how, summed over the days of the week); -1 when no hour does.
func pooledHourGap(how *[168]float64, h int, share float64) int {
	return nearestUsualHour(h, share, func(u int) float64 {
		var c float64
		for d := 0; d < 7; d++ {
			c += how[d*24+u]
		}
		return c
	})
}

// itemPeers counts, in a peer group, the members with at least
// warmup_windows active windows (warm or not) and how many of them have
// used each store, resource type, category and country. A member that
// has worked a few hours has used its role's routine items; it is not
// yet warm for the volume baselines, which need days.
type itemPeers struct {
	members int
	have    map[string]int
	// how is the members' pooled share of activity per hour of the week
	// (as peerStats.how): a member that has worked a day has shown an
	// hour its role works in, though it is not warm.
	how [168]float64
}

// hourGap is peerStats.hourGap over the item peers' pooled profile.
func (p *itemPeers) hourGap(h int, share float64) int {
	return pooledHourGap(&p.how, h, share)
}

// share returns the fraction of members that have used item.
func (p *itemPeers) share(item string) float64 {
	if p == nil || p.members == 0 {
		return 0
	}
	return float64(p.have[item]) / float64(p.members)
}

// everyTenant is the tenant of the peer groups pooled over every tenant
// (not a tenant name: it starts with a NUL byte).
const everyTenant = "\x00every tenant"

// peerAcc gathers one peer group's warm members.
type peerAcc struct {
	rm, ra, sm, sa, mx, sx, ds, hs, spm, spn []float64
	p                                        *peerStats
	h                                        heavyAcc
}

// add counts the warm actor st (key k) in the group.
func (a *peerAcc) add(e *Engine, k actorKey, st *actorState) {
	a.rm = append(a.rm, st.recMed)
	a.ra = append(a.ra, st.recMAD)
	a.sm = append(a.sm, st.subjMed)
	a.sa = append(a.sa, st.subjMAD)
	a.mx = append(a.mx, float64(st.RecMax))
	a.sx = append(a.sx, float64(st.SpanMax))
	a.spm = append(a.spm, st.spanMed)
	a.spn = append(a.spn, st.spans(e.cfg.Detectors.VolumeSpan))
	if v, ok := st.busyDay(st.LastDay); ok {
		a.ds = append(a.ds, v)
	}
	if st.HourSubj.N >= 8 {
		a.hs = append(a.hs, st.busyHour())
	}
	a.p.members++
	a.h.add(st)
	fl := e.flagged[k]
	for _, set := range [][]string{st.Stores, st.ResourceTypes, st.Categories, st.Countries} {
		for _, x := range set {
			if !isFlagged(fl, x) {
				a.p.have[x]++
			}
		}
	}
	if exported(st) && !isFlagged(fl, itemExport) {
		a.p.have[itemExport]++
	}
	if st.HowTot > 0 {
		st.How.each(func(h int, n float64) { a.p.how[h] += n / float64(st.HowTot) })
	}
}

// recomputePeers rebuilds every peer group's summary from warm members,
// in each tenant and over every tenant (everyTenant), and the groups'
// item peers.
func (e *Engine) recomputePeers() {
	items := map[peerKey]*itemPeers{}
	for k, st := range e.actors {
		if int(st.ActiveWindows) < e.cfg.Detectors.WarmupWindows || int(st.ActiveDays) < 1 {
			continue
		}
		pk := peerKey{k.Tenant, peerGroup(st.Role, st.Vendor)}
		ip := items[pk]
		if ip == nil {
			ip = &itemPeers{have: map[string]int{}}
			items[pk] = ip
		}
		ip.members++
		fl := e.flagged[k]
		for _, set := range [][]string{st.Stores, st.ResourceTypes, st.Categories, st.Countries} {
			for _, x := range set {
				if !isFlagged(fl, x) {
					ip.have[x]++
				}
			}
		}
		if exported(st) && !isFlagged(fl, itemExport) {
			ip.have[itemExport]++
		}
		if st.HowTot > 0 {
			st.How.each(func(h int, n float64) { ip.how[h] += n / float64(st.HowTot) })
		}
	}
	for _, ip := range items {
		for h := range ip.how {
			ip.how[h] /= float64(ip.members)
		}
	}
	e.itemPeers = items
	accs := map[peerKey]*peerAcc{}
	for k, st := range e.actors {
		if !e.warm(st) {
			continue
		}
		e.scratch = st.stats(e.scratch)
		g := peerGroup(st.Role, st.Vendor)
		for _, pk := range [2]peerKey{{k.Tenant, g}, {everyTenant, g}} {
			a := accs[pk]
			if a == nil {
				a = &peerAcc{p: &peerStats{have: map[string]int{}}}
				accs[pk] = a
			}
			a.add(e, k, st)
		}
	}
	peers := make(map[peerKey]*peerStats, len(accs))
	for pk, a := range accs {
		p := a.p
		p.recMed, p.recMAD = median64(a.rm), median64(a.ra)
		p.subjMed, p.subjMAD = median64(a.sm), median64(a.sa)
		p.recMax, p.spanMax = median64(a.mx), median64(a.sx)
		p.daySubj, p.hourSubj = median64(a.ds), median64(a.hs)
		p.spanMed, p.spanN = median64(a.spm), median64(a.spn)
		p.dayN, p.hourN = len(a.ds), len(a.hs)
		for h := range p.how {
			p.how[h] /= float64(p.members)
		}
		p.heavyLogs = a.h.habit()
		peers[pk] = p
	}
	e.peers = peers
	e.heavyHabits, e.habitsOK = nil, false
}

// habits returns heavyHabits, gathering them from the peer groups over
// every tenant on the first call after recomputePeers.
func (e *Engine) habits() []float64 {
	if !e.habitsOK {
		for pk, p := range e.peers {
			if pk.tenant == everyTenant {
				e.heavyHabits = append(e.heavyHabits, p.heavyLogs...)
			}
		}
		e.habitsOK = true
	}
	return e.heavyHabits
}

// heavyAcc gathers the heavy calls of a peer group's warm members.
type heavyAcc struct {
	members, heavy int
	logs           []float64
}

// add counts a member and its heavy calls that raised no volume finding
// (an attacked member's bulk export is not the role's habit).
func (h *heavyAcc) add(st *actorState) {
	h.members++
	n := len(h.logs)
	for i := 0; i < st.HeavyLog.count(); i++ {
		if st.HeavyFound&(1<<i) == 0 {
			h.logs = append(h.logs, f16Decode(st.HeavyLog.V[i]))
		}
	}
	if len(h.logs) > n {
		h.heavy++
	}
}

// habit returns the log sizes of the members' heavy calls when at least
// half the members have made one, else nil.
func (h *heavyAcc) habit() []float64 {
	if h.heavy == 0 || 2*h.heavy < h.members {
		return nil
	}
	return h.logs
}

// peerHeavy returns the heavy calls (log sizes) an actor with none of
// its own is judged by: its peer group's in its tenant, or, when the
// tenant has fewer than peer_min_peers warm members in the group (one
// analyst per brand), the group's across every tenant; nil when heavy
// calls are not the role's habit. When the group has fewer than
// peer_min_peers warm members even over every tenant and none of them
// has made a heavy call (the deployment's only analyst, or its analysts
// not warm yet), the role is too small to say whether heavy calls are
// its habit: the actor is judged by the heavy calls of the groups whose
// habit they are (heavyHabits: the marketers' segment pulls), nil when
// no group has one.
func (e *Engine) peerHeavy(x *rowCtx) []float64 {
	minPeers := e.cfg.Detectors.PeerMinPeers
	if x.peer != nil && (x.peer.heavyLogs != nil || x.peer.members >= minPeers) {
		return x.peer.heavyLogs
	}
	all := e.peers[peerKey{everyTenant, e.groupOf(x.r.ActorRole, x.r.ActorVendor)}]
	if all != nil && (all.heavyLogs != nil || all.members >= minPeers) {
		return all.heavyLogs
	}
	if h := e.habits(); len(h) > 0 {
		return h
	}
	return nil
}

// peerBaseline returns the expected value and scale of records (or
// subjects) per active window for an actor without history: its peers'.
func (p *peerStats) baseline(subjects bool) (med, scale float64) {
	if subjects {
		return p.subjMed, math.Max(madScale*p.subjMAD, math.Sqrt(math.Max(p.subjMed, 1)))
	}
	return p.recMed, math.Max(madScale*p.recMAD, math.Sqrt(math.Max(p.recMed, 1)))
}
