package rota

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// rec is one generated line before encoding.
type rec struct {
	ts      time.Time
	ev      *models.Event
	consent *models.Consent
}

// Result is what a run produced.
type Result struct {
	Access, Consent int
	Actors          int
	// Labels are the attacks, Negatives the hard negatives, both sorted by start.
	Labels, Negatives []Label
	// Skipped says which attack kinds did not fit the span, and why.
	Skipped []string
}

// generator holds one run's world, plans and output.
type generator struct {
	w       *world
	extra   []rec // attack and negative events, any order
	surges  []surge
	sharing sharing
	// convRolloutFrom starts conversation_tool_rollout (conversations.go; zero: none)
	convRolloutFrom time.Time
	res             Result
	seq             uint64
	convSeq         uint64
}

// surge multiplies a tenant's demand in [from, to).
type surge struct {
	tenant   int
	from, to time.Time
	mul      float64
}

// Generate writes the traffic of cfg to out as JSON lines in time order and
// returns the labels.
func Generate(cfg Config, out io.Writer) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	g := &generator{w: newWorld(cfg)}
	if cfg.HardNegatives {
		g.planNegatives()
	}
	if cfg.Attacks {
		g.planAttacks()
	}
	if cfg.HardNegatives {
		g.planShareNegatives()
		g.planConvNegatives()
	}
	g.res.Actors = len(g.w.actors)
	slices.SortStableFunc(g.extra, func(x, y rec) int { return x.ts.Compare(y.ts) })
	bw := bufio.NewWriterSize(out, 1<<20)
	next := 0
	var buf []byte
	for d := g.w.start; d.Before(g.w.end); d = d.Add(24 * time.Hour) {
		to := d.Add(24 * time.Hour)
		if to.After(g.w.end) {
			to = g.w.end
		}
		var day []rec
		emit := func(r rec) {
			if !r.ts.Before(d) && r.ts.Before(to) {
				day = append(day, r)
			}
		}
		for i, a := range g.w.actors {
			g.actorTraffic(i, a, d, to, emit)
		}
		g.consents(d, to, emit)
		for ; next < len(g.extra) && g.extra[next].ts.Before(to); next++ {
			if !g.extra[next].ts.Before(g.w.start) {
				day = append(day, g.extra[next])
			}
		}
		slices.SortStableFunc(day, func(x, y rec) int { return x.ts.Compare(y.ts) })
		for i := range day {
			var err error
			if buf, err = g.encode(buf[:0], &day[i]); err != nil {
				return nil, err
			}
			if _, err := bw.Write(buf); err != nil {
				return nil, fmt.Errorf("writing events: %w", err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("writing events: %w", err)
	}
	sortLabels(g.res.Labels, "rota-atk")
	sortLabels(g.res.Negatives, "rota-neg")
	return &g.res, nil
}

func sortLabels(ls []Label, prefix string) {
	slices.SortStableFunc(ls, func(x, y Label) int { return x.Start.Compare(y.Start) })
	for i := range ls {
		ls[i].ID = fmt.Sprintf("%s-%04d", prefix, i+1)
	}
}

// consentLine is a consent.v1 line.
type consentLine struct {
	Schema string `json:"schema"`
	models.Consent
}

func (g *generator) encode(b []byte, r *rec) ([]byte, error) {
	g.seq++
	id := "rota-" + strconv.FormatUint(g.w.cfg.Seed, 10) + "-" + strconv.FormatUint(g.seq, 10)
	var v any
	if r.consent != nil {
		c := *r.consent
		c.EventID, c.TS = id, r.ts.UTC().Truncate(time.Millisecond)
		v = consentLine{Schema: models.SchemaConsent, Consent: c}
		g.res.Consent++
	} else {
		e := *r.ev
		e.EventID, e.TS = id, r.ts.UTC().Truncate(time.Millisecond)
		v = &e
		g.res.Access++
	}
	j, err := json.Marshal(v)
	if err != nil {
		return b, fmt.Errorf("encoding event: %w", err)
	}
	b = append(b, j...)
	return append(b, '\n'), nil
}

// convID is a conversation id: a random number in base 36 (letters
// between digits: a long run of digits reads as a card number to ingest's
// PII check).
func convID(rng *rand.Rand) string {
	b := []byte(strconv.FormatUint(rng.Uint64()%(1<<48), 36))
	for i := 3; i < len(b); i += 4 {
		if b[i] >= '0' && b[i] <= '9' {
			b[i] = 'a' + (b[i] - '0') // never four digits in a row
		}
	}
	return string(b)
}

// customerID is the raw id of customer n of tenant t.
func customerID(t, n int) string { return fmt.Sprintf("t%dc%07d", t, n) }

// customer draws the customer of a contact at time at: a third are open
// cases (a small set renewed every three days, recurring while open), the
// rest one-off customers uniform over the tenant's base.
func (g *generator) customer(t int, rng *rand.Rand, at time.Time) string {
	n := g.w.cfg.Customers
	if rng.Float64() < 0.33 {
		cases := max(20, n/400)
		epoch := uint64(at.Unix() / (3 * 86400))
		return customerID(t, int(g.w.hash(uint64(t), epoch, uint64(rng.IntN(cases)))%uint64(n)))
	}
	return customerID(t, rng.IntN(n))
}

// demand is the tenant's conversations per minute at t, per channel c.
func (g *generator) demand(t int, c int, at time.Time) float64 {
	w := g.w
	l := at.In(w.locs[t])
	per := float64(len(w.actors)) / float64(len(w.tenants))
	r := 0.02 * per * w.cfg.RateScale * channels[c].share * channels[c].curve[l.Hour()]
	if wd := l.Weekday(); wd == time.Saturday || wd == time.Sunday {
		r *= 0.7
	}
	for _, s := range g.surges {
		if s.tenant == t && !at.Before(s.from) && at.Before(s.to) {
			r *= s.mul
		}
	}
	return r
}

// surgeMul is the demand multiplier of tenant t at time at (for agents).
func (g *generator) surgeMul(t int, at time.Time) float64 {
	m := 1.0
	for _, s := range g.surges {
		if s.tenant == t && !at.Before(s.from) && at.Before(s.to) {
			m *= math.Sqrt(s.mul)
		}
	}
	return m
}

func (g *generator) event(a *actor, action models.Action, store, resType, subject string, records uint64, fields []string) *models.Event {
	e := &models.Event{Tenant: g.w.tenants[a.tenant].Name, Actor: a.modelActor(), Action: action, Store: store,
		Resource: models.Resource{Type: resType}, SubjectID: subject, Records: records, Fields: fields,
		Purpose: "support", Result: models.ResultAllowed, Client: a.client}
	return e
}

var (
	fTicket  = []string{models.CategoryName, models.CategoryEmail, models.CategoryTranscriptText}
	fProfile = []string{models.CategoryName, models.CategoryEmail, models.CategoryPhone}
	fOrder   = []string{models.CategoryOrderHistory}
	fText    = []string{models.CategoryTranscriptText}
	fSegment = []string{models.CategoryName, models.CategoryEmail}
)

// actorTraffic emits a's normal traffic that falls in [from, to).
func (g *generator) actorTraffic(i int, a *actor, from, to time.Time, emit func(rec)) {
	w := g.w
	switch a.kind {
	case kBot:
		g.botTraffic(i, a, from, to, emit)
		return
	case kSync:
		rng := w.rng(uint64(i), uint64(from.Unix()))
		for t := from.Add(time.Duration(i%5) * time.Minute); t.Before(to); t = t.Add(5 * time.Minute) {
			e := g.event(a, models.ActionList, "crm", "session", "", uint64(20+rng.IntN(40)), nil)
			e.Purpose = ""
			emit(rec{ts: t.Add(time.Duration(rng.IntN(20000)) * time.Millisecond), ev: e})
		}
		g.warehouseExports(a, from, to, emit)
		return
	case kReports:
		g.reportTraffic(a, from, to, emit)
		return
	}
	// shift workers: every local day whose shift may overlap [from, to)
	for mid := localMidnight(from.Add(-24*time.Hour), a.loc); mid.Before(to); mid = localMidnight(mid.Add(26*time.Hour), a.loc) {
		sf, st, ok := w.shift(a, mid)
		if !ok || !st.After(from) || !sf.Before(to) {
			continue
		}
		rng := w.rng(uint64(i), uint64(rotaDay(mid)), 0x5)
		g.workShift(a, rng, sf, st, func(r rec) {
			if a.present(r.ts) {
				emit(r)
			}
		})
	}
}

// workShift is one shift of a human actor.
func (g *generator) workShift(a *actor, rng *rand.Rand, from, to time.Time, emit func(rec)) {
	t := from.Add(time.Duration(rng.IntN(25)-10) * time.Minute)
	end := to.Add(time.Duration(rng.IntN(30)-5) * time.Minute)
	breaks := [][2]time.Time{
		{from.Add(2 * time.Hour), from.Add(2*time.Hour + 15*time.Minute)},
		{from.Add(4 * time.Hour), from.Add(4*time.Hour + 30*time.Minute)},
		{from.Add(6*time.Hour + 15*time.Minute), from.Add(6*time.Hour + 30*time.Minute)},
	}
	speed := a.speed * g.w.cfg.RateScale
	switch a.kind {
	case kLead:
		for t.Before(end) {
			if rng.IntN(3) == 0 {
				e := g.event(a, models.ActionList, "tickets", "ticket", "", uint64(15+rng.IntN(40)), fSegment)
				emit(rec{ts: t, ev: e})
			} else {
				c := g.customer(a.tenant, rng, t)
				emit(rec{ts: t, ev: g.event(a, models.ActionRead, "transcripts", "transcript", c, 1, fText)})
			}
			t = t.Add(time.Duration(rng.ExpFloat64()*12*float64(time.Minute)/speed) + time.Minute)
		}
		return
	case kMarketer:
		pulls := 1 + rng.IntN(2)
		for k := range pulls {
			at := from.Add(time.Duration(30+k*180+rng.IntN(60)) * time.Minute)
			e := g.event(a, models.ActionList, "crm", "customer_profile", "", uint64(150+rng.IntN(450)), fSegment)
			e.Purpose = "marketing"
			emit(rec{ts: at, ev: e})
		}
		reads := 8 + rng.IntN(20)
		for range reads {
			at := from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)))))
			e := g.event(a, models.ActionRead, "crm", "customer_profile", customerID(a.tenant, 7*rng.IntN(g.w.cfg.Customers/7)), 1, fSegment)
			e.Purpose = "marketing"
			emit(rec{ts: at, ev: e})
		}
		g.mailingExport(a, from, emit)
		return
	case kReviewer:
		for t.Before(end) {
			c := customerID(a.tenant, rng.IntN(g.w.cfg.Customers))
			emit(rec{ts: t, ev: g.event(a, models.ActionRead, "tickets", "ticket", c, 1, fTicket)})
			emit(rec{ts: t.Add(time.Duration(20+rng.IntN(60)) * time.Second), ev: g.event(a, models.ActionRead, "transcripts", "transcript", c, 1, fText)})
			t = t.Add(time.Duration((6 + rng.ExpFloat64()*8) * float64(time.Minute) / speed))
		}
		return
	}
	// agents and vendor agents: contact after contact
	for t.Before(end.Add(-3 * time.Minute)) {
		for _, b := range breaks {
			if !t.Before(b[0]) && t.Before(b[1]) {
				t = b[1].Add(time.Duration(rng.IntN(120)) * time.Second)
			}
		}
		rate := speed * g.surgeMul(a.tenant, t)
		if !a.driftFrom.IsZero() && !t.Before(a.driftFrom) {
			rate *= math.Pow(1.3, math.Floor(t.Sub(a.driftFrom).Hours()/24)+1)
		}
		c := g.customer(a.tenant, rng, t)
		handle := time.Duration(math.Exp(math.Log(7)+0.45*rng.NormFloat64()) * float64(time.Minute) / rate)
		steps := []struct {
			store, typ string
			f          []string
			act        models.Action
			p          float64
		}{
			{"tickets", "ticket", fTicket, models.ActionRead, 1},
			{"crm", "customer_profile", fProfile, models.ActionRead, 0.9},
			{"orders", "order", fOrder, models.ActionRead, 0.6},
			{"transcripts", "transcript", fText, models.ActionRead, 0.3},
			{"tickets", "ticket", fTicket, models.ActionUpdate, 0.85},
		}
		var conv models.Conversation
		if rng.Float64() < 0.4 {
			g.convSeq++
			conv = models.Conversation{ID: "esc-" + convID(rng), SubjectID: c}
		}
		for k, s := range steps {
			if rng.Float64() >= s.p {
				continue
			}
			at := t.Add(handle * time.Duration(k) / time.Duration(len(steps)))
			e := g.event(a, s.act, s.store, s.typ, c, 1, s.f)
			e.Conversation = conv
			e.Bytes = uint64(800 + rng.IntN(6000))
			emit(rec{ts: at.Add(time.Duration(rng.IntN(15000)) * time.Millisecond), ev: e})
		}
		g.carrierShare(a, t, handle, c, emit)
		t = t.Add(handle + time.Duration(rng.ExpFloat64()*1.5*float64(time.Minute)/rate))
	}
}

