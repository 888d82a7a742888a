package rota

import (
	"math/rand/v2"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// Conversation attacks on the virtual agents: a prompt injection makes the
// assistant exfiltrate data through its own tools (package sim has the
// same kinds; see sim/conversations.go):
//
//   - prompt_injection_oneshot: a knowledge-base search, then five to eight
//     profile searches of 8 to 15 records each within three minutes;
//   - prompt_injection_slow: every seven minutes for an hour or more, the
//     knowledge-base tool searching the transcripts store (4 to 9 records),
//     an ordinary call now and then;
//   - prompt_injection_disguised: an ordinary conversation of three calls
//     with one extra call: the customer's identity documents from the
//     profile store, or the payment methods through the order tool.
//
// Hard negatives: conversation_tool_rollout (from 09:00 local of a day past
// the run's middle, every conversation of the first tenant's virtual
// agents has one more call, summarize_conversation reading the
// transcript; its time and presence from hashes, so the rest of the traffic
// draws as before) and long_conversation (one virtual agent per tenant, up
// to two: a conversation of about 35 ordinary calls over 50 minutes).

// Conversation attack kinds and hard negatives (the same strings as sim's).
const (
	KindInjectionOneShot   = "prompt_injection_oneshot"
	KindInjectionSlow      = "prompt_injection_slow"
	KindInjectionDisguised = "prompt_injection_disguised"

	NegToolRollout      = "conversation_tool_rollout"
	NegLongConversation = "long_conversation"
)

// RolloutTool is the tool conversation_tool_rollout adds.
const RolloutTool = "summarize_conversation"

var (
	fContact = []string{models.CategoryName, models.CategoryEmail, models.CategoryPhone, models.CategoryAddress}
	fKYC     = []string{models.CategoryName, models.CategoryDOB, models.CategoryGovernmentID}
	fPay     = []string{models.CategoryPayment}
)

// ordinaryCall is one ordinary call of a virtual agent's conversation.
func (g *generator) ordinaryCall(a *actor, rng *rand.Rand, c string) *models.Event {
	switch rng.IntN(4) {
	case 0:
		e := g.event(a, models.ActionRead, "crm", "customer_profile", c, 1, fSegment)
		e.Tool = "get_customer"
		return e
	case 1, 2:
		e := g.event(a, models.ActionRead, "orders", "order", c, uint64(1+rng.IntN(3)), fOrder)
		e.Tool = "order_status"
		return e
	default:
		e := g.event(a, models.ActionSearch, "vector_index", "kb_article", "", uint64(3+rng.IntN(5)), nil)
		e.Tool = "kb_search"
		return e
	}
}

// injection places a conversation of d on a virtual agent of tenant t and
// calls add for it; ok is false without a virtual agent.
func (g *generator) injection(rng *rand.Rand, t int, lo, hi time.Time, d time.Duration,
	add func(a *actor, from time.Time, conv models.Conversation, emit func(time.Time, *models.Event))) (*actor, time.Time, time.Time, bool) {
	a := g.bot(rng, t)
	if a == nil || hi.Sub(lo) <= d {
		return nil, lo, lo, false
	}
	from := lo.Add(time.Duration(rng.Int64N(int64(hi.Sub(lo) - d)))).Truncate(time.Second)
	conv := models.Conversation{ID: "cv-i-" + convID(rng), SubjectID: g.customer(a.tenant, rng, from)}
	add(a, from, conv, func(at time.Time, e *models.Event) {
		e.Conversation = conv
		g.extra = append(g.extra, rec{ts: at, ev: e})
	})
	return a, from, from.Add(d), true
}

func planInjectionOneShot(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	return g.injection(rng, t, lo, hi, 3*time.Minute, func(a *actor, from time.Time, _ models.Conversation, emit func(time.Time, *models.Event)) {
		e := g.event(a, models.ActionSearch, "vector_index", "kb_article", "", uint64(3+rng.IntN(5)), nil)
		e.Tool = "kb_search"
		emit(from, e)
		n := 5 + rng.IntN(4)
		for k := range n {
			e := g.event(a, models.ActionSearch, "crm", "customer_profile", "", uint64(8+rng.IntN(8)), fContact)
			e.Tool = "get_customer"
			emit(from.Add(time.Duration(k+1)*150*time.Second/time.Duration(n+1)), e)
		}
	})
}

func planInjectionSlow(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	d := time.Duration(60+rng.IntN(40)) * time.Minute
	return g.injection(rng, t, lo, hi, d, func(a *actor, from time.Time, conv models.Conversation, emit func(time.Time, *models.Event)) {
		for at := from; at.Before(from.Add(d)); at = at.Add(7 * time.Minute) {
			e := g.event(a, models.ActionSearch, "transcripts", "transcript", "", uint64(4+rng.IntN(6)), fText)
			e.Tool = "kb_search"
			emit(at, e)
			if rng.IntN(2) == 0 {
				emit(at.Add(4*time.Minute), g.ordinaryCall(a, rng, conv.SubjectID))
			}
		}
	})
}

func planInjectionDisguised(g *generator, rng *rand.Rand, t int, lo, hi time.Time) (*actor, time.Time, time.Time, bool) {
	return g.injection(rng, t, lo, hi, 3*time.Minute, func(a *actor, from time.Time, conv models.Conversation, emit func(time.Time, *models.Event)) {
		at := from
		for k := range 4 {
			var e *models.Event
			switch {
			case k != 2:
				e = g.ordinaryCall(a, rng, conv.SubjectID)
			case rng.IntN(2) == 0:
				e = g.event(a, models.ActionRead, "crm", "customer_profile", conv.SubjectID, 1, fKYC)
				e.Tool = "get_customer"
			default:
				e = g.event(a, models.ActionRead, "payments", "payment_method", conv.SubjectID, 1, fPay)
				e.Tool = "order_status"
			}
			emit(at, e)
			at = at.Add(time.Duration(10+rng.IntN(40)) * time.Second)
		}
	})
}

// planConvNegatives schedules the conversation hard negatives.
func (g *generator) planConvNegatives() {
	w := g.w
	span := w.end.Sub(w.start)
	rng := w.rng(0xc04e)
	neg := func(name string, t int, id string, from, to time.Time) {
		g.res.Negatives = append(g.res.Negatives, Label{Kind: NegativePrefix + name, Tenant: w.tenants[t].Name, ActorID: id, Start: from.UTC(), End: to.UTC()})
	}
	mid := localMidnight(w.start.Add(span*6/10), w.locs[0])
	from := time.Date(mid.Year(), mid.Month(), mid.Day(), 9, 0, 0, 0, w.locs[0])
	if from.Before(w.end) {
		g.convRolloutFrom = from
		neg(NegToolRollout, 0, "*", from, minT(w.end, from.Add(48*time.Hour)))
	}
	for i := range min(2, len(w.tenants)) {
		a := g.bot(rng, i)
		if a == nil {
			continue
		}
		start := w.start.Add(span * time.Duration(30+40*i) / 100).Add(time.Duration(rng.IntN(12*60)) * time.Minute).Truncate(time.Second)
		if !start.Add(time.Hour).Before(w.end) {
			continue
		}
		conv := models.Conversation{ID: "cv-l-" + convID(rng), SubjectID: g.customer(a.tenant, rng, start)}
		for k := range 50 {
			if rng.Float64() >= 0.7 {
				continue
			}
			e := g.ordinaryCall(a, rng, conv.SubjectID)
			e.Conversation = conv
			g.extra = append(g.extra, rec{ts: start.Add(time.Duration(k) * time.Minute), ev: e})
		}
		neg(NegLongConversation, a.tenant, a.id, start, start.Add(50*time.Minute))
	}
}

// rolloutCall emits conversation_tool_rollout's call in conversation conv
// of virtual agent a, started at at, when the rollout covers it.
func (g *generator) rolloutCall(a *actor, at time.Time, conv models.Conversation, emit func(rec)) {
	if g.convRolloutFrom.IsZero() || a.tenant != 0 || at.Before(g.convRolloutFrom) {
		return
	}
	e := g.event(a, models.ActionRead, "transcripts", "transcript", conv.SubjectID, 1, fText)
	e.Tool, e.Conversation = RolloutTool, conv
	off := time.Duration(g.w.unit(uint64(a.idx), uint64(at.UnixNano()), 0x5a3e) * float64(90*time.Second))
	emit(rec{ts: at.Add(off), ev: e})
}
