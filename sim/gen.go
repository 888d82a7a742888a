package sim

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// event is one generated access or consent event before encoding.
type event struct {
	ms          int64 // unix milliseconds
	a           *actor
	action      models.Action
	st          *storeDef
	resID       uint64 // 0: none
	subject     int32  // -1: none
	conv        int64  // 0: none
	convSubject int32
	records     uint64
	bytes       uint64
	fields      *fieldSet
	purpose     string
	tool        string
	result      models.Result
	client      *clientInfo
	dest        string // destination of a share or export; "" for none

	consent bool // a consent.v1 event: tenant, subject, purpose, granted
	granted bool
	tenant  int
}

// Line locates one encoded JSON line (with its trailing newline) in a Batch.
type Line struct {
	Start, End int
	// UnixMilli is the event's time.
	UnixMilli int64
	// Consent is true for a consent.v1 line, false for access.v1.
	Consent bool
	// Key is the Kafka message key: the actor id, or the subject for consents.
	Key string
}

// Batch is one simulated minute of traffic, encoded.
type Batch struct {
	// Minute is the simulated minute the lines fall in.
	Minute time.Time
	// Buf holds every line, each ending with '\n', in timestamp order.
	Buf []byte
	// Lines locates each line in Buf.
	Lines []Line
}

// Value returns the JSON of line i without its newline.
func (b *Batch) Value(i int) []byte { return b.Buf[b.Lines[i].Start : b.Lines[i].End-1] }

// Stats counts what a Generator produced so far.
type Stats struct {
	Access, Consent uint64
}

// Generator produces the traffic of one Config, minute by minute.
type Generator struct {
	cfg      Config
	w        *world
	rng      *rand.Rand
	zipf     []*rand.Zipf
	minute   int64
	seq      uint64
	idPrefix []byte
	evs      []event
	order    []uint64 // sort keys of evs for the current minute
	stats    Stats

	scenarios []*scenario // sorted by from
	nextSc    int
	active    []*scenario
	labels    []Label
	negatives []Label
	skipped   []string

	withdrawn map[uint64]bool
	reserved  map[uint64]bool
	pending   []pendingConsent // scheduled consent events, by minute
	promo     [][2]int64       // [from, to) unix minutes of promotion days

	tsMinute int64
	tsPrefix []byte

	// sharing (shares.go): its own random stream, the rollout's start and
	// the campaign day's actor and minutes
	srng          *rand.Rand
	rolloutFrom   int64
	campaignActor *actor
	campaignDay   [2]int64

	// conversation scenarios (conversations.go): their own random stream
	// and the tool rollout's start
	crng            *rand.Rand
	convRolloutFrom int64
	scenarioConvs   int64

	// orng is share_outside_allowlist's random stream (shares.go).
	orng *rand.Rand

	// piiWins are the payload PII windows (payloadpii.go).
	piiWins []piiWindow
}

type pendingConsent struct {
	m       int64
	tenant  int
	subject int32
	purpose string
	granted bool
}

var consentPurposes = []string{"marketing", "analytics", "training"}

// New builds the world and the attack schedule of cfg.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating simulator config: %w", err)
	}
	cfg = cfg.withDefaults()
	g := &Generator{
		cfg:       cfg,
		w:         newWorld(cfg),
		rng:       rand.New(rand.NewPCG(cfg.Seed, 0x5eed_c4a7)),
		withdrawn: map[uint64]bool{},
		reserved:  map[uint64]bool{},
		tsMinute:  -1,
	}
	g.minute = g.w.start
	g.idPrefix = fmt.Appendf(nil, "sim%d-%s-", cfg.Seed, time.Unix(g.w.start*60, 0).UTC().Format("20060102T1504"))
	for range cfg.Tenants {
		g.zipf = append(g.zipf, rand.NewZipf(g.rng, 1.08, 2, uint64(cfg.Customers-1)))
	}
	plan(g)
	if cfg.PayloadPII {
		g.planPayloadPII()
	}
	return g, nil
}

// Labels returns every planned attack label, ordered by planned start.
//
// A label's Start moves to the scenario's first injected event when the
// generator reaches it: read the labels after the last minute. An attack
// made of injected events that has ended without injecting any (a Poisson
// count of 0: a rare_sensitive_category of 3 expected searches misses
// 5% of the time) is not labelled — there is nothing in the data to
// detect; Skipped lists it.
func (g *Generator) Labels() []Label {
	drop := g.eventless()
	if len(drop) == 0 {
		return g.labels
	}
	out := make([]Label, 0, len(g.labels))
	for i, l := range g.labels {
		if !drop[i] {
			out = append(out, l)
		}
	}
	return out
}

