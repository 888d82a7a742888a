package sim

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/chatwarden/chatwarden/models"
)

// Third-party sharing (access.v1's destination on share and export).
//
// Normal traffic: support agents share a customer's case with the
// outsourced support desk (DestBPO) about three times a shift, billing
// agents a payment dispute with the payment processor (DestPSP) about
// twice a shift, and marketing exports the day's mailing list to its
// e-mail service (DestMailer) once a working day.
//
// Everything here draws from its own random stream (Generator.srng) or
// from hashes, never from the generator's main stream: adding sharing left
// every other line of the traffic as it was, so the figures measured on the
// traffic before it stay comparable.

// The destinations of the simulated platform.
const (
	DestBPO          = "acme-bpo.example"
	DestPSP          = "psp.example"
	DestMailer       = "mailer.example"
	DestNewProcessor = "new-processor.example" // rolled out in the destination_rollout hard negative
)

// Destinations is the allow-list a deployment of the simulated platform
// configures for its first tenant (`simulate -out-config`, eval): the
// contracted processors, the one rolled out during the run included.
var Destinations = []string{DestBPO, DestPSP, DestMailer, DestNewProcessor}

// Per-minute probabilities of a share while at work, and the marketing
// export's typical size.
const (
	supportShareRate = 0.006
	billingShareRate = 0.004
	mailerRecords    = 300
)

// ownRand runs f with the sharing scenarios' own random stream in place of
// the main one, so that their draws do not shift the rest of the traffic.
func (g *Generator) ownRand(f func()) {
	if g.srng == nil {
		g.srng = rand.New(rand.NewPCG(g.cfg.Seed, 0x5a4e_de57))
	}
	main := g.rng
	g.rng = g.srng
	defer func() { g.rng = main }()
	f()
}

// shareEvent appends a share or export by a at minute m without touching
// any random stream (its time and size come from hashes).
func (g *Generator) shareEvent(a *actor, m int64, act models.Action, st *storeDef, f *fieldSet, recs uint64, subject int32, dest string) *event {
	h := g.w.hash(uint64(a.idx), uint64(m), 0xde57)
	g.evs = append(g.evs, event{ms: m*60000 + int64(h%60000), a: a, action: act, st: st, resID: 0, subject: subject,
		convSubject: -1, records: recs, bytes: uint64(st.recBytes * float64(recs)), fields: f,
		purpose: roles[a.role].purpose, result: models.ResultAllowed, client: a.client, dest: dest})
	return &g.evs[len(g.evs)-1]
}

// share emits a's normal shares in minute m; r is its activity rate then.
func (g *Generator) share(a *actor, m int64, r float64, md mods) {
	if r <= 0 {
		return
	}
	u := g.w.hash01(uint64(a.idx), uint64(m), 0x5a1e)
	switch a.role {
	case roleSupportEU, roleSupportUS:
		if u < supportShareRate {
			dest := DestBPO
			if g.rollout(a, m) && g.w.hash01(uint64(a.idx), uint64(m), 0x7011) < 0.5 {
				dest = DestNewProcessor
			}
			g.shareEvent(a, m, models.ActionShare, stTickets, fNameEmail, 1, a.ticketSubject, dest)
		}
	case roleBilling:
		if u < billingShareRate {
			g.shareEvent(a, m, models.ActionShare, stPayments, fPayName, 1, a.ticketSubject, DestPSP)
		}
	case roleMarketing:
		mod, _, day := a.localInfo(m)
		if mod != a.shiftFor(day)+90 {
			return
		}
		size := float64(mailerRecords) * math.Exp(0.25*normFromHash(g.w.hash(uint64(a.idx), uint64(day), 0x3a11)))
		if g.campaign(a, m) {
			size *= 2.5
		}
		g.shareEvent(a, m, models.ActionExport, stCRM, fNameEmail, uint64(max(1, math.Round(size*md.recs))), -1, DestMailer)
	}
}

// rollout reports whether a's tenant is rolling out DestNewProcessor at m
// (the destination_rollout hard negative).
func (g *Generator) rollout(a *actor, m int64) bool {
	return g.rolloutFrom > 0 && a.tenant == 0 && m >= g.rolloutFrom
}

// campaign reports whether m is in a's campaign day (campaign_export).
func (g *Generator) campaign(a *actor, m int64) bool {
	return a == g.campaignActor && m >= g.campaignDay[0] && m < g.campaignDay[1]
}

