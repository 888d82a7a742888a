package rota

import (
	"math/rand/v2"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// planner places one attack of its kind in tenant t starting in [lo, hi);
// it appends the attack's events to g.extra (or changes an actor) and
// returns the label's actor and interval.
type planner func(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (a *actor, from, to time.Time, ok bool)

var planners = map[string]planner{
	KindBulkExport:                planBulk,
	KindSlowEnumeration:           planEnumeration,
	KindBotCrossCustomer:          planCrossCustomer,
	KindConversationManyCustomers: planManyCustomers,
	KindDeniedBurst:               planDenied,
	KindConsentViolation:          planConsent,
	KindPurposeViolation:          planPurpose,
	KindVendorOutOfScope:          planVendor,
	KindVolumeSpike:               planSpike,
	KindOffHours:                  planOffHours,
	KindNewCountry:                planNewCountry,
	KindImpossibleTravel:          planTravel,
	KindDormantWakeup:             planDormant,
	KindSlowDrift:                 planDrift,
	KindShareNewDestination:       planShareNew,
	KindShareOutsideAllowlist:     planShareOutside,
	KindShareVolume:               planShareVolume,
	KindInjectionOneShot:          planInjectionOneShot,
	KindInjectionSlow:             planInjectionSlow,
	KindInjectionDisguised:        planInjectionDisguised,
}

// attacksPerKind: two per kind on small worlds, three on larger ones.
func (g *generator) attacksPerKind() int {
	if len(g.w.actors) < 40 {
		return 2
	}
	return 3
}

func (g *generator) planAttacks() {
	w := g.w
	span := w.end.Sub(w.start)
	warm := min(3*24*time.Hour, span*3/10)
	lo, hi := w.start.Add(warm), w.end.Add(-3*time.Hour)
	rng := w.rng(0xa77ac)
	for ki, kind := range AttackKinds {
		n := g.attacksPerKind()
		planned := 0
		for i := range n {
			t := (i + ki) % len(w.tenants)
			seg := hi.Sub(lo) / time.Duration(n)
			sLo := lo.Add(seg * time.Duration(i))
			var a *actor
			var from, to time.Time
			ok := false
			for try := 0; try < 6 && !ok; try++ {
				mark := len(g.extra)
				a, from, to, ok = planners[kind](g, rng, t, sLo, sLo.Add(seg))
				if ok {
					from = firstEvent(g.extra[mark:], a.id, from)
					to = lastEvent(g.extra[mark:], a.id, to)
				}
			}
			if !ok {
				continue
			}
			a.picked = true
			g.res.Labels = append(g.res.Labels, Label{Kind: kind, Tenant: w.tenants[a.tenant].Name, ActorID: a.id, Start: from.UTC(), End: to.UTC()})
			planned++
		}
		if planned == 0 {
			g.res.Skipped = append(g.res.Skipped, kind+": no actor and time fit the span")
		}
	}
}

// firstEvent returns the time of the first access event of actor id in
// recs, the attack's own events (else from): a label starts where the
// attack first shows in the data, so time to detect is measured from
// there (and an attack session that starts a few minutes early is inside
// its label).
func firstEvent(recs []rec, id string, from time.Time) time.Time {
	first := time.Time{}
	for _, r := range recs {
		if r.ev != nil && r.ev.Actor.ID == id && (first.IsZero() || r.ts.Before(first)) {
			first = r.ts
		}
	}
	if first.IsZero() {
		return from
	}
	return first.Truncate(time.Second)
}

// lastEvent returns the later of to and the time of the last access event
// of actor id in recs, the attack's own events: a shift worked by an
// attacker runs up to 25 minutes past its nominal end (workShift's
// jitter), and a label that ended before its attack's last event scored
// detections of that event as false (impossible travel from the attacker's
// country to the actor's own, 30-45 minutes after the label's end).
func lastEvent(recs []rec, id string, to time.Time) time.Time {
	last := to
	for _, r := range recs {
		if r.ev != nil && r.ev.Actor.ID == id && r.ts.After(last) {
			last = r.ts
		}
	}
	if last.Equal(to) {
		return to
	}
	return last.Truncate(time.Second).Add(time.Second)
}

// pick returns an unpicked actor of tenant t of one of the kinds, else
// one of another tenant, else one already used by another attack; never
// one that a hard negative or the dormant scenario changed.
func (g *generator) pick(rng *rand.Rand, t int, kinds ...kind) *actor {
	var c []*actor
	for pass := 0; pass < 3 && len(c) == 0; pass++ {
		for _, a := range g.w.actors {
			if (a.picked && pass < 2) || (pass == 0 && a.tenant != t) || a.special() {
				continue
			}
			for _, k := range kinds {
				if a.kind == k {
					c = append(c, a)
				}
			}
		}
	}
	if len(c) == 0 {
		return nil
	}
	return c[rng.IntN(len(c))]
}

// place picks an actor of one of kinds (pick) and a d-long stretch of its
// duty between lo and hi (during); ok is false when either finds none.
func (g *generator) place(rng *rand.Rand, t int, lo, hi time.Time, d time.Duration, kinds ...kind) (*actor, time.Time, bool) {
	a := g.pick(rng, t, kinds...)
	if a == nil {
		return nil, lo, false
	}
	from, ok := g.during(rng, a, lo, hi, d)
	if !ok {
		return nil, lo, false
	}
	return a, from, true
}

// during picks a start in [lo, hi) inside one of a's shifts with room for d
// (30 minutes clear of the shift's edges).
func (g *generator) during(rng *rand.Rand, a *actor, lo, hi time.Time, d time.Duration) (time.Time, bool) {
	for range 60 {
		at := lo.Add(time.Duration(rng.Int64N(int64(max(time.Minute, hi.Sub(lo))))))
		from, to, ok := g.w.shift(a, localMidnight(at, a.loc))
		if !ok {
			continue
		}
		room := to.Sub(from) - d - time.Hour
		if room <= 0 {
			continue
		}
		s := from.Add(30*time.Minute + time.Duration(rng.Int64N(int64(room)))).Truncate(time.Second)
		if !s.Before(lo) && s.Add(d).Before(g.w.end) && a.present(s) {
			return s, true
		}
	}
	return time.Time{}, false
}

// spread emits n events made by mk at random instants of [from, to).
func (g *generator) spread(rng *rand.Rand, from, to time.Time, n int, mk func(k int) *models.Event) {
	for k := range n {
		at := from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)))))
		g.extra = append(g.extra, rec{ts: at, ev: mk(k)})
	}
}