// eventless returns the indexes of the labels whose attack, made of
// injected events, ended before the current minute without one.
func (g *Generator) eventless() map[int]bool {
	var drop map[int]bool
	for _, sc := range g.scenarios {
		if sc.label == 0 || sc.shown || sc.inject == nil || sc.rateMul != nil || sc.client != nil || sc.to > g.minute {
			continue
		}
		if drop == nil {
			drop = map[int]bool{}
		}
		drop[sc.label-1] = true
	}
	return drop
}

// Negatives returns every planned hard-negative label, ordered by start.
func (g *Generator) Negatives() []Label { return g.negatives }

// Skipped lists attack kinds that could not be planned in this run, with why.
func (g *Generator) Skipped() []string {
	out := g.skipped
	drop := g.eventless()
	for _, i := range slices.Sorted(maps.Keys(drop)) {
		l := g.labels[i]
		out = append(slices.Clip(out), fmt.Sprintf("%s: %s on %s from %s injected no event (not labelled)",
			l.Kind, l.ID, l.ActorID, l.Start.Format(time.RFC3339)))
	}
	return out
}

// Actors returns the number of actors in the world.
func (g *Generator) Actors() int { return len(g.w.actors) }

// Stats returns the counts produced so far.
func (g *Generator) Stats() Stats { return g.stats }

// Start and End return the simulated range [Start, End).
func (g *Generator) Start() time.Time { return time.Unix(g.w.start*60, 0).UTC() }

// End returns the end of the simulated range (exclusive).
func (g *Generator) End() time.Time { return time.Unix(g.w.end*60, 0).UTC() }

// customer draws a Zipf-popular customer of tenant t; rank is scattered over
// ids so that popular customers are not the low ids.
func (g *Generator) customer(t int) int32 {
	r := g.zipf[t].Uint64()
	n := uint64(g.cfg.Customers)
	return int32((r*7919 + uint64(t)*104729 + 17) % n)
}

// anyCustomer draws a customer uniformly.
func (g *Generator) anyCustomer() int32 { return int32(g.rng.IntN(g.cfg.Customers)) }

func (g *Generator) poisson(l float64) int {
	if l <= 0 {
		return 0
	}
	if l > 30 {
		return max(0, int(math.Round(l+math.Sqrt(l)*g.rng.NormFloat64())))
	}
	lim, p, k := math.Exp(-l), g.rng.Float64(), 0
	for p > lim {
		p *= g.rng.Float64()
		k++
	}
	return k
}

// lognorm returns x scaled by a log-normal factor with the given sigma.
func (g *Generator) lognorm(x, sigma float64) uint64 {
	return uint64(max(1, x*math.Exp(sigma*g.rng.NormFloat64())))
}

// add appends a new event for a at a random time within minute m.
func (g *Generator) add(a *actor, m int64) *event {
	g.evs = append(g.evs, event{
		ms: m*60000 + g.rng.Int64N(60000), a: a, subject: -1, convSubject: -1, records: 1,
		fields: fNone, purpose: roles[a.role].purpose, result: models.ResultAllowed, client: a.client,
	})
	return &g.evs[len(g.evs)-1]
}

// set fills the store, action, records and a plausible size.
func (g *Generator) set(e *event, st *storeDef, act models.Action, fields *fieldSet, records uint64) {
	e.st, e.action, e.fields, e.records = st, act, fields, records
	e.bytes = g.lognorm(st.recBytes*float64(records), 0.35)
	if act == models.ActionLogin {
		e.bytes = 0
	}
}

// mods are the scenario effects on an actor's normal traffic in one minute.
type mods struct {
	rate, recs   float64
	client       *clientInfo
	shortTickets bool
}

