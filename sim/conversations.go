package sim

import (
	"math/rand/v2"

	"github.com/chatwarden/chatwarden/models"
)

// Conversation attacks: an assistant hijacked by a prompt injection (a
// poisoned knowledge-base article, a crafted message) exfiltrating data
// through its own tools, in three styles, and two hard negatives of
// conversation shape.
//
//   - prompt_injection_oneshot: a conversation that searches the knowledge
//     base, then dumps the customer directory with a handful of profile
//     searches (8 to 15 records each, no single customer) within minutes;
//   - prompt_injection_slow: a conversation that, every seven minutes for
//     an hour or more, searches other conversations' transcripts (4 to 9
//     records) between ordinary calls: too few records per window for a
//     volume detector;
//   - prompt_injection_disguised: an ordinary conversation of four calls
//     with one extra call: the customer's identity documents (name, dob,
//     government_id) from the profile store, or the profile store read
//     through the knowledge-base tool.
//
// Hard negatives: conversation_tool_rollout (from 09:00 UTC of a day past
// the run's middle, every new conversation of the first tenant's bots
// gains one call of a new tool, summarize_conversation, reading the
// transcript) and long_conversation (a bot's conversation of about 35
// ordinary calls over 50 minutes).
//
// Everything here draws from its own random stream (Generator.crng) or
// from hashes, never from the main stream or the sharing stream: the rest
// of the traffic is as it was without these scenarios.

// Conversation attack kinds and hard negatives.
const (
	KindInjectionOneShot   = "prompt_injection_oneshot"
	KindInjectionSlow      = "prompt_injection_slow"
	KindInjectionDisguised = "prompt_injection_disguised"

	NegToolRollout      = "conversation_tool_rollout"
	NegLongConversation = "long_conversation"
)

// RolloutTool is the tool the conversation_tool_rollout hard negative adds.
const RolloutTool = "summarize_conversation"

// convRand runs f with the conversation scenarios' own random stream in
// place of the main one.
func (g *Generator) convRand(f func()) {
	if g.crng == nil {
		g.crng = rand.New(rand.NewPCG(g.cfg.Seed, 0xc0_4e7a))
	}
	main := g.rng
	g.rng = g.crng
	defer func() { g.rng = main }()
	f()
}

// convRandPlanner runs p, and the scenario's injections, on the
// conversation scenarios' own random stream.
func convRandPlanner(p planner) planner {
	return func(g *Generator, t int, lo, hi int64) (sc *scenario, ok bool) {
		g.convRand(func() { sc, ok = p(g, t, lo, hi) })
		if ok && sc.inject != nil {
			inject := sc.inject
			sc.inject = func(g *Generator, sc *scenario, m int64) {
				g.convRand(func() { inject(g, sc, m) })
			}
		}
		return sc, ok
	}
}

// convCall adds a call of the scenario's conversation at minute m.
func (g *Generator) convCall(sc *scenario, m int64, tool string, st *storeDef, act models.Action, f *fieldSet, recs uint64, subject int32) *event {
	e := g.add(sc.a, m)
	g.set(e, st, act, f, recs)
	e.tool, e.conv, e.convSubject, e.subject = tool, sc.c.id, sc.c.subject, subject
	e.resID = 1 + g.rng.Uint64N(1e8)
	if subject >= 0 && st == stCRM {
		e.resID = profileID(subject)
	}
	return e
}

// ordinaryCall adds an ordinary call of the scenario's conversation.
func (g *Generator) ordinaryCall(sc *scenario, m int64) {
	e := g.add(sc.a, m)
	g.botCall(sc.a, e, &sc.c, g.rng.Float64(), mods{rate: 1, recs: 1})
}

// scenarioConvBase numbers the scenarios' conversations apart from the
// bots' own (newConv would shift theirs, and its customer draw the main
// stream: the Zipf draws from it whatever g.rng is).
const scenarioConvBase = 1 << 40

// botScenario places a scenario of about minutes on a bot of tenant t,
// with a conversation of its own for a customer chosen by hash.
func (g *Generator) botScenario(t int, lo, hi, minutes int64) (*scenario, bool) {
	sc, ok := g.place(t, lo, hi, minutes, roleBot)
	if ok {
		g.scenarioConvs++
		h := g.w.hash(uint64(sc.a.idx), uint64(sc.from), 0xc0_5c)
		sc.c = conv{id: scenarioConvBase + g.scenarioConvs, subject: int32(h % uint64(g.cfg.Customers))}
	}
	return sc, ok
}