func planBulk(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	d := 15 * time.Minute
	a, from, ok := g.place(rng, t, lo, hi, d, kAgent)
	if !ok {
		return nil, lo, lo, false
	}
	for k := range 1 + rng.IntN(2) {
		e := g.event(a, models.ActionExport, "crm", "customer_profile", "", uint64(1500+rng.IntN(13500)),
			[]string{models.CategoryName, models.CategoryEmail, models.CategoryPhone, models.CategoryAddress})
		g.extra = append(g.extra, rec{ts: from.Add(time.Duration(2+7*k) * time.Minute), ev: e})
	}
	return a, from, from.Add(d), true
}

func planEnumeration(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	a := g.pick(rng, t, kAgent, kVendor)
	if a == nil {
		return nil, lo, lo, false
	}
	d := time.Duration(180+rng.IntN(120)) * time.Minute
	from, ok := g.during(rng, a, lo, hi, d)
	if !ok {
		return nil, lo, lo, false
	}
	n := int(d.Minutes() * (0.5 + 0.4*rng.Float64()))
	g.spread(rng, from, from.Add(d), n, func(int) *models.Event {
		return g.event(a, models.ActionRead, "crm", "customer_profile", customerID(a.tenant, rng.IntN(g.w.cfg.Customers)), 1, fProfile)
	})
	return a, from, from.Add(d), true
}

func (g *generator) bot(rng *rand.Rand, t int) *actor {
	var c []*actor
	for _, a := range g.w.actors {
		if a.kind == kBot && a.tenant == t && a.driftFrom.IsZero() {
			c = append(c, a)
		}
	}
	if len(c) == 0 {
		return nil
	}
	return c[rng.IntN(len(c))]
}

func planCrossCustomer(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	a := g.bot(rng, t)
	if a == nil {
		return nil, lo, lo, false
	}
	d := 20 * time.Minute
	from := lo.Add(time.Duration(rng.Int64N(int64(hi.Sub(lo) - d)))).Truncate(time.Second)
	g.spread(rng, from, from.Add(d), 4+rng.IntN(6), func(int) *models.Event {
		own := g.customer(a.tenant, rng, from)
		e := g.event(a, models.ActionRead, "crm", "customer_profile", customerID(a.tenant, rng.IntN(g.w.cfg.Customers)), 1, fProfile)
		e.Tool = "get_customer"
		e.Conversation = models.Conversation{ID: "cv-x-" + convID(rng), SubjectID: own}
		return e
	})
	return a, from, from.Add(d), true
}

