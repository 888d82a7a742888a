package rota

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// Third-party sharing (access.v1's destination on share and export), in
// this model's own terms:
//
//   - an agent passes about one contact in twenty to the parcel carrier
//     (a delivery claim: one order record for the contact's customer);
//   - a virtual agent hands about one conversation in thirty to the
//     translation service (its transcript);
//   - the sync service exports the hour's changed profiles to the data
//     warehouse every hour, more by day than by night;
//   - the campaign manager exports its segment to the mailing house once a
//     working day.
//
// Every decision here is a hash of the actor and the time, never a draw
// from a stream the rest of the traffic uses: the lines rota produced
// before sharing are unchanged, with the shares added between them.

// The destinations of the model's platform.
const (
	DestCarrier      = "parcelco.example"
	DestTranslation  = "lingua-translate.example"
	DestWarehouse    = "datawarehouse.example"
	DestMailingHouse = "mailhouse.example"
	// DestNewTranslation is the translation service the first tenant rolls
	// out in the destination_rollout hard negative.
	DestNewTranslation = "polyglot-ai.example"
)

// Destinations is the allow-list a deployment configures for the first
// tenant (the eval matrix does): the contracted processors, the one rolled
// out during the run included. Other tenants have no list.
var Destinations = []string{DestCarrier, DestTranslation, DestWarehouse, DestMailingHouse, DestNewTranslation}

// Sharing attack kinds (the first two and the last are package sim's
// strings too) and hard negatives.
const (
	KindShareNewDestination   = "share_new_destination"
	KindShareOutsideAllowlist = "share_outside_allowlist"
	KindShareVolume           = "share_volume"

	NegDestinationRollout = "destination_rollout"
	NegMonthEndShare      = "month_end_share"
)

// Rates of the normal shares.
const (
	carrierShareRate     = 0.05 // per agent contact
	translationShareRate = 0.03 // per virtual-agent conversation
	rolloutShare         = 0.5  // of translations sent to the new service during the roll-out
)

// unit is a uniform number in [0, 1) from the run's hash of vals.
func (w *world) unit(vals ...uint64) float64 { return float64(w.hash(vals...)>>11) / (1 << 53) }

// normal is a standard normal number from the run's hash of vals.
func (w *world) normal(vals ...uint64) float64 {
	u1 := max(w.unit(append(vals, 1)...), 1e-12)
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*w.unit(append(vals, 2)...))
}

// sharing is the state of the sharing scenarios of one run.
type sharing struct {
	rolloutFrom, rolloutTo time.Time // tenant 0's roll-out of DestNewTranslation
	monthEnd               []monthEnd
}

// monthEnd is one tenant's month-end close: its reporting service sends
// the data warehouse extra exports in [from, to).
type monthEnd struct {
	a        *actor
	from, to time.Time
}

func (g *generator) share(a *actor, act models.Action, store, resType, subject string, records uint64, fields []string, dest string) *models.Event {
	e := g.event(a, act, store, resType, subject, records, fields)
	e.Destination = dest
	return e
}

// carrierShare is an agent's delivery claim after the contact with
// customer c that started at t (handled in handle), if any.
func (g *generator) carrierShare(a *actor, t time.Time, handle time.Duration, c string, emit func(rec)) {
	if !a.shares || g.w.unit(uint64(a.idx), uint64(t.UnixNano()), 0xca11) >= carrierShareRate {
		return
	}
	e := g.share(a, models.ActionShare, "orders", "order", c, 1, fOrder, DestCarrier)
	e.Bytes = 900
	emit(rec{ts: t.Add(handle * 9 / 10), ev: e})
}

// translationShare is a virtual agent's hand-off of conversation conv,
// started at at, to the translation service, if any.
func (g *generator) translationShare(a *actor, at time.Time, conv models.Conversation, emit func(rec)) {
	w := g.w
	if w.unit(uint64(a.idx), uint64(at.UnixNano()), 0x7a45) >= translationShareRate {
		return
	}
	dest := DestTranslation
	if a.tenant == 0 && !at.Before(g.sharing.rolloutFrom) && at.Before(g.sharing.rolloutTo) && w.unit(uint64(a.idx), uint64(at.UnixNano()), 0x7011) < rolloutShare {
		dest = DestNewTranslation
	}
	e := g.share(a, models.ActionShare, "transcripts", "transcript", conv.SubjectID, 1, fText, dest)
	e.Tool, e.Conversation = "handoff_translation", conv
	emit(rec{ts: at.Add(2 * time.Minute), ev: e})
}

