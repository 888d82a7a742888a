package rota

import (
	"bufio"
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// TestConversationScenarios: the prompt-injection attacks are in the
// virtual agents' traffic with their shapes (the one-shot's profile
// searches within minutes, the slow one's transcript searches over an
// hour, the disguised one's one odd call among three ordinary ones); the
// rollout adds its tool once to every conversation of the first tenant's
// virtual agents from its start and to none before or elsewhere; the long
// conversation has 25 calls or more.
func TestConversationScenarios(t *testing.T) {
	out, r := generate(t, Config{Seed: 3, Start: time.Date(2026, 10, 19, 0, 0, 0, 0, time.UTC), Actors: 60,
		Duration: 8 * 24 * time.Hour, Attacks: true, HardNegatives: true})
	never := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	lim := models.Limits{MaxFuture: 1 << 62, MaxAge: 1 << 62}
	convs := map[string][]models.Event{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if models.SchemaOf(sc.Bytes()) == models.SchemaConsent {
			continue
		}
		e, err := models.DecodeAccess(sc.Bytes(), never, lim)
		if err != nil {
			t.Fatalf("access line: %v", err)
		}
		if e.Tool != "" {
			convs[e.Conversation.ID] = append(convs[e.Conversation.ID], e)
		}
	}
	count := func(evs []models.Event, tool string, act models.Action, store string) int {
		n := 0
		for _, e := range evs {
			if e.Tool == tool && e.Action == act && e.Store == store {
				n++
			}
		}
		return n
	}
	of := func(actor string, from, to time.Time) [][]models.Event {
		var out [][]models.Event
		for _, evs := range convs {
			if evs[0].Actor.ID == actor && !evs[0].TS.Before(from) && !evs[0].TS.After(to) {
				out = append(out, evs)
			}
		}
		return out
	}
	kinds := map[string]int{}
	for _, l := range r.Labels {
		var want func([]models.Event) bool
		switch l.Kind {
		case KindInjectionOneShot:
			want = func(evs []models.Event) bool {
				return count(evs, "get_customer", models.ActionSearch, "crm") >= 5 && evs[len(evs)-1].TS.Sub(evs[0].TS) < 4*time.Minute
			}
		case KindInjectionSlow:
			want = func(evs []models.Event) bool {
				return count(evs, "kb_search", models.ActionSearch, "transcripts") >= 8 && evs[len(evs)-1].TS.Sub(evs[0].TS) >= 50*time.Minute
			}
		case KindInjectionDisguised:
			want = func(evs []models.Event) bool {
				return len(evs) == 4 && count(evs, "get_customer", models.ActionRead, "crm")+count(evs, "order_status", models.ActionRead, "payments") >= 1 &&
					slices.ContainsFunc(evs, func(e models.Event) bool {
						return e.Store == "payments" || slices.Contains(e.Fields, models.CategoryGovernmentID)
					})
			}
		default:
			continue
		}
		kinds[l.Kind]++
		if !slices.ContainsFunc(of(l.ActorID, l.Start, l.End), want) {
			t.Errorf("label %s %s on %s: no conversation of its shape", l.ID, l.Kind, l.ActorID)
		}
	}
	for _, k := range []string{KindInjectionOneShot, KindInjectionSlow, KindInjectionDisguised} {
		if kinds[k] < 2 {
			t.Errorf("%s: %d labels, want at least 2", k, kinds[k])
		}
	}
	var rollout *Label
	long := 0
	for i, l := range r.Negatives {
		switch l.Kind {
		case NegativePrefix + NegToolRollout:
			rollout = &r.Negatives[i]
		case NegativePrefix + NegLongConversation:
			long++
			if !slices.ContainsFunc(of(l.ActorID, l.Start, l.End), func(evs []models.Event) bool { return len(evs) >= 25 }) {
				t.Errorf("long conversation %s on %s: none with 25 calls or more", l.ID, l.ActorID)
			}
		}
	}
	if rollout == nil || long != 2 {
		t.Fatalf("rollout %v, %d long conversations: want one and 2", rollout, long)
	}
	with, after := 0, 0
	for id, evs := range convs {
		n := count(evs, RolloutTool, models.ActionRead, "transcripts")
		scenario := slices.ContainsFunc([]string{"cv-i-", "cv-l-", "cv-x-", "cv-m-"}, func(p string) bool { return strings.HasPrefix(id, p) })
		inRollout := evs[0].Tenant == rollout.Tenant && !evs[0].TS.Before(rollout.Start) && strings.HasPrefix(id, "cv-") && !scenario
		switch {
		case inRollout:
			after++
			if n == 1 {
				with++
			}
		case n > 0:
			t.Errorf("conversation %s (%s, %s) has the new tool outside the rollout", id, evs[0].Tenant, evs[0].TS)
		}
	}
	if after == 0 || with < after*95/100 {
		t.Errorf("rollout: %d of %d conversations have the new tool once", with, after)
	}
}
