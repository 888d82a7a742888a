package sim

import (
	"slices"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// TestConversationScenarios: each prompt-injection style and conversation
// hard negative is in the traffic with its shape: the one-shot's profile
// searches, the slow one's transcript searches over an hour, the disguised
// one's single odd call among ordinary ones, the rollout's new tool once in
// every new conversation of the first tenant's bots, and the long
// conversation's ordinary calls.
func TestConversationScenarios(t *testing.T) {
	cfg := Config{Seed: 5, Duration: 6 * 24 * time.Hour, Actors: 60,
		Attacks: []string{KindInjectionOneShot, KindInjectionSlow, KindInjectionDisguised}, HardNegatives: true}
	type call struct {
		ts    time.Time
		actor string
		tok   string
	}
	convs := map[string][]call{}
	tenantOf := map[string]string{}
	g := run(t, cfg, func(_ *Generator, b *Batch) {
		for i := range b.Lines {
			v := b.Value(i)
			if models.SchemaOf(v) != models.SchemaAccess {
				continue
			}
			e, err := models.DecodeAccess(v, b.Minute, models.Limits{MaxFuture: 1000 * time.Hour, MaxAge: 1 << 62})
			if err != nil {
				t.Fatalf("%v: %s", err, v)
			}
			if e.Tool == "" {
				continue
			}
			id := e.Conversation.ID
			convs[id] = append(convs[id], call{e.TS, e.Actor.ID, e.Tool + " " + string(e.Action) + " " + e.Store})
			tenantOf[id] = e.Tenant
		}
	})
	// the conversations of actor with a call in [from, to)
	during := func(actor string, from, to time.Time) [][]call {
		var out [][]call
		for _, cs := range convs {
			if cs[0].actor == actor && slices.ContainsFunc(cs, func(c call) bool { return !c.ts.Before(from) && c.ts.Before(to) }) {
				out = append(out, cs)
			}
		}
		return out
	}
	count := func(cs []call, tok string) int {
		n := 0
		for _, c := range cs {
			if c.tok == tok {
				n++
			}
		}
		return n
	}
	kinds := map[string]int{}
	for _, l := range g.Labels() {
		kinds[l.Kind]++
		ok := slices.ContainsFunc(during(l.ActorID, l.Start, l.End.Add(time.Minute)), func(cs []call) bool {
			switch l.Kind {
			case KindInjectionOneShot:
				return count(cs, "get_profile search crm") >= 5 && cs[len(cs)-1].ts.Sub(cs[0].ts) < 5*time.Minute
			case KindInjectionSlow:
				return count(cs, "get_conversation_history search transcripts") >= 8 && cs[len(cs)-1].ts.Sub(cs[0].ts) >= 50*time.Minute
			case KindInjectionDisguised:
				odd := count(cs, "get_profile read crm") + count(cs, "search_kb read crm")
				return len(cs) == 5 && odd >= 1
			}
			return false
		})
		if !ok {
			t.Errorf("label %s %s on %s: no conversation of its shape", l.ID, l.Kind, l.ActorID)
		}
	}
	for _, k := range cfg.Attacks {
		if kinds[k] < 3 {
			t.Errorf("%s: %d labels, want at least 3", k, kinds[k])
		}
	}
	var rollout, long []Label
	for _, l := range g.Negatives() {
		switch l.Kind {
		case NegativePrefix + NegToolRollout:
			rollout = append(rollout, l)
		case NegativePrefix + NegLongConversation:
			long = append(long, l)
		}
	}
	if len(rollout) != 1 || len(long) != 2 {
		t.Fatalf("%d rollout and %d long-conversation negatives, want 1 and 2", len(rollout), len(long))
	}
	for _, l := range long {
		if !slices.ContainsFunc(during(l.ActorID, l.Start, l.End), func(cs []call) bool { return len(cs) >= 25 }) {
			t.Errorf("long conversation %s on %s: none with 25 calls or more", l.ID, l.ActorID)
		}
	}
	from := rollout[0].Start
	with, started := 0, 0
	for id, cs := range convs {
		n := count(cs, RolloutTool+" read transcripts")
		if tenantOf[id] != rollout[0].Tenant || cs[0].ts.Before(from.Add(time.Minute)) {
			if n > 0 && cs[0].ts.Before(from) {
				t.Errorf("conversation %s started before the rollout has the new tool", id)
			}
			continue
		}
		started++
		if n == 1 {
			with++
		}
	}
	if started == 0 || float64(with) < 0.95*float64(started) {
		t.Errorf("rollout: %d of %d conversations started after it have the new tool once", with, started)
	}
}