// planShareNegatives plans the sharing hard negatives: an actor who never
// shared sending a case to the support desk everyone uses; the first
// tenant rolling out a new, allow-listed processor; a campaign day's
// mailing list 2.5 times the usual export.
func planShareNegatives(g *Generator) {
	w := g.w
	span := w.end - w.start
	neg := func(name string, t int, actorID string, from, to int64) {
		g.negatives = append(g.negatives, label(g, NegativePrefix+name, t, actorID, from, to))
	}
	g.ownRand(func() {
		if a := g.pickActor(0, roleFraud); a != nil {
			a.special = true
			if from, ok := firstShift(g, a, w.start+span/2); ok {
				sc := &scenario{kind: NegativePrefix + NegFirstShareKnown, a: a, from: from + 60, to: from + 180}
				sc.inject = func(g *Generator, sc *scenario, m int64) {
					if k := m - sc.from; k == 5 || k == 70 {
						subject := int32(g.w.hash(uint64(sc.a.idx), uint64(m), 0xc057) % uint64(g.cfg.Customers))
						g.shareEvent(sc.a, m, models.ActionShare, stCRM, fNameEmail, 1+uint64(k%2), subject, DestBPO)
					}
				}
				g.scenarios = append(g.scenarios, sc)
				neg(NegFirstShareKnown, 0, a.id, sc.from, sc.to)
			}
		}
		g.rolloutFrom = w.start + span*55/100
		neg(NegDestinationRollout, 0, negAllActorsOfTenant, g.rolloutFrom, min(w.end, g.rolloutFrom+2*day))
		if a := g.pickActor(0, roleMarketing); a != nil {
			a.special = true
			d := a.localDayOf(w.start + span*65/100)
			for i := range int64(7) {
				if from, _, ok := g.w.shiftWindow(a, d+i); ok && from+day <= w.end {
					g.campaignActor, g.campaignDay = a, [2]int64{from, from + day}
					neg(NegCampaignExport, 0, a.id, from, from+day)
					break
				}
			}
		}
	})
}

// destinationWords name the look-alike and personal destinations of the
// share_new_destination attack.
var destinationWords = []string{"quickdrop", "filebin", "sharebox", "docs-personal", "transfer-free", "acme-bpo-support"}

// planShareNewDestination: an agent sends a few customers' records, a
// handful at a time (no volume to see), to a destination nobody in the
// tenant ever used (a personal drive, a look-alike of the support desk).
func planShareNewDestination(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	sc, ok := g.place(t, lo, hi, 25, roleSupportEU, roleSupportUS, roleBilling)
	if !ok {
		return nil, false
	}
	dest := fmt.Sprintf("%s-%d.example", destinationWords[g.rng.IntN(len(destinationWords))], 100+g.rng.IntN(900))
	sc.n = 2 + g.rng.IntN(3)
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		k := m - sc.from
		if k%6 != 1 || int(k/6) >= sc.n {
			return
		}
		g.ownRand(func() {
			e := g.subjectEvent(sc, m, stCRM, models.ActionShare, fContact, uint64(1+g.rng.IntN(20)), -1)
			e.dest = dest
		})
	}
	return sc, true
}

// planShareVolume: an agent sends a few hundred records at a time, ten or
// so times in half an hour, to the support desk the tenant shares with
// every day (each share under the bulk limit; the hour far above the
// destination's own).
func planShareVolume(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	sc, ok := g.place(t, lo, hi, 30, roleSupportEU, roleSupportUS)
	if !ok {
		return nil, false
	}
	sc.n = 8 + g.rng.IntN(5)
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		k := m - sc.from
		if k%3 != 1 || int(k/3) >= sc.n {
			return
		}
		g.ownRand(func() {
			e := g.subjectEvent(sc, m, stCRM, models.ActionShare, fNameEmailPh, uint64(80+g.rng.IntN(100)), -1)
			e.dest = DestBPO
		})
	}
	return sc, true
}

// outsideServices name the uncontracted services of share_outside_allowlist.
var outsideServices = []string{"pdf-convert-online", "translate-anything", "quick-transfer", "sheets-share"}

// planShareOutsideAllowlist: in the first tenant (the one with an
// allow-list, sim.Destinations), an agent sends one to three customers'
// contact data once to a service the company has no contract with (a free
// converter or translator): one event, nothing a volume would show; the
// allow-list is what names it.
func planShareOutsideAllowlist(g *Generator, _ int, lo, hi int64) (sc *scenario, ok bool) {
	g.outsideRand(func() {
		if sc, ok = g.place(0, lo, hi, 20, roleSupportEU, roleSupportUS, roleBilling); !ok {
			return
		}
		dest := fmt.Sprintf("%s-%d.example", outsideServices[g.rng.IntN(len(outsideServices))], 10+g.rng.IntN(90))
		recs := uint64(1 + g.rng.IntN(3))
		sc.inject = func(g *Generator, sc *scenario, m int64) {
			if m-sc.from != 3 {
				return
			}
			g.outsideRand(func() {
				e := g.subjectEvent(sc, m, stCRM, models.ActionShare, fNameEmail, recs, -1)
				e.dest = dest
			})
		}
	})
	return sc, ok
}

// outsideRand runs f with share_outside_allowlist's own random stream in
// place of the current one: added after the other sharing scenarios, it
// leaves their draws (and so their lines) as they were.
func (g *Generator) outsideRand(f func()) {
	if g.orng == nil {
		g.orng = rand.New(rand.NewPCG(g.cfg.Seed, 0x0a11_0115))
	}
	cur := g.rng
	g.rng = g.orng
	defer func() { g.rng = cur }()
	f()
}
