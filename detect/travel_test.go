package detect

import (
	"slices"
	"testing"
	"time"
)

// TestImpossibleTravelOneFindingPerIncident: a session from Brazil runs
// for 45 minutes alongside an agent's own work in the Netherlands; after a
// half-hour break the agent goes on from the Netherlands. The concurrent
// session is an impossible_travel finding; the return to the Netherlands
// half an hour after the last Brazilian access (within the 9 hours the
// trip takes at travel_kmh) is that incident ending, not a second finding.
// Before, it raised one (rota high-volume seed 3: "BR then NL within
// 0.5 h", 31 minutes after the attack's end). A second session from Brazil
// alongside the agent's work an hour later is judged again (rota
// low-volume seed 5: a new_country attack from the country of an
// impossible_travel attack an hour before), and so is one the next day.
func TestImpossibleTravelOneFindingPerIncident(t *testing.T) {
	text := "actor=a1 role=support records: " + days(4, workday("5*480")) + " " + workday("5*200 5*45 -*30 5*60 5*30 5*115") + " " +
		workday("5*240 5*5 5*235") + "\n" +
		"actor=a1 role=support countries: " + days(4, workday("NL*480")) + " " + workday("NL*200 NL,BR*45 -*30 NL*60 NL,BR*30 NL*115") + " " +
		workday("NL*240 BR*5 NL*235") + "\n"
	day4 := monday.Add(4 * 24 * time.Hour)
	session := day4.Add(9*time.Hour + 200*time.Minute) // 12:20
	back := session.Add(46 * time.Minute)              // after the session's windows
	second := day4.Add(14*time.Hour + 35*time.Minute)  // 14:35, a second session
	day5 := day4.Add(24 * time.Hour)
	for _, c := range []struct {
		name        string
		from, until time.Time
		want        bool
	}{
		{"the session abroad", session, back, true},
		{"back in the Netherlands after the session", back, second, false},
		{"a second session from Brazil an hour later", second, day5, true},
		{"a session from Brazil the next day", day5, time.Time{}, true},
	} {
		got := firingAfterUntil(t, Config{}, monday, c.from, c.until, text)
		if slices.Contains(got, "impossible_travel a1") != c.want {
			t.Errorf("%s: got %v, want impossible_travel a1: %v", c.name, got, c.want)
		}
	}
}