func planManyCustomers(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	a := g.bot(rng, t)
	if a == nil {
		return nil, lo, lo, false
	}
	d := 10 * time.Minute
	from := lo.Add(time.Duration(rng.Int64N(int64(hi.Sub(lo) - d)))).Truncate(time.Second)
	conv := models.Conversation{ID: "cv-m-" + convID(rng), SubjectID: g.customer(a.tenant, rng, from)}
	n := 5 + rng.IntN(4)
	for k := range n {
		s := conv.SubjectID
		if k > 0 {
			s = customerID(a.tenant, rng.IntN(g.w.cfg.Customers))
		}
		e := g.event(a, models.ActionRead, "orders", "order", s, 1, fOrder)
		e.Tool, e.Conversation = "order_status", conv
		g.extra = append(g.extra, rec{ts: from.Add(time.Duration(k) * d / time.Duration(n)), ev: e})
	}
	return a, from, from.Add(d), true
}

func planDenied(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	d := 10 * time.Minute
	a, from, ok := g.place(rng, t, lo, hi, d, kAgent, kVendor)
	if !ok {
		return nil, lo, lo, false
	}
	g.spread(rng, from, from.Add(d), 15+rng.IntN(25), func(int) *models.Event {
		e := g.event(a, models.ActionRead, "crm", "customer_profile", customerID(a.tenant, rng.IntN(g.w.cfg.Customers)), 1, fProfile)
		e.Result = models.ResultDenied
		return e
	})
	return a, from, from.Add(d), true
}

func planConsent(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	d := time.Hour
	a, from, ok := g.place(rng, t, lo, hi, d, kMarketer)
	if !ok {
		return nil, lo, lo, false
	}
	n := 5 + rng.IntN(8)
	for k := range n {
		// customers outside the normal base: nobody else reads them
		id := customerID(a.tenant, g.w.cfg.Customers+int(rng.Uint32()%1e6))
		ten := g.w.tenants[a.tenant].Name
		g.extra = append(g.extra,
			rec{ts: g.w.start.Add(time.Duration(rng.IntN(3600)) * time.Second), consent: &models.Consent{Tenant: ten, SubjectID: id, Purpose: "marketing", Granted: true}},
			rec{ts: from.Add(-time.Duration(2+rng.IntN(20)) * time.Hour), consent: &models.Consent{Tenant: ten, SubjectID: id, Purpose: "marketing", Granted: false}})
		e := g.event(a, models.ActionRead, "crm", "customer_profile", id, 1, fSegment)
		e.Purpose = "marketing"
		g.extra = append(g.extra, rec{ts: from.Add(time.Duration(k) * d / time.Duration(n)), ev: e})
	}
	return a, from, from.Add(d), true
}

func planPurpose(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	d := 30 * time.Minute
	a, from, ok := g.place(rng, t, lo, hi, d, kAgent)
	if !ok {
		return nil, lo, lo, false
	}
	g.spread(rng, from, from.Add(d), 3+rng.IntN(5), func(int) *models.Event {
		f := []string{models.CategoryName, models.CategoryPayment}
		if rng.IntN(2) == 0 {
			f = []string{models.CategoryName, models.CategoryGovernmentID}
		}
		return g.event(a, models.ActionRead, "crm", "customer_profile", g.customer(a.tenant, rng, from), 1, f)
	})
	return a, from, from.Add(d), true
}