// Next fills b with the next simulated minute and reports false when the
// range is exhausted.
func (g *Generator) Next(b *Batch) bool {
	b.Buf, b.Lines = b.Buf[:0], b.Lines[:0]
	if g.minute >= g.w.end {
		return false
	}
	m := g.minute
	b.Minute = time.Unix(m*60, 0).UTC()
	g.evs = g.evs[:0]
	g.activate(m)
	promo := 1.0
	for _, p := range g.promo {
		if m >= p[0] && m < p[1] {
			promo = 2
		}
	}
	for _, a := range g.w.actors {
		md := g.modsFor(a, m)
		if a.role == roleETL {
			g.job(a, m, md)
			continue
		}
		r := g.w.rateAt(a, m)
		if r == 0 {
			continue
		}
		if a.role != roleIndexer && a.role != roleAdmin {
			r *= promo
		}
		n := g.poisson(r * md.rate * g.cfg.RateScale)
		for range n {
			g.normal(a, m, md)
		}
		g.share(a, m, r, md)
	}
	for _, sc := range g.active {
		if m >= sc.from && m < sc.to && sc.inject != nil {
			n0 := len(g.evs)
			sc.inject(g, sc, m)
			g.injected(sc, g.evs[n0:])
		}
	}
	g.consents(m)
	// sort small keys, not the events: ms within the minute, then creation order
	g.order = g.order[:0]
	for i := range g.evs {
		g.order = append(g.order, uint64(g.evs[i].ms-m*60000)<<32|uint64(i))
	}
	slices.Sort(g.order)
	for _, k := range g.order {
		e := &g.evs[uint32(k)]
		start := len(b.Buf)
		if e.consent {
			b.Buf = g.appendConsent(b.Buf, e)
			g.stats.Consent++
		} else {
			b.Buf = g.appendAccess(b.Buf, e)
			g.stats.Access++
		}
		b.Buf = append(b.Buf, '\n')
		key := ""
		if e.consent {
			key = customerID(e.subject)
		} else {
			key = e.a.id
		}
		b.Lines = append(b.Lines, Line{Start: start, End: len(b.Buf), UnixMilli: e.ms, Consent: e.consent, Key: key})
	}
	g.minute++
	return true
}

// profileID is the CRM record id of a customer.
func profileID(s int32) uint64 { return 1_000_000 + uint64(s) }

// eventAt returns the event of line i of the last batch.
func (g *Generator) eventAt(i int) *event { return &g.evs[uint32(g.order[i])] }

func customerID(s int32) string { return string(appendCustomer(nil, s)) }

// activate moves scenarios starting by minute m into the active set and
// drops finished ones.
func (g *Generator) activate(m int64) {
	for g.nextSc < len(g.scenarios) && g.scenarios[g.nextSc].from <= m {
		sc := g.scenarios[g.nextSc]
		g.active = append(g.active, sc)
		if sc.a != nil {
			sc.a.mods = append(sc.a.mods, sc)
		}
		g.nextSc++
	}
	if m%60 == 0 { // prune now and then; scenarios are few
		g.active = slices.DeleteFunc(g.active, func(sc *scenario) bool {
			if m < sc.to {
				return false
			}
			if sc.a != nil {
				sc.a.mods = slices.DeleteFunc(sc.a.mods, func(x *scenario) bool { return x == sc })
			}
			return true
		})
	}
}

func (g *Generator) modsFor(a *actor, m int64) mods {
	md := mods{rate: 1, recs: 1}
	for _, sc := range a.mods {
		if m < sc.from || m >= sc.to {
			continue
		}
		if sc.rateMul != nil {
			md.rate *= sc.rateMul(m)
		}
		if sc.recMul > 0 {
			md.recs *= sc.recMul
		}
		if sc.client != nil && m >= sc.clientFrom {
			md.client = sc.client
		}
		md.shortTickets = md.shortTickets || sc.shortTickets
	}
	return md
}

// ticket returns the customer the human is working on.
func (g *Generator) ticket(a *actor, short bool) int32 {
	if a.ticketLeft <= 0 || a.ticketSubject < 0 {
		a.ticketSubject = g.customer(a.tenant)
		a.ticketLeft = 3 + g.rng.IntN(10)
		if short {
			a.ticketLeft = 1 + g.rng.IntN(2)
		}
	}
	a.ticketLeft--
	return a.ticketSubject
}

func (g *Generator) recs(x float64, md mods) uint64 { return uint64(max(1, math.Round(x*md.recs))) }

