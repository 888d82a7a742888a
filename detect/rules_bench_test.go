package detect

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// benchRuleEvents is four simulated days of chat assistants' tool calls
// (40 bots, conversations of 2 to 9 calls about one customer, now and
// then another's), in time order, with the ids and categories a replay
// holds: what the event rules and conversation_shape see per event.
func benchRuleEvents(n int) []models.Event {
	r := rand.New(rand.NewPCG(7, 11))
	type call struct {
		tool, store string
		action      models.Action
		fields      []string
	}
	calls := []call{
		{"get_profile", "crm", models.ActionRead, []string{"name", "email"}},
		{"lookup_order", "orders", models.ActionRead, []string{"order_history"}},
		{"create_ticket", "tickets", models.ActionUpdate, []string{"name", "email", "transcript_text"}},
		{"get_transcript", "transcripts", models.ActionRead, []string{"transcript_text"}},
		{"list_payment_methods", "payments", models.ActionRead, []string{"payment_method", "name"}},
		{"update_address", "crm", models.ActionUpdate, []string{"address", "name"}},
	}
	start := time.Date(2026, 10, 19, 0, 0, 0, 0, time.UTC)
	step := 4 * 24 * time.Hour / time.Duration(n)
	type open struct {
		id, bot, cust string
		left          int
	}
	var convs []*open
	evs := make([]models.Event, 0, n)
	for i := range n {
		if len(convs) < 60 || r.IntN(8) == 0 {
			convs = append(convs, &open{id: fmt.Sprintf("conv-%d", i), bot: fmt.Sprintf("assistant-%04d", r.IntN(40)),
				cust: fmt.Sprintf("p1%032x", r.IntN(40000)), left: 2 + r.IntN(8)})
		}
		j := r.IntN(len(convs))
		c := convs[j]
		k := r.IntN(len(calls))
		if r.IntN(3) > 0 {
			k = r.IntN(3) // most calls are the first three tools
		}
		cl := calls[k]
		subj := c.cust
		if r.IntN(40) == 0 {
			subj = fmt.Sprintf("p1%032x", r.IntN(40000))
		}
		evs = append(evs, models.Event{EventID: fmt.Sprintf("sim1-%d", i), TS: start.Add(time.Duration(i) * step), Tenant: "brand-b",
			Actor: models.Actor{ID: c.bot, Type: models.ActorBot, Role: "chat-assistant"}, Action: cl.action, Store: cl.store,
			Resource: models.Resource{Type: "record", ID: fmt.Sprintf("p1%032x", i)}, SubjectID: subj, Records: uint64(1 + r.IntN(3)),
			Fields: cl.fields, Purpose: "support", Conversation: models.Conversation{ID: c.id, SubjectID: c.cust}, Tool: cl.tool,
			Result: models.ResultAllowed})
		if c.left--; c.left == 0 {
			convs[j] = convs[len(convs)-1]
			convs = convs[:len(convs)-1]
		}
	}
	return evs
}

// BenchmarkRulesCheck runs the event rules (conversation_shape with them)
// over 200,000 simulated events in batches of 10 s of simulated time, as a
// replay prepares its chunks: one op is the whole run on fresh rules;
// ns/event per event, cpu-ns/event the process's CPU per event; findings counts what the run found (the same before
// and after a change that must not change results).
//
//	go test -run '^$' -bench BenchmarkRulesCheck -benchmem ./detect/
func BenchmarkRulesCheck(b *testing.B) {
	evs := benchRuleEvents(200000)
	b.ReportAllocs()
	findings := 0
	cpu0 := cpuTime()
	for b.Loop() {
		r, err := NewRules(Config{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		findings = 0
		from := 0
		for i := range evs {
			if i == len(evs)-1 || evs[i+1].TS.Sub(evs[from].TS) >= 10*time.Second {
				findings += len(r.Check(evs[i].TS, evs[from:i+1], nil))
				from = i + 1
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
	// the process's CPU, which a machine shared with other work disturbs
	// less than the wall
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*len(evs)), "cpu-ns/event")
	b.ReportMetric(float64(findings), "findings")
}
