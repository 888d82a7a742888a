package detect

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBotEnumerationCountsCustomersOutsideConversations: a bot serves
// conversations, each opened by one customer. Six hours of four times its
// usual contacts (a demand surge: every customer read inside the
// conversation that customer opened) are not enumeration; the same hours
// with three customers a minute read outside their own conversation are.
// Before a bot's hourly count was confirmed by its customers outside their
// conversations, both fired (the rota model's web bot during its demand
// surge).
func TestBotEnumerationCountsCustomersOutsideConversations(t *testing.T) {
	// a bot's day: a conversation every 45 minutes at night, one a
	// minute from 06:00 to 22:00; the surge day has four a minute from
	// 12:00 to 18:00
	surge := func(v, busy string) string {
		return fmt.Sprintf("((%[1]s -*44)*8 %[1]s*360 %[2]s*360 %[1]s*240 (%[1]s -*44)*2 -*30)", v, busy)
	}
	bot := func(outsideBusy string) string {
		return "actor=va type=bot role=assistant records: " + days(5, botDay("3")) + " " + surge("3", "12") + "\n" +
			"actor=va type=bot role=assistant subjects: " + days(5, botDay("1")) + " " + surge("1", "4") + "\n" +
			"actor=va type=bot role=assistant outside: " + days(5, botDay("0")) + " " + surge("0", outsideBusy) + "\n"
	}
	if got := firing(t, Config{}, monday, bot("0")); slices.Contains(got, "enumeration va") {
		t.Errorf("a demand surge, every customer in its own conversation: got %v, want no enumeration", got)
	}
	if got := firing(t, Config{}, monday, bot("3")); !slices.Contains(got, "enumeration va") {
		t.Errorf("three customers a minute outside their conversations: got %v, want enumeration va", got)
	}
	// an actor that is not a bot is judged on all its customers
	human := "actor=a1 role=support records: " + days(5, botDay("3")) + " " + surge("3", "12") + "\n" +
		"actor=a1 role=support subjects: " + days(5, botDay("1")) + " " + surge("1", "4") + "\n" +
		"actor=a1 role=support outside: " + days(5, botDay("0")) + " " + surge("0", "0") + "\n"
	if got := firing(t, Config{}, monday, human); !slices.Contains(got, "enumeration a1") {
		t.Errorf("a human reading four times its customers: got %v, want enumeration a1", got)
	}
}

// TestEnumerationCountsCustomersRead: refused reads are not customers
// whose data was read. An agent reading a customer every four minutes
// whose hour also holds ten minutes of four refused reads a minute (a
// denied burst: denied_burst's evidence) raises no enumeration; the same
// ten minutes with every read allowed does. Before the hourly count was
// confirmed on the customers read, both fired (the rota model's
// high-volume seed 2: brand-b.agent080, 48 customers in the hour of a
// denied burst, 22 s past the burst label's grace).
func TestEnumerationCountsCustomersRead(t *testing.T) {
	// eight hours a day, a customer every four minutes; on the sixth day
	// a burst of four more customers a minute for ten minutes at 10:40
	day := func(v string) string { return fmt.Sprintf("(-*480 (%s - - -)*120 -*480)", v) }
	burstDay := func(v, burst string) string {
		return fmt.Sprintf("-*480 (%[1]s - - -)*40 %[2]s*10 (%[1]s - - -)*77 - - -*480", v, burst)
	}
	agent := func(refused string) string {
		return "actor=a1 role=support records: " + days(5, day("2")) + " " + burstDay("2", "6") + "\n" +
			"actor=a1 role=support subjects: " + days(5, day("1")) + " " + burstDay("1", "5") + "\n" +
			"actor=a1 role=support refused: " + days(5, day("0")) + " " + burstDay("0", refused) + "\n" +
			"actor=a1 role=support denied: " + days(5, day("0")) + " " + burstDay("0", refused) + "\n"
	}
	if got := firing(t, Config{}, monday, agent("4")); slices.Contains(got, "enumeration a1") {
		t.Errorf("a denied burst, four refused reads a minute: got %v, want no enumeration", got)
	}
	if got := firing(t, Config{}, monday, agent("0")); !slices.Contains(got, "enumeration a1") {
		t.Errorf("four more customers a minute read for ten minutes: got %v, want enumeration a1", got)
	}
}

// TestEnumerationBurstPastMidnightIsOneIncident: an enumeration burst
// reported by the rolling hour before midnight that goes on after it is
// one incident: the new day's count, which holds the burst's customers,
// raises no daily finding while the burst is still reported as ongoing.
// Before, the new day's count crossed the daily bar and raised a second
// finding (rota three-zones seed 5: a slow enumeration from 22:01 to
// 02:28, reported at 22:20 and again, as the day's, at 22:50 the next
// day).
func TestEnumerationBurstPastMidnightIsOneIncident(t *testing.T) {
	// a night shift: 20:00 to 04:00, one customer a minute; on the sixth
	// night ten a minute from 23:40 to 03:30
	night := "(1*240 -*960 1*240)"
	fixture := func(metric string, v, burst string) string {
		return fmt.Sprintf("actor=a1 role=support %s: (%s)*5 %s*240 -*960 %s*220 %s*20 %s*210 %s*30 -*960 %s*240\n",
			metric, strings.ReplaceAll(night, "1", v), v, v, burst, burst, v, v)
	}
	text := fixture("records", "3", "30") + fixture("subjects", "1", "10")
	midnight := monday.Add(6 * 24 * time.Hour)
	if got := firingAfter(t, Config{}, monday, midnight.Add(-time.Hour), text); !slices.Contains(got, "enumeration a1") {
		t.Fatalf("the burst before midnight: got %v, want enumeration a1", got)
	}
	if got := firingAfter(t, Config{}, monday, midnight, text); slices.Contains(got, "enumeration a1") {
		t.Errorf("after midnight, the burst reported at 23:50 still going: got %v, want no second enumeration", got)
	}
}