// normal adds one ordinary event of actor a.
func (g *Generator) normal(a *actor, m int64, md mods) {
	e := g.add(a, m)
	if md.client != nil {
		e.client = md.client
	}
	r := g.rng.Float64()
	switch a.role {
	case roleSupportEU, roleSupportUS, roleVendor:
		e.subject = g.ticket(a, md.shortTickets)
		switch {
		case r < 0.30:
			g.set(e, stCRM, models.ActionRead, []*fieldSet{fNameEmailPh, fNameEmail, fNamePhoneAddr}[g.rng.IntN(3)], g.recs(1, md))
			e.resID = profileID(e.subject)
		case r < 0.55:
			g.set(e, stOrders, models.ActionRead, fOrders, g.recs(float64(1+g.rng.IntN(3)), md))
		case r < 0.72:
			g.set(e, stTranscripts, models.ActionRead, fText, g.recs(1, md))
		case r < 0.87 && a.role != roleVendor:
			g.set(e, stTickets, []models.Action{models.ActionRead, models.ActionUpdate}[g.rng.IntN(2)], fNameEmail, 1)
		case r < 0.97:
			g.set(e, stCRM, models.ActionSearch, fNameEmail, g.recs(float64(2+g.rng.IntN(6)), md))
		default:
			g.set(e, stOrders, models.ActionList, fOrders, g.recs(float64(5+g.rng.IntN(15)), md))
		}
		if e.st != stCRM || e.action != models.ActionRead {
			e.resID = 1 + g.rng.Uint64N(1e8)
		}
		if g.rng.Float64() < 0.002 {
			e.result = models.ResultDenied
		}
	case roleBilling:
		e.subject = g.ticket(a, md.shortTickets)
		switch {
		case r < 0.40:
			g.set(e, stPayments, models.ActionRead, fPayName, 1)
		case r < 0.70:
			g.set(e, stCRM, models.ActionRead, fNameEmailAddr, 1)
		case r < 0.90:
			g.set(e, stTickets, models.ActionRead, fNameEmail, 1)
		default:
			g.set(e, stPayments, models.ActionUpdate, fPay, 1)
		}
		e.records = g.recs(float64(e.records), md)
		e.resID = 1 + g.rng.Uint64N(1e8)
		if g.rng.Float64() < 0.004 {
			e.result = models.ResultDenied
		}
	case roleFraud:
		e.subject = g.ticket(a, md.shortTickets)
		switch {
		case r < 0.25:
			g.set(e, stCRM, models.ActionRead, fFraudProfile, 1)
		case r < 0.50:
			g.set(e, stPayments, models.ActionRead, fPayName, g.recs(float64(1+g.rng.IntN(3)), md))
		case r < 0.70:
			g.set(e, stOrders, models.ActionList, fOrders, g.recs(float64(5+g.rng.IntN(25)), md))
		case r < 0.85:
			g.set(e, stTranscripts, models.ActionRead, fText, 1)
		case r < 0.95:
			g.set(e, stCRM, models.ActionRead, fKYC, 1)
		default:
			g.set(e, stTickets, models.ActionUpdate, fNameEmail, 1)
		}
		e.resID = 1 + g.rng.Uint64N(1e8)
		if g.rng.Float64() < 0.002 {
			e.result = models.ResultDenied
		}
	case roleBot:
		c := g.botConv(a)
		g.botCall(a, e, c, r, md)
		g.rolloutCall(a, c, m) // appends: e is not used after it
	case roleIndexer:
		if r < 0.5 {
			g.set(e, stTranscripts, models.ActionList, fText, uint64(10+g.rng.IntN(30)))
		} else {
			g.set(e, stVector, models.ActionUpdate, fText, uint64(10+g.rng.IntN(30)))
		}
	case roleMarketing, roleAnalytics:
		purpose := 0 // marketing
		st, f := stCRM, fNameEmail
		if a.role == roleAnalytics {
			purpose, st, f = 1, stOrders, fOrders
		}
		if r < 0.01 { // a segment or aggregate, no single subject
			g.set(e, st, models.ActionList, f, uint64(150+g.rng.IntN(300)))
			return
		}
		s := g.consentingCustomer(a.tenant, purpose)
		if s < 0 {
			g.evs = g.evs[:len(g.evs)-1]
			return
		}
		e.subject = s
		g.set(e, st, models.ActionRead, f, 1)
		e.resID = profileID(s)
	case roleAdmin:
		switch {
		case r < 0.4:
			g.set(e, stSession, models.ActionLogin, fNone, 1)
			e.resID = 1 + g.rng.Uint64N(1e8)
		case r < 0.8:
			e.subject = g.customer(a.tenant)
			g.set(e, stCRM, models.ActionUpdate, fEmail, 1)
			e.resID = profileID(e.subject)
		default:
			g.set(e, stTickets, models.ActionDelete, fNone, 1)
			e.resID = 1 + g.rng.Uint64N(1e8)
		}
	}
}

// consentingCustomer picks a customer who has not withdrawn consent for
// the purpose, or -1.
func (g *Generator) consentingCustomer(t, purpose int) int32 {
	for range 5 {
		s := g.anyCustomer()
		k := consentKey(t, purpose, s)
		if !g.withdrawn[k] && !g.reserved[k] {
			return s
		}
	}
	return -1
}

func consentKey(t, purpose int, s int32) uint64 {
	return uint64(t)<<40 | uint64(purpose)<<32 | uint64(uint32(s))
}