func planVendor(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	a := g.pick(rng, t, kVendor)
	if a == nil {
		return nil, lo, lo, false
	}
	d := 25 * time.Minute
	variant := rng.IntN(3)
	var from time.Time
	if variant == 2 { // after contracted hours: 21:00-23:00 Manila
		at := lo.Add(time.Duration(rng.Int64N(int64(hi.Sub(lo)))))
		mid := localMidnight(at, a.loc)
		from = time.Date(mid.Year(), mid.Month(), mid.Day(), 21, rng.IntN(60), 0, 0, a.loc)
		if from.Before(lo) || !from.Add(d).Before(g.w.end) {
			return nil, lo, lo, false
		}
	} else {
		var ok bool
		if from, ok = g.during(rng, a, lo, hi, d); !ok {
			return nil, lo, lo, false
		}
	}
	g.spread(rng, from, from.Add(d), 5+rng.IntN(8), func(int) *models.Event {
		c := g.customer(a.tenant, rng, from)
		switch variant {
		case 0:
			return g.event(a, models.ActionRead, "payments", "card", c, 1, []string{models.CategoryPayment})
		case 1:
			return g.event(a, models.ActionRead, "crm", "customer_profile", c, 1, []string{models.CategoryName, models.CategoryDOB})
		}
		return g.event(a, models.ActionRead, "tickets", "ticket", c, 1, fTicket)
	})
	return a, from, from.Add(d), true
}

func planSpike(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	d := 25 * time.Minute
	a, from, ok := g.place(rng, t, lo, hi, d, kAgent, kVendor)
	if !ok {
		return nil, lo, lo, false
	}
	g.spread(rng, from, from.Add(d), 12+rng.IntN(14), func(int) *models.Event {
		return g.event(a, models.ActionList, "orders", "order", "", uint64(40+rng.IntN(120)), fOrder)
	})
	return a, from, from.Add(d), true
}

// planOffHours: an agent works 60-90 minutes in the middle of its rest
// time, twelve hours from its slot's start, on a working day.
func planOffHours(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	a := g.pick(rng, t, kAgent)
	if a == nil {
		return nil, lo, lo, false
	}
	d := time.Duration(60+rng.IntN(30)) * time.Minute
	for range 40 {
		at := lo.Add(time.Duration(rng.Int64N(int64(hi.Sub(lo)))))
		sf, _, ok := g.w.shift(a, localMidnight(at, a.loc))
		if !ok {
			continue
		}
		from := sf.Add(14*time.Hour + time.Duration(rng.IntN(40))*time.Minute)
		if from.Before(lo) || !from.Add(d).Before(g.w.end) {
			continue
		}
		g.workShift(&actor{id: a.id, kind: kAgent, tenant: a.tenant, loc: a.loc, client: a.client, speed: a.speed},
			g.w.rng(uint64(from.Unix()), 0x0ff), from, from.Add(d), func(r rec) { g.extra = append(g.extra, r) })
		return a, from, from.Add(d), true
	}
	return nil, lo, lo, false
}

var foreign = []string{"TR", "ID", "UA", "MA", "BR", "IN"}

// awayClient is a client in a country far from a's own.
func awayClient(rng *rand.Rand, a *actor) models.Client {
	for {
		cc := foreign[rng.IntN(len(foreign))]
		if cc != a.client.Country {
			return models.Client{IP: ipFor(cc, rng.Uint64()), Country: cc, UserAgent: userAgents[rng.IntN(len(userAgents))]}
		}
	}
}

// foreignWork emits normal-looking contact work of a from a foreign client in [from, to).
func (g *generator) foreignWork(rng *rand.Rand, a *actor, from, to time.Time) {
	c := awayClient(rng, a)
	imp := &actor{id: a.id, kind: kAgent, tenant: a.tenant, loc: a.loc, client: c, speed: 0.6}
	g.workShift(imp, rng, from, to.Add(-10*time.Minute), func(r rec) { g.extra = append(g.extra, r) })
}

func planNewCountry(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	d := 2 * time.Hour
	a, from, ok := g.place(rng, t, lo, hi, d, kAgent)
	if !ok {
		return nil, lo, lo, false
	}
	g.foreignWork(rng, a, from, from.Add(d))
	return a, from, from.Add(d), true
}

func planTravel(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	d := time.Hour
	a, from, ok := g.place(rng, t, lo, hi, d, kAgent, kVendor)
	if !ok {
		return nil, lo, lo, false
	}
	// the actor's own session carries on at home; a second one abroad
	// starts 20 minutes in
	g.foreignWork(rng, a, from.Add(20*time.Minute), from.Add(d))
	return a, from, from.Add(d), true
}