// botTraffic emits a virtual agent's conversations in [from, to).
func (g *generator) botTraffic(i int, a *actor, from, to time.Time, emit func(rec)) {
	rng := g.w.rng(uint64(i), uint64(from.Unix()), 0xb0)
	for m := from; m.Before(to); m = m.Add(time.Minute) {
		lambda := g.demand(a.tenant, a.ch, m)
		if !a.driftFrom.IsZero() && !m.Before(a.driftFrom) {
			lambda *= math.Pow(1.25, math.Floor(m.Sub(a.driftFrom).Hours()/24)+1)
		}
		for range poisson(rng, lambda) {
			c := g.customer(a.tenant, rng, m)
			at := m.Add(time.Duration(rng.IntN(60000)) * time.Millisecond)
			conv := g.conversation(a, rng, at, c, emit)
			g.translationShare(a, at, conv, emit)
			g.rolloutCall(a, at, conv, emit)
		}
	}
}

// conversation emits one conversation's tool calls, all for customer c.
func (g *generator) conversation(a *actor, rng *rand.Rand, at time.Time, c string, emit func(rec)) models.Conversation {
	conv := models.Conversation{ID: "cv-" + convID(rng), SubjectID: c}
	calls := 2 + rng.IntN(3)
	for k := range calls {
		var e *models.Event
		switch rng.IntN(4) {
		case 0:
			e = g.event(a, models.ActionRead, "crm", "customer_profile", c, 1, fSegment)
			e.Tool = "get_customer"
		case 1, 2:
			e = g.event(a, models.ActionRead, "orders", "order", c, uint64(1+rng.IntN(3)), fOrder)
			e.Tool = "order_status"
		default:
			e = g.event(a, models.ActionSearch, "vector_index", "kb_article", "", uint64(3+rng.IntN(5)), nil)
			e.Tool = "kb_search"
		}
		e.Conversation = conv
		emit(rec{ts: at.Add(time.Duration(k*(10+rng.IntN(40))) * time.Second), ev: e})
	}
	return conv
}