// warehouseRecords is the size of the sync service's warehouse export for
// the hour starting at h: about 40 profiles per 50 actors of the tenant at
// the busiest hour, a fifth of that at night.
func (g *generator) warehouseRecords(a *actor, h time.Time) float64 {
	w := g.w
	scale := float64(len(w.actors)) / float64(len(w.tenants)) / 50 * w.cfg.RateScale
	curve := channels[0].curve[h.In(w.locs[a.tenant]).Hour()]
	return 40 * scale * (0.2 + curve) * math.Exp(0.3*w.normal(uint64(a.idx), uint64(h.Unix()), 0xda7a))
}

// warehouseExports are the sync service's hourly exports in [from, to).
func (g *generator) warehouseExports(a *actor, from, to time.Time, emit func(rec)) {
	for h := from.Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		e := g.share(a, models.ActionExport, "crm", "customer_profile", "", uint64(max(1, math.Round(g.warehouseRecords(a, h)))), fProfile, DestWarehouse)
		emit(rec{ts: h.Add(7*time.Minute + time.Duration(a.idx%5)*time.Minute), ev: e})
	}
	for _, me := range g.sharing.monthEnd {
		if me.a.tenant != a.tenant {
			continue
		}
		for h := me.from; h.Before(me.to); h = h.Add(time.Hour) {
			if h.Before(from) || !h.Before(to) {
				continue
			}
			// the close: the month's reconciled profiles, 2.5 times the
			// hour's usual export, from the reporting service
			n := 2.5 * g.warehouseRecords(a, h)
			e := g.share(me.a, models.ActionExport, "crm", "customer_profile", "", uint64(max(1, math.Round(n))), fProfile, DestWarehouse)
			emit(rec{ts: h.Add(35 * time.Minute), ev: e})
		}
	}
}

// mailingExport is the campaign manager's daily export of its segment to
// the mailing house, in the shift [from, to).
func (g *generator) mailingExport(a *actor, from time.Time, emit func(rec)) {
	n := 300 * math.Exp(0.25*g.w.normal(uint64(a.idx), uint64(from.Unix()), 0x3a11))
	e := g.share(a, models.ActionExport, "crm", "customer_profile", "", uint64(max(1, math.Round(n))), fSegment, DestMailingHouse)
	e.Purpose = "marketing"
	emit(rec{ts: from.Add(5*time.Hour + 10*time.Minute), ev: e})
}

// planShareNegatives plans the sharing hard negatives (after the attacks,
// so that the attacks' draws are those of the traffic without sharing): the
// first tenant rolls out a new, allow-listed translation service to all
// its virtual agents for two days from 55% of the span; each tenant's
// reporting service closes the month with three hourly exports of 2.5
// times the sync's usual size to the data warehouse it never sent to (a
// destination the tenant uses every hour), at 18:00 local time on a day
// at about 65% of the span. The spans are shorter than a month, so the
// "month end" is a day in the span, not a calendar month's last day.
func (g *generator) planShareNegatives() {
	w := g.w
	span := w.end.Sub(w.start)
	neg := func(name string, t int, id string, from, to time.Time) {
		g.res.Negatives = append(g.res.Negatives, Label{Kind: NegativePrefix + name, Tenant: w.tenants[t].Name, ActorID: id, Start: from.UTC(), End: to.UTC()})
	}
	g.sharing.rolloutFrom = w.start.Add(span * 55 / 100).Truncate(time.Hour)
	g.sharing.rolloutTo = minT(w.end, g.sharing.rolloutFrom.Add(48*time.Hour))
	neg(NegDestinationRollout, 0, "*", g.sharing.rolloutFrom, g.sharing.rolloutTo)
	for _, a := range w.actors {
		if a.kind != kReports {
			continue
		}
		mid := localMidnight(w.start.Add(span*65/100), w.locs[a.tenant])
		from := time.Date(mid.Year(), mid.Month(), mid.Day(), 18, 0, 0, 0, w.locs[a.tenant])
		if to := from.Add(3 * time.Hour); to.Before(w.end) {
			g.sharing.monthEnd = append(g.sharing.monthEnd, monthEnd{a: a, from: from, to: to})
			neg(NegMonthEndShare, a.tenant, a.id, from, to)
		}
	}
}

