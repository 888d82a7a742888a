package sim

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// Label marks one injected scenario: an attack, or a hard negative (kind
// "negative:<name>"). Actor "*" means every actor of the tenant.
type Label struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Tenant  string    `json:"tenant"`
	ActorID string    `json:"actor_id"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
}

// scenario is an attack or negative in progress: effects on an actor's
// normal traffic and/or injected events in [from, to) (unix minutes).
type scenario struct {
	kind     string
	tenant   int
	a        *actor
	from, to int64

	rateMul func(m int64) float64
	recMul  float64
	client  *clientInfo
	// label is 1 + the index of the scenario's attack label (0: none);
	// shown turns true at its first injected event.
	label        int
	shown        bool
	clientFrom   int64
	shortTickets bool
	inject       func(g *Generator, sc *scenario, m int64)

	// state for inject
	variant  int
	subjects []int32
	n        int
	c        conv
}

const day = 1440 // minutes

// planner plans one attack in tenant t starting within [lo, hi) unix minutes.
type planner func(g *Generator, t int, lo, hi int64) (*scenario, bool)

var planners = map[string]planner{
	KindBulkExport:                planBulkExport,
	KindSlowEnumeration:           planSlowEnumeration,
	KindBotCrossCustomer:          planBotCrossCustomer,
	KindConversationManyCustomers: planConversationMany,
	KindDeniedBurst:               planDeniedBurst,
	KindConsentViolation:          planConsentViolation,
	KindPurposeViolation:          planPurposeViolation,
	KindVendorOutOfScope:          planVendorOutOfScope,
	KindVolumeSpike:               planVolumeSpike,
	KindOffHours:                  planOffHours,
	KindRareSensitiveCategory:     planRareSensitive,
	KindNewCountry:                planNewCountry,
	KindImpossibleTravel:          planImpossibleTravel,
	KindDormantWakeup:             planDormant,
	KindPeerDeviation:             planPeerDeviation,
	KindSlowDrift:                 planSlowDrift,
	KindMultivariate:              planMultivariate,
	KindShareNewDestination:       ownRandPlanner(planShareNewDestination),
	KindShareVolume:               ownRandPlanner(planShareVolume),
	KindShareOutsideAllowlist:     planShareOutsideAllowlist, // its own stream (shares.go)
	KindInjectionOneShot:          convRandPlanner(planInjectionOneShot),
	KindInjectionSlow:             convRandPlanner(planInjectionSlow),
	KindInjectionDisguised:        convRandPlanner(planInjectionDisguised),
}

// ownRandPlanner runs p on the sharing scenarios' own random stream
// (shares.go).
func ownRandPlanner(p planner) planner {
	return func(g *Generator, t int, lo, hi int64) (sc *scenario, ok bool) {
		g.ownRand(func() { sc, ok = p(g, t, lo, hi) })
		return sc, ok
	}
}

// plan schedules the hard negatives and attacks of g.cfg.
func plan(g *Generator) {
	w := g.w
	if g.cfg.HardNegatives {
		planNegatives(g)
	}
	span := w.end - w.start
	warm := min(3*day, span/4)
	lo, hi := w.start+warm, w.end-4*60
	for ki, kind := range g.cfg.Attacks {
		n := g.cfg.AttacksPerKind
		if kind == KindDormantWakeup || kind == KindSlowDrift {
			n = min(n, 3)
		}
		if g.cfg.Compact {
			if kind == KindDormantWakeup || kind == KindSlowDrift {
				g.skipped = append(g.skipped, kind+": needs days of history, not planned in compact (realtime) mode")
				continue
			}
			n = 1
		}
		planned := 0
		for i := range n {
			t := (i + ki) % len(w.tenants)
			var sLo, sHi int64
			if g.cfg.Compact {
				sLo = w.start + int64(g.cfg.Warmup/time.Minute) + int64(len(g.scenarios))*max(1, int64(g.cfg.AttackEvery/time.Minute))
				sHi = sLo + 1
			} else {
				seg := (hi - lo) / int64(n)
				sLo, sHi = lo+int64(i)*seg, lo+int64(i+1)*seg
			}
			if sHi <= sLo || sLo >= w.end {
				continue
			}
			var sc *scenario
			ok := false
			for try := 0; try < 4 && !ok; try++ { // another actor may fit where this one did not
				sc, ok = planners[kind](g, t, sLo, sHi)
				if ok && firstTimeKinds[kind] && g.attacked(kind, sc.a) {
					// its premise (a category or country new to the
					// actor) no longer holds for an actor it already hit
					ok = false
				}
			}
			if !ok {
				continue
			}
			sc.kind, sc.tenant = kind, sc.a.tenant
			sc.a.used = true
			g.scenarios = append(g.scenarios, sc)
			g.labels = append(g.labels, label(g, kind, sc.a.tenant, sc.a.id, sc.from, sc.to))
			planned++
		}
		if planned == 0 {
			g.skipped = append(g.skipped, kind+": no actor and time fit in the range")
		}
	}
	if g.cfg.HardNegatives {
		planShareNegatives(g) // after the attacks: its own random stream (shares.go)
		planConvNegatives(g)  // and its own (conversations.go)
	}
	slices.SortStableFunc(g.scenarios, func(x, y *scenario) int { return cmp.Compare(x.from, y.from) })
	slices.SortStableFunc(g.pending, func(x, y pendingConsent) int { return cmp.Compare(x.m, y.m) })
	sortLabels(g.labels, "atk")
	sortLabels(g.negatives, "neg")
	for _, sc := range g.scenarios {
		for i, l := range g.labels {
			if sc.a != nil && l.Kind == sc.kind && l.ActorID == sc.a.id && l.Start.Unix() == sc.from*60 {
				sc.label = i + 1
				break
			}
		}
	}
}

// injected moves the start of sc's label to its first injected event
// (evs were added by sc.inject): time to detect is measured from where
// an attack first shows in the data, not from a quiet lead-in. Scenarios
// that change the actor's own traffic from their start (a rate, a client)
// keep their start.
func (g *Generator) injected(sc *scenario, evs []event) {
	if sc.shown || sc.label == 0 || sc.rateMul != nil || sc.client != nil {
		return
	}
	first := int64(-1)
	for i := range evs {
		if !evs[i].consent && evs[i].a == sc.a && (first < 0 || evs[i].ms < first) {
			first = evs[i].ms
		}
	}
	if first < 0 {
		return
	}
	sc.shown = true
	if t := time.UnixMilli(first).UTC().Truncate(time.Second); t.After(g.labels[sc.label-1].Start) {
		g.labels[sc.label-1].Start = t
	}
}

func label(g *Generator, kind string, t int, actorID string, from, to int64) Label {
	return Label{Kind: kind, Tenant: g.w.tenants[t], ActorID: actorID,
		Start: time.Unix(from*60, 0).UTC(), End: time.Unix(to*60, 0).UTC()}
}

func sortLabels(ls []Label, prefix string) {
	slices.SortStableFunc(ls, func(x, y Label) int { return x.Start.Compare(y.Start) })
	for i := range ls {
		ls[i].ID = fmt.Sprintf("%s-%04d", prefix, i+1)
	}
}

// pickActor picks an actor of tenant t with one of the roles, preferring
// one not yet used by another attack; it never picks special actors.
// firstTimeKinds are the attacks whose premise is something new to the
// actor (a sensitive category, a client country): a second one on the
// same actor is not new any more (its first taught the actor), so its
// label would claim an anomaly that is not in the data.
var firstTimeKinds = map[string]bool{KindRareSensitiveCategory: true, KindNewCountry: true}

// attacked reports whether an attack of kind is already planned on a.
func (g *Generator) attacked(kind string, a *actor) bool {
	for _, sc := range g.scenarios {
		if sc.kind == kind && sc.a == a {
			return true
		}
	}
	return false
}

func (g *Generator) pickActor(t int, rs ...role) *actor {
	var fresh, any []*actor
	for _, r := range rs {
		for _, a := range g.w.byRole[r] {
			if a.special || a.tenant != t {
				continue
			}
			any = append(any, a)
			if !a.used {
				fresh = append(fresh, a)
			}
		}
	}
	if len(fresh) > 0 {
		return fresh[g.rng.IntN(len(fresh))]
	}
	if len(any) > 0 {
		return any[g.rng.IntN(len(any))]
	}
	if t != 0 {
		return g.pickActor(0, rs...)
	}
	return nil
}

// dur shortens a duration (minutes) in compact mode.
func (g *Generator) dur(d int64) int64 {
	if g.cfg.Compact {
		return min(d, 8)
	}
	return d
}

// when picks a start in [lo, hi) inside the actor's shift with room for
// dur minutes; in compact mode it is lo.
func (g *Generator) when(a *actor, lo, hi, dur int64) (int64, bool) {
	if g.cfg.Compact {
		return lo, true
	}
	if !roles[a.role].human {
		return lo + g.rng.Int64N(max(1, hi-lo-dur)), true
	}
	for range 40 {
		d := a.localDayOf(lo + g.rng.Int64N(hi-lo))
		from, to, ok := g.w.shiftWindow(a, d)
		if !ok || !a.present(from) {
			continue
		}
		room := to - from - dur - 40
		if room <= 0 {
			continue
		}
		s := from + 20 + g.rng.Int64N(room)
		if s >= lo && s+dur <= g.w.end {
			return s, true
		}
	}
	return 0, false
}

func (g *Generator) newScenario(a *actor, from, dur int64) *scenario {
	return &scenario{a: a, from: from, to: from + dur}
}

// perMinute reports, at random, whether to inject in this minute so that
// about n events fall in the scenario's window.
func (g *Generator) perMinute(sc *scenario, n float64) int {
	return g.poisson(n / float64(sc.to-sc.from))
}

func (g *Generator) subjectEvent(sc *scenario, m int64, st *storeDef, act models.Action, f *fieldSet, recs uint64, subject int32) *event {
	e := g.add(sc.a, m)
	g.set(e, st, act, f, recs)
	e.subject = subject
	if subject >= 0 && st == stCRM {
		e.resID = profileID(subject)
	} else {
		e.resID = 1 + g.rng.Uint64N(1e8)
	}
	if sc.client != nil && m >= sc.clientFrom {
		e.client = sc.client
	}
	return e
}

// place picks an actor of one of roles for tenant t, a duration of about
// minutes, and a start between lo and hi when the actor is normally active,
// and opens the scenario; ok is false when no actor or no start fits.
func (g *Generator) place(t int, lo, hi, minutes int64, roles ...role) (*scenario, bool) {
	a := g.pickActor(t, roles...)
	if a == nil {
		return nil, false
	}
	d := g.dur(minutes)
	from, ok := g.when(a, lo, hi, d)
	if !ok {
		return nil, false
	}
	return g.newScenario(a, from, d), true
}

func planBulkExport(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	sc, ok := g.place(t, lo, hi, 15, roleSupportEU, roleSupportUS, roleBilling)
	if !ok {
		return nil, false
	}
	sc.n = 1 + g.rng.IntN(2)
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		k := m - sc.from
		if k%4 != 1 || int(k/4) >= sc.n {
			return
		}
		f := fContact
		if sc.a.role == roleBilling {
			f = fNameEmailAddr
		}
		recs := uint64(min(12000, max(1500, float64(g.lognorm(4000, 0.5)))))
		g.subjectEvent(sc, m, stCRM, models.ActionExport, f, recs, -1)
	}
	return sc, true
}

func planSlowEnumeration(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	sc, ok := g.place(t, lo, hi, 360, roleSupportEU, roleSupportUS)
	if !ok {
		return nil, false
	}
	rate := 0.6
	if g.cfg.Compact {
		rate = 5
	}
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		for range g.poisson(rate) {
			if g.rng.Float64() < 0.7 {
				g.subjectEvent(sc, m, stCRM, models.ActionRead, fNameEmailPh, 1, g.anyCustomer())
			} else {
				g.subjectEvent(sc, m, stOrders, models.ActionRead, fOrders, 1, g.anyCustomer())
			}
		}
	}
	return sc, true
}

// otherCustomer draws a customer different from s.
func (g *Generator) otherCustomer(s int32) int32 {
	for {
		if o := g.anyCustomer(); o != s {
			return o
		}
	}
}

func planBotCrossCustomer(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	a := g.pickActor(t, roleBot)
	if a == nil {
		return nil, false
	}
	d := g.dur(30)
	from, _ := g.when(a, lo, hi, d)
	sc := g.newScenario(a, from, d)
	want := float64(4 + g.rng.IntN(5))
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		for range g.perMinute(sc, want) {
			e := g.add(sc.a, m)
			c := g.botConv(sc.a)
			g.botCall(sc.a, e, c, 0.3+0.5*g.rng.Float64(), mods{rate: 1, recs: 1}) // lookup_order or get_profile
			e.subject = g.otherCustomer(c.subject)
			if e.st == stCRM {
				e.resID = profileID(e.subject)
			}
		}
	}
	return sc, true
}

func planConversationMany(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	a := g.pickActor(t, roleBot)
	if a == nil {
		return nil, false
	}
	d := g.dur(12)
	from, _ := g.when(a, lo, hi, d)
	sc := g.newScenario(a, from, d)
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		if sc.c.id == 0 {
			sc.c = g.newConv(sc.a)
		}
		for range 1 + g.rng.IntN(3) {
			e := g.add(sc.a, m)
			g.botCall(sc.a, e, &sc.c, 0.3+0.5*g.rng.Float64(), mods{rate: 1, recs: 1})
			if sc.n > 0 {
				e.subject = g.otherCustomer(sc.c.subject)
				if e.st == stCRM {
					e.resID = profileID(e.subject)
				}
			}
			sc.n++
		}
	}
	return sc, true
}

func planDeniedBurst(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	sc, ok := g.place(t, lo, hi, 12, roleSupportEU, roleSupportUS, roleVendor)
	if !ok {
		return nil, false
	}
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		for range g.poisson(3.2) {
			var e *event
			if g.rng.Float64() < 0.6 {
				e = g.subjectEvent(sc, m, stCRM, models.ActionRead, fNameEmailPh, 1, g.anyCustomer())
			} else {
				e = g.subjectEvent(sc, m, stOrders, models.ActionRead, fOrders, 1, g.anyCustomer())
			}
			e.result, e.bytes = models.ResultDenied, 0
		}
	}
	return sc, true
}

func planConsentViolation(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	sc, ok := g.place(t, lo, hi, 90, roleMarketing, roleAnalytics)
	if !ok {
		return nil, false
	}
	a, from := sc.a, sc.from
	pi := 0
	if a.role == roleAnalytics {
		pi = 1
	}
	k := 6 + g.rng.IntN(8)
	for range k {
		s := g.anyCustomer()
		key := consentKey(a.tenant, pi, s)
		if g.reserved[key] {
			continue
		}
		g.reserved[key] = true
		sc.subjects = append(sc.subjects, s)
		at := from - 120 - g.rng.Int64N(28*60)
		if g.cfg.Compact {
			at = from - 1
		}
		g.pending = append(g.pending, pendingConsent{m: max(g.w.start, at), tenant: a.tenant, subject: s, purpose: consentPurposes[pi], granted: false})
	}
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		// spread the reads evenly over the window
		due := int((m - sc.from + 1) * int64(len(sc.subjects)) / (sc.to - sc.from))
		for ; sc.n < due && sc.n < len(sc.subjects); sc.n++ {
			s := sc.subjects[sc.n]
			if pi == 0 {
				g.subjectEvent(sc, m, stCRM, models.ActionRead, fNameEmail, 1, s)
			} else {
				g.subjectEvent(sc, m, stOrders, models.ActionRead, fOrders, 1, s)
			}
		}
	}
	return sc, true
}

func planPurposeViolation(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	sc, ok := g.place(t, lo, hi, 30, roleSupportEU, roleSupportUS, roleBilling)
	if !ok {
		return nil, false
	}
	want := float64(3 + g.rng.IntN(6))
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		for range g.perMinute(sc, want) {
			s := g.ticket(sc.a, false)
			switch {
			case sc.a.role == roleBilling && g.rng.IntN(2) == 0:
				g.subjectEvent(sc, m, stCRM, models.ActionRead, fKYC, 1, s)
			case sc.a.role == roleBilling:
				g.subjectEvent(sc, m, stCRM, models.ActionRead, fHealthName, 1, s)
			case g.rng.IntN(2) == 0:
				g.subjectEvent(sc, m, stPayments, models.ActionRead, fPayName, 1, s)
			default:
				g.subjectEvent(sc, m, stCRM, models.ActionRead, fGovName, 1, s)
			}
		}
	}
	return sc, true
}

func planVendorOutOfScope(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	a := g.pickActor(t, roleVendor)
	if a == nil {
		return nil, false
	}
	variant := g.rng.IntN(3)
	if g.cfg.Compact {
		variant = g.rng.IntN(2)
	}
	var from, d int64
	if variant == 2 { // outside contracted hours: afternoon UTC, or a Sunday
		d = 40
		for range 40 {
			dayStart := (lo + g.rng.Int64N(hi-lo)) / day * day
			wd := time.Weekday((dayStart/day + 4) % 7)
			if wd == time.Sunday {
				from = dayStart + 4*60 + g.rng.Int64N(180)
			} else {
				from = dayStart + 13*60 + g.rng.Int64N(240)
			}
			if from >= lo && from+d < g.w.end {
				break
			}
			from = 0
		}
		if from == 0 {
			return nil, false
		}
	} else {
		d = g.dur(30)
		var ok bool
		if from, ok = g.when(a, lo, hi, d); !ok {
			return nil, false
		}
	}
	sc := g.newScenario(a, from, d)
	sc.variant = variant
	want := float64(5 + g.rng.IntN(8))
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		switch sc.variant {
		case 2:
			for range g.poisson(0.9) {
				g.normal(sc.a, m, mods{rate: 1, recs: 1})
			}
		default:
			for range g.perMinute(sc, want) {
				s := g.ticket(sc.a, false)
				if sc.variant == 0 {
					g.subjectEvent(sc, m, stPayments, models.ActionRead, fPayName, 1, s)
				} else if g.rng.IntN(2) == 0 {
					g.subjectEvent(sc, m, stCRM, models.ActionRead, fDOBName, 1, s)
				} else {
					g.subjectEvent(sc, m, stCRM, models.ActionRead, fGovName, 1, s)
				}
			}
		}
	}
	return sc, true
}

func planVolumeSpike(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	sc, ok := g.place(t, lo, hi, 60, roleSupportEU, roleSupportUS, roleFraud)
	if !ok {
		return nil, false
	}
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		for range g.poisson(0.5) {
			g.subjectEvent(sc, m, stOrders, models.ActionList, fOrders, uint64(15+g.rng.IntN(45)), -1)
		}
	}
	return sc, true
}

func planOffHours(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	a := g.pickActor(t, roleSupportEU, roleSupportUS, roleBilling)
	if a == nil {
		return nil, false
	}
	d := g.dur(45 + g.rng.Int64N(30))
	from := lo
	if !g.cfg.Compact {
		from = 0
		for range 60 {
			ld := a.localDayOf(lo + g.rng.Int64N(hi-lo))
			if _, _, works := g.w.shiftWindow(a, ld); works {
				continue
			}
			mid := time.Unix(ld*86400, 0).UTC()
			at := time.Date(mid.Year(), mid.Month(), mid.Day(), 3, 0, 0, 0, a.loc).Unix()/60 + g.rng.Int64N(30)
			if at >= lo && at+d < g.w.end {
				from = at
				break
			}
		}
		if from == 0 {
			return nil, false
		}
	}
	sc := g.newScenario(a, from, d)
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		for range g.poisson(0.9 * sc.a.base) {
			g.normal(sc.a, m, mods{rate: 1, recs: 1})
		}
	}
	return sc, true
}

func planRareSensitive(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	sc, ok := g.place(t, lo, hi, 30, roleFraud, roleSupportEU, roleSupportUS)
	if !ok {
		return nil, false
	}
	want := float64(3 + g.rng.IntN(4))
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		for range g.perMinute(sc, want) {
			s := g.ticket(sc.a, false)
			if sc.a.role == roleFraud { // allowed by purpose fraud, never seen for this actor
				g.subjectEvent(sc, m, stCRM, models.ActionRead, fHealthName, 1, s)
			} else { // a store support agents never use, within the support purpose
				g.subjectEvent(sc, m, stVector, models.ActionSearch, fText, uint64(5+g.rng.IntN(10)), s)
			}
		}
	}
	return sc, true
}

var foreign = []string{"RU", "NG", "BR", "VN", "RO"}

func (g *Generator) foreignClient(a *actor) *clientInfo {
	cc := foreign[g.rng.IntN(len(foreign))]
	return newClient(ipIn(cc, g.rng.Uint64()), cc, []string{uaFirefox, uaChrome}[g.rng.IntN(2)])
}

func planNewCountry(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	a := g.pickActor(t, roleSupportEU, roleSupportUS, roleBilling, roleFraud)
	if a == nil {
		return nil, false
	}
	d := g.dur(90 + g.rng.Int64N(90))
	from, ok := g.when(a, lo, hi, d)
	if !ok {
		return nil, false
	}
	sc := g.newScenario(a, from, d)
	sc.client, sc.clientFrom = g.foreignClient(a), from
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		for range g.poisson(0.3) {
			g.normal(sc.a, m, mods{rate: 1, recs: 1, client: sc.client})
		}
	}
	return sc, true
}

func planImpossibleTravel(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	sc, ok := g.place(t, lo, hi, 60, roleSupportEU, roleSupportUS, roleBilling, roleFraud, roleVendor)
	if !ok {
		return nil, false
	}
	sc.client, sc.clientFrom = g.foreignClient(sc.a), sc.from+(sc.to-sc.from)/2
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		md := mods{rate: 1, recs: 1}
		if m >= sc.clientFrom {
			md.client = sc.client
		}
		for range g.poisson(0.4) {
			g.normal(sc.a, m, md)
		}
	}
	return sc, true
}

// planDormant adds an account that works the first two days and then falls
// silent; it wakes up as late as the range allows (silence up to 14 days).
func planDormant(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	w := g.w
	lastActive := w.start + 2*day
	earliest := lastActive + min(14*day, w.end-w.start-3*day)
	if earliest >= w.end-240 || w.end-w.start < 7*day {
		return nil, false
	}
	r := roleSupportEU
	if t%2 == 1 {
		r = roleSupportUS
	}
	a := w.addActor(t, r)
	a.special, a.activeUntil = true, lastActive
	a.workdays = satWed // a weekend rota: the range's last days may be a weekend
	d := 60 + g.rng.Int64N(60)
	from, ok := g.when(a, earliest, w.end-d-10, d)
	if !ok {
		from = earliest + g.rng.Int64N(max(1, w.end-d-10-earliest))
	}
	sc := g.newScenario(a, from, d)
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		for range g.poisson(1.2) {
			if g.rng.Float64() < 0.15 {
				g.subjectEvent(sc, m, stCRM, models.ActionList, fContact, uint64(20+g.rng.IntN(80)), -1)
			} else {
				g.normal(sc.a, m, mods{rate: 1, recs: 1, shortTickets: true})
			}
		}
	}
	return sc, true
}

func planPeerDeviation(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	sc, ok := g.place(t, lo, hi, 300, roleSupportEU, roleSupportUS)
	if !ok {
		return nil, false
	}
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		for range g.poisson(1.2) {
			r := g.rng.Float64()
			var e *event
			switch {
			case r < 0.5:
				e = g.subjectEvent(sc, m, stPayments, models.ActionRead, fPayName, 1, g.customer(sc.a.tenant))
			case r < 0.7:
				e = g.subjectEvent(sc, m, stPayments, models.ActionList, fPay, uint64(20+g.rng.IntN(40)), -1)
			default:
				e = g.subjectEvent(sc, m, stCRM, models.ActionRead, fNameEmailAddr, 1, g.customer(sc.a.tenant))
			}
			e.purpose = "billing"
		}
	}
	return sc, true
}

func planSlowDrift(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	a := g.pickActor(t, roleSupportEU, roleSupportUS, roleBot)
	if a == nil {
		return nil, false
	}
	w := g.w
	if w.end-lo < 8*day {
		lo = w.end - 8*day
	}
	if lo < w.start+2*day {
		return nil, false
	}
	from := lo / day * day
	if from+7*day > w.end {
		from = (w.end - 7*day) / day * day
	}
	if from < w.start+2*day {
		return nil, false
	}
	sc := g.newScenario(a, from, 7*day)
	sc.rateMul = func(m int64) float64 { return math.Pow(1.2, float64(1+(m-sc.from)/day)) }
	return sc, true
}

func planMultivariate(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	sc, ok := g.place(t, lo, hi, 90, roleSupportEU, roleSupportUS)
	if !ok {
		return nil, false
	}
	sc.rateMul = func(int64) float64 { return 1.6 }
	sc.recMul, sc.shortTickets = 1.8, true
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		for range g.perMinute(sc, 4) {
			switch g.rng.IntN(3) {
			case 0:
				e := g.subjectEvent(sc, m, stCRM, models.ActionRead, fNameEmailPh, 1, g.anyCustomer())
				e.result, e.bytes = models.ResultDenied, 0
			case 1:
				g.subjectEvent(sc, m, stCRM, models.ActionExport, fNameEmail, uint64(30+g.rng.IntN(50)), -1)
			default:
				g.subjectEvent(sc, m, stOrders, models.ActionList, fOrders, uint64(10+g.rng.IntN(20)), -1)
			}
		}
	}
	return sc, true
}

// planNegatives schedules every hard negative that fits the range.
func planNegatives(g *Generator) {
	w := g.w
	span := w.end - w.start
	neg := func(name string, t int, actorID string, from, to int64) {
		g.negatives = append(g.negatives, label(g, NegativePrefix+name, t, actorID, from, to))
	}
	// promotion day: twice the traffic for everyone, a weekday ~60% into the range
	if span >= 2*day {
		pd := (w.start + span*6/10) / day * day
		for time.Weekday((pd/day+4)%7) == time.Saturday || time.Weekday((pd/day+4)%7) == time.Sunday {
			pd += day
		}
		if pd+day <= w.end {
			g.promo = append(g.promo, [2]int64{pd, pd + day})
			for t := range w.tenants {
				neg(NegPromotionDay, t, negAllActorsOfTenant, pd, pd+day)
			}
		}
	}
	nt := min(2, len(w.tenants))
	// new hire: an agent with no history starting ~40% into the range
	for t := range nt {
		a := w.addActor(t, []role{roleSupportEU, roleSupportUS}[t%2])
		a.special = true
		if from, ok := firstShift(g, a, w.start+span*4/10); ok {
			a.activeFrom = from - 30
			neg(NegNewHire, t, a.id, from, min(w.end, from+3*day))
		}
	}
	// an agent moving to the evening shift from ~45% into the range
	for t := range nt {
		a := g.pickActor(t, roleSupportEU, roleSupportUS)
		if a == nil {
			continue
		}
		a.special = true
		a.shiftChangeDay = a.localDayOf(w.start + span*45/100)
		a.newShiftStart = 14 * 60
		if from, ok := firstShift(g, a, (a.shiftChangeDay*day)-a.localOff/60); ok {
			neg(NegEveningShift, t, a.id, from, min(w.end, from+3*day))
		}
	}
	// an agent back from a week off
	if span >= 10*day {
		for t := range nt {
			a := g.pickActor(t, roleSupportEU, roleSupportUS)
			if a == nil {
				continue
			}
			a.special = true
			a.offFrom = w.start + 2*day
			a.offTo = a.offFrom + 7*day
			if from, ok := firstShift(g, a, a.offTo); ok {
				neg(NegBackFromLeave, t, a.id, from, min(w.end, from+2*day))
			}
		}
	}
	// month-end batch job: three times its usual size on the last day of a month
	for _, a := range w.byRole[roleETL] {
		for d := w.start / day * day; d < w.end; d += day {
			date := time.Unix(d*60, 0).UTC()
			if date.AddDate(0, 0, 1).Month() == date.Month() {
				continue
			}
			from := d + int64(a.job.hourUTC*60)
			to := from + int64(a.job.minutes*3) + 2
			if from < w.start || to > w.end {
				continue
			}
			a.special = true
			g.scenarios = append(g.scenarios, &scenario{kind: NegativePrefix + NegMonthEndBatch, a: a, from: from, to: to, recMul: 3})
			neg(NegMonthEndBatch, a.tenant, a.id, from, to+30)
		}
	}
	// daylight-saving change: shifts fixed in local time move in UTC
	for _, a := range w.actors {
		if !roles[a.role].human || a.role == roleVendor || (a.loc.String() != "Europe/Berlin" && a.loc.String() != "America/New_York") {
			continue
		}
		for _, tr := range transitions(a.loc, w.start, w.end) {
			neg(NegDaylightSaving, a.tenant, a.id, tr, min(w.end, tr+3*day))
		}
	}
}

// firstShift returns the start of the actor's first shift at or after m.
func firstShift(g *Generator, a *actor, m int64) (int64, bool) {
	d0 := a.localDayOf(m)
	for d := d0; d < d0+14; d++ {
		if from, _, ok := g.w.shiftWindow(a, d); ok && from >= m && from < g.w.end {
			return from, true
		}
	}
	return 0, false
}

// transitions returns the unix minutes in [from, to) at which loc's UTC
// offset changes.
func transitions(loc *time.Location, from, to int64) []int64 {
	var out []int64
	_, prev := time.Unix(from*60, 0).In(loc).Zone()
	for h := from / 60 * 60; h < to; h += 60 {
		_, off := time.Unix(h*60, 0).In(loc).Zone()
		if off != prev {
			out = append(out, h)
			prev = off
		}
	}
	return out
}