// botConv picks one of the bot's live conversations or starts a new one.
func (g *Generator) botConv(a *actor) *conv {
	const live = 6
	i := g.rng.IntN(live)
	if i >= len(a.convs) {
		a.convs = append(a.convs, g.newConv(a))
		i = len(a.convs) - 1
	}
	c := &a.convs[i]
	if c.left <= 0 {
		*c = g.newConv(a)
	}
	c.left--
	return c
}

func (g *Generator) newConv(a *actor) conv {
	g.w.nextConv++
	return conv{id: g.w.nextConv, subject: g.customer(a.tenant), left: 2 + g.rng.IntN(6),
		rollout: g.convRolloutFrom > 0 && a.tenant == 0 && g.minute >= g.convRolloutFrom}
}

// botCall fills e as a tool call in conversation c; the subject read is the
// conversation's customer.
func (g *Generator) botCall(a *actor, e *event, c *conv, r float64, md mods) {
	e.conv, e.convSubject = c.id, c.subject
	switch {
	case r < 0.28:
		e.tool = "search_kb"
		g.set(e, stVector, models.ActionSearch, fText, uint64(3+g.rng.IntN(6)))
		return
	case r < 0.58:
		e.tool = "lookup_order"
		g.set(e, stOrders, models.ActionRead, fOrders, g.recs(float64(1+g.rng.IntN(3)), md))
		e.resID = 1 + g.rng.Uint64N(1e8)
	case r < 0.78:
		e.tool = "get_profile"
		g.set(e, stCRM, models.ActionRead, fNameEmail, 1)
		e.resID = profileID(c.subject)
	case r < 0.88:
		e.tool = "get_conversation_history"
		g.set(e, stTranscripts, models.ActionRead, fText, 1)
		e.resID = 1 + g.rng.Uint64N(1e8)
	default:
		e.tool = "create_ticket"
		g.set(e, stTickets, models.ActionUpdate, fTicket, 1)
		e.resID = 1 + g.rng.Uint64N(1e8)
	}
	e.subject = c.subject
	if g.rng.Float64() < 0.001 {
		e.result = models.ResultError
	}
}

// job runs a service account's nightly batch job.
func (g *Generator) job(a *actor, m int64, md mods) {
	j := a.job
	mod := int(m % 1440)
	start := j.hourUTC * 60
	length := j.minutes
	scale := md.recs // month-end: a longer job with more records
	if scale > 1 {
		length = int(float64(length) * scale)
	}
	x := mod - start
	if x < 0 || x > length || !a.present(m) {
		return
	}
	if x == length {
		e := g.add(a, m)
		g.set(e, j.st, models.ActionExport, j.fields, g.lognorm(float64(j.exportRecs)*scale, 0.1))
		e.purpose = j.purpose
		return
	}
	for range g.poisson(j.pageRate * g.cfg.RateScale) {
		e := g.add(a, m)
		g.set(e, j.st, models.ActionList, j.fields, g.lognorm(float64(j.pageRecs), 0.15))
		e.purpose = j.purpose
	}
}

// consents emits the minute's consent events: customers' own grants and
// withdrawals plus any scheduled by scenarios.
func (g *Generator) consents(m int64) {
	for len(g.pending) > 0 && g.pending[0].m <= m {
		p := g.pending[0]
		g.pending = g.pending[1:]
		g.addConsent(m, p.tenant, p.subject, p.purpose, p.granted)
	}
	for t := range g.w.tenants {
		_, off := time.Unix(m*60, 0).In(g.w.markets[t]).Zone()
		h := int(((m+int64(off)/60)%1440+1440)%1440) / 60
		n := g.poisson(0.12 * botHourly[h] * g.cfg.RateScale)
		for range n {
			s := g.anyCustomer()
			pi := g.rng.IntN(len(consentPurposes))
			k := consentKey(t, pi, s)
			if g.reserved[k] {
				continue
			}
			granted := true
			if !g.withdrawn[k] && g.rng.Float64() < 0.3 {
				granted = false
			}
			g.addConsent(m, t, s, consentPurposes[pi], granted)
		}
	}
}

func (g *Generator) addConsent(m int64, t int, s int32, purpose string, granted bool) {
	pi := slices.Index(consentPurposes, purpose)
	g.withdrawn[consentKey(t, pi, s)] = !granted
	g.evs = append(g.evs, event{ms: m*60000 + g.rng.Int64N(60000), consent: true, tenant: t,
		subject: s, purpose: purpose, granted: granted})
}