func minT(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// destinationWords name the never-seen destinations of share_new_destination
// (personal drives, look-alikes of the carrier).
var destinationWords = []string{"mydrive", "dropzone", "parcelco-claims", "fileshare-free", "box-personal", "sendit"}

// planShareNew: an agent sends a few customers' profiles, a handful at a
// time, to a destination nobody in the tenant ever used.
func planShareNew(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	d := 30 * time.Minute
	a, from, ok := g.place(rng, t, lo, hi, d, kAgent)
	if !ok {
		return nil, lo, lo, false
	}
	dest := fmt.Sprintf("%s-%d.example", destinationWords[rng.IntN(len(destinationWords))], 100+rng.IntN(900))
	for k := range 2 + rng.IntN(3) {
		n := 1 + rng.IntN(20)
		subject := ""
		if n == 1 {
			subject = g.customer(a.tenant, rng, from)
		}
		e := g.share(a, models.ActionShare, "crm", "customer_profile", subject, uint64(n), fProfile, dest)
		g.extra = append(g.extra, rec{ts: from.Add(time.Duration(1+6*k) * time.Minute), ev: e})
	}
	return a, from, from.Add(d), true
}

// outsideWords name the uncontracted services of share_outside_allowlist.
var outsideWords = []string{"pdf-convert-online", "translate-anything", "quick-transfer", "sheets-share"}

// planShareOutside: in the first tenant (the one with an allow-list), an
// agent sends one customer's order history once to a service the company
// has no contract with (a free converter or translator): one event, one
// customer, nothing a volume would show.
func planShareOutside(g *generator, rng *rand.Rand, _ int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	d := 20 * time.Minute
	// an agent of the first tenant (place would fall back to another
	// tenant's, which has no list to be outside of)
	var c []*actor
	for pass := 0; pass < 2 && len(c) == 0; pass++ {
		for _, a := range g.w.actors {
			if a.kind == kAgent && a.tenant == 0 && !a.special() && (pass == 1 || !a.picked) {
				c = append(c, a)
			}
		}
	}
	if len(c) == 0 {
		return nil, lo, lo, false
	}
	a := c[rng.IntN(len(c))]
	from, ok := g.during(rng, a, lo, hi, d)
	if !ok {
		return nil, lo, lo, false
	}
	dest := fmt.Sprintf("%s-%d.example", outsideWords[rng.IntN(len(outsideWords))], 10+rng.IntN(90))
	e := g.share(a, models.ActionShare, "orders", "order", g.customer(a.tenant, rng, from), uint64(1+rng.IntN(3)), fOrder, dest)
	g.extra = append(g.extra, rec{ts: from.Add(3 * time.Minute), ev: e})
	return a, from, from.Add(d), true
}

// planShareVolume: an agent sends the carrier its tenant uses all day six
// to ten order lists of 100-400 records in forty minutes (each under the
// bulk limit; the hour far above the carrier's own).
func planShareVolume(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	d := 40 * time.Minute
	a, from, ok := g.place(rng, t, lo, hi, d, kAgent)
	if !ok {
		return nil, lo, lo, false
	}
	for k := range 6 + rng.IntN(5) {
		e := g.share(a, models.ActionShare, "orders", "order", "", uint64(100+rng.IntN(300)), fOrder, DestCarrier)
		g.extra = append(g.extra, rec{ts: from.Add(time.Duration(1+4*k) * time.Minute), ev: e})
	}
	return a, from, from.Add(d), true
}