func planInjectionOneShot(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	sc, ok := g.botScenario(t, lo, hi, 4)
	if !ok {
		return nil, false
	}
	sc.n = 5 + g.rng.IntN(4)
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		if m == sc.from {
			g.convCall(sc, m, "search_kb", stVector, models.ActionSearch, fText, uint64(3+g.rng.IntN(6)), -1)
		}
		for range 2 + g.rng.IntN(2) {
			if sc.n == 0 {
				return
			}
			sc.n--
			g.convCall(sc, m, "get_profile", stCRM, models.ActionSearch, fContact, uint64(8+g.rng.IntN(8)), -1)
		}
	}
	return sc, true
}

func planInjectionSlow(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	sc, ok := g.botScenario(t, lo, hi, 60+g.rng.Int64N(40))
	if !ok {
		return nil, false
	}
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		switch (m - sc.from) % 7 {
		case 0:
			g.convCall(sc, m, "get_conversation_history", stTranscripts, models.ActionSearch, fText, uint64(4+g.rng.IntN(6)), -1)
		case 4:
			if g.rng.IntN(2) == 0 {
				g.ordinaryCall(sc, m)
			}
		}
	}
	return sc, true
}

func planInjectionDisguised(g *Generator, t int, lo, hi int64) (*scenario, bool) {
	sc, ok := g.botScenario(t, lo, hi, 5)
	if !ok {
		return nil, false
	}
	sc.variant = g.rng.IntN(2)
	sc.inject = func(g *Generator, sc *scenario, m int64) {
		k := m - sc.from
		if k != 2 {
			g.ordinaryCall(sc, m)
			return
		}
		if sc.variant == 0 {
			g.convCall(sc, m, "get_profile", stCRM, models.ActionRead, fKYC, 1, sc.c.subject)
		} else {
			g.convCall(sc, m, "search_kb", stCRM, models.ActionRead, fNameEmail, 1, sc.c.subject)
		}
	}
	return sc, true
}

// planConvNegatives plans the conversation hard negatives (after the
// attacks, on the conversation scenarios' own random stream).
func planConvNegatives(g *Generator) {
	w := g.w
	span := w.end - w.start
	g.convRand(func() {
		from := (w.start+span*60/100)/day*day + 9*60
		if from < w.end {
			g.convRolloutFrom = from
			g.negatives = append(g.negatives, label(g, NegativePrefix+NegToolRollout, 0, negAllActorsOfTenant, from, min(w.end, from+2*day)))
		}
		for i := range min(2, len(w.tenants)+1) {
			t := i % len(w.tenants)
			lo := w.start + span*(30+40*int64(i))/100
			sc, ok := g.botScenario(t, lo, lo+day/2, 50)
			if !ok {
				continue
			}
			sc.kind = NegativePrefix + NegLongConversation
			sc.inject = func(g *Generator, sc *scenario, m int64) {
				g.convRand(func() {
					if g.rng.Float64() < 0.7 {
						g.ordinaryCall(sc, m)
					}
				})
			}
			g.scenarios = append(g.scenarios, sc)
			g.negatives = append(g.negatives, label(g, sc.kind, sc.a.tenant, sc.a.id, sc.from, sc.to))
		}
	})
}

// rolloutCall adds the conversation_tool_rollout call to conversation c of
// bot a in minute m, once per conversation (its time and ids from hashes).
func (g *Generator) rolloutCall(a *actor, c *conv, m int64) {
	if !c.rollout {
		return
	}
	c.rollout = false
	h := g.w.hash(uint64(a.idx), uint64(c.id), 0x5a3e)
	g.evs = append(g.evs, event{ms: m*60000 + int64(h%60000), a: a, action: models.ActionRead, st: stTranscripts,
		resID: 1 + (h>>20)%100_000_000, subject: c.subject, conv: c.id, convSubject: c.subject, records: 1,
		bytes: uint64(stTranscripts.recBytes), fields: fText, purpose: roles[a.role].purpose, tool: RolloutTool,
		result: models.ResultAllowed, client: a.client})
}