// planDormant adds an agent that works the first two days and wakes up at
// ten and a half days later or more with a session that also lists customer profiles.
func planDormant(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	w := g.w
	quiet := w.start.Add(2 * 24 * time.Hour)
	earliest := quiet.Add(10*24*time.Hour + 12*time.Hour)
	if !earliest.Before(w.end.Add(-4 * time.Hour)) {
		return nil, lo, lo, false
	}
	a := w.add(t, kDormant)
	a.until, a.picked = quiet, true
	// on duty from the first day, so it has a history before it goes quiet
	a.phase = (8 - rotaDay(localMidnight(w.start, a.loc))%8) % 8
	d := 75 * time.Minute
	from := earliest.Add(time.Duration(rng.Int64N(int64(w.end.Sub(earliest) - d - time.Hour)))).Truncate(time.Second)
	imp := &actor{id: a.id, kind: kAgent, tenant: a.tenant, loc: a.loc, client: a.client, speed: 1.2}
	g.workShift(imp, rng, from, from.Add(d), func(r rec) { g.extra = append(g.extra, r) })
	g.spread(rng, from, from.Add(d), 3, func(int) *models.Event {
		return g.event(a, models.ActionList, "crm", "customer_profile", "", uint64(40+rng.IntN(60)), fProfile)
	})
	return a, from, from.Add(d), true
}

// planDrift: a virtual agent's traffic grows 25% a day for six days (a
// compromised integration widening its reach).
func planDrift(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	w := g.w
	if w.end.Sub(w.start) < 10*24*time.Hour {
		return nil, lo, lo, false
	}
	a := g.bot(rng, t)
	if a == nil {
		return nil, lo, lo, false
	}
	from := w.end.Add(-6 * 24 * time.Hour).Truncate(24 * time.Hour)
	if from.Before(w.start.Add(4 * 24 * time.Hour)) {
		return nil, lo, lo, false
	}
	a.driftFrom = from
	return a, from, w.end, true
}

// planNegatives schedules the hard negatives that fit the span.
func (g *generator) planNegatives() {
	w := g.w
	span := w.end.Sub(w.start)
	rng := w.rng(0x2e9)
	neg := func(name string, t int, id string, from, to time.Time) {
		g.res.Negatives = append(g.res.Negatives, Label{Kind: NegativePrefix + name, Tenant: w.tenants[t].Name, ActorID: id, Start: from.UTC(), End: to.UTC()})
	}
	for t := range w.tenants {
		// a demand surge (an outage elsewhere): six hours at 2.5x on a weekday afternoon
		day := w.start.Add(span / 2).Truncate(24 * time.Hour)
		mid := localMidnight(day, w.locs[t])
		for mid.Weekday() == time.Saturday || mid.Weekday() == time.Sunday {
			mid = localMidnight(mid.Add(26*time.Hour), w.locs[t])
		}
		from := mid.Add(13 * time.Hour)
		if from.Add(6 * time.Hour).Before(w.end) {
			g.surges = append(g.surges, surge{tenant: t, from: from, to: from.Add(6 * time.Hour), mul: 2.5})
			neg(NegSurge, t, "*", from, from.Add(6*time.Hour))
		}
		// a new hire from 40% of the span
		nh := w.add(t, kAgent)
		nh.from, nh.picked = w.start.Add(span*4/10), true
		neg(NegNewHire, t, nh.id, nh.from, nh.from.Add(3*24*time.Hour))
		// a rota swap: an early-slot agent covers the late slot for four days
		if a := g.pick(rng, t, kAgent); a != nil {
			a.picked = true
			a.swapFrom = w.start.Add(span * 55 / 100)
			a.swapTo = a.swapFrom.Add(4 * 24 * time.Hour)
			a.newSlot = (a.slot + 1) % 3
			neg(NegRotaSwap, t, a.id, a.swapFrom, a.swapTo)
		}
		// back from a week's leave
		if span >= 10*24*time.Hour {
			if a := g.pick(rng, t, kAgent); a != nil {
				a.picked = true
				a.offFrom, a.offTo = w.start.Add(24*time.Hour), w.start.Add(8*24*time.Hour)
				neg(NegBackFromOff, t, a.id, a.offTo, a.offTo.Add(2*24*time.Hour))
			}
		}
	}
	for _, a := range w.actors {
		if a.kind != kReports {
			continue
		}
		for d := w.start.Truncate(24 * time.Hour); d.Before(w.end); d = d.Add(24 * time.Hour) {
			if d.Weekday() == time.Monday && !d.Before(w.start) {
				neg(NegWeeklyPull, a.tenant, a.id, d.Add(3*time.Hour), d.Add(3*time.Hour+20*time.Minute))
			}
		}
	}
}