// reportTraffic is the weekly report: Mondays 03:00 UTC, paged lists of
// orders then one export.
func (g *generator) reportTraffic(a *actor, from, to time.Time, emit func(rec)) {
	for d := from.Truncate(24 * time.Hour); d.Before(to); d = d.Add(24 * time.Hour) {
		if d.Weekday() != time.Monday {
			continue
		}
		rng := g.w.rng(uint64(d.Unix()), uint64(a.tenant), 0x7e)
		at := d.Add(3 * time.Hour)
		scale := float64(len(g.w.actors)) / float64(len(g.w.tenants)) / 50
		for k := range 10 {
			e := g.event(a, models.ActionList, "orders", "order", "", uint64(float64(1500+rng.IntN(500))*scale)+1, fOrder)
			e.Purpose = "analytics"
			emit(rec{ts: at.Add(time.Duration(k) * 90 * time.Second), ev: e})
		}
		e := g.event(a, models.ActionExport, "orders", "order", "", uint64(float64(15000+rng.IntN(5000))*scale)+1, fOrder)
		e.Purpose = "analytics"
		emit(rec{ts: at.Add(16 * time.Minute), ev: e})
	}
}

// consents emits the day's consent decisions: opt-ins among customers
// whose number is a multiple of 7 (the campaign manager's audience) and
// opt-outs among those ≡ 3 mod 7 (whom it never reads).
func (g *generator) consents(from, to time.Time, emit func(rec)) {
	for t := range g.w.tenants {
		rng := g.w.rng(uint64(from.Unix()), uint64(t), 0xc0)
		n := 5 + rng.IntN(20)
		for range n {
			at := from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)))))
			granted := rng.IntN(3) > 0
			k := rng.IntN(g.w.cfg.Customers / 7)
			id := customerID(t, 7*k)
			if !granted {
				id = customerID(t, min(7*k+3, g.w.cfg.Customers-1))
			}
			purpose := []string{"marketing", "analytics"}[rng.IntN(2)]
			emit(rec{ts: at, consent: &models.Consent{Tenant: g.w.tenants[t].Name, SubjectID: id, Purpose: purpose, Granted: granted}})
		}
	}
}

// poisson draws a Poisson variate (Knuth for small means, normal above 30).
func poisson(rng *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
