package detect

import (
	"slices"
	"testing"
	"time"
)

// TestImpossibleTravelOneFindingPerIncident: a session from Brazil runs
// for 45 minutes alongside an agent's own work in the Netherlands; after a
// half-hour break the agent goes on from the Netherlands. The concurrent
// session is one impossible_travel finding; the return to the Netherlands
// half an hour after the last Brazilian access (within the 9 hours the
// trip takes at travel_kmh) is the same incident, not a second finding.
// Before, it raised one (rota high-volume seed 3: "BR then NL within
// 0.5 h", 31 minutes after the attack's end). A Brazilian session the
// next day, long after the trip could have been made, is a new incident.
func TestImpossibleTravelOneFindingPerIncident(t *testing.T) {
	day := func(countries string) string { return workday(countries) }
	text := "actor=a1 role=support records: " + days(4, day("5*480")) + " " + day("5*200 5*45 -*30 5*205") + " " + day("5*240 5*5 5*235") + "\n" +
		"actor=a1 role=support countries: " + days(4, day("NL*480")) + " " + day("NL*200 NL,BR*45 -*30 NL*205") + " " + day("NL*240 BR*5 NL*235") + "\n"
	day4 := monday.Add(4 * 24 * time.Hour)
	session := day4.Add(9*time.Hour + 200*time.Minute) // 12:20
	if got := firingAfter(t, Config{}, monday, session, text); !slices.Contains(got, "impossible_travel a1") {
		t.Fatalf("the session abroad: got %v, want impossible_travel a1", got)
	}
	back := session.Add(46 * time.Minute) // after the first finding and the session's windows
	day5 := day4.Add(24 * time.Hour)
	if got := firingAfterUntil(t, Config{}, monday, back, day5, text); slices.Contains(got, "impossible_travel a1") {
		t.Errorf("back in the Netherlands after the session: got %v, want no second impossible_travel", got)
	}
	if got := firingAfter(t, Config{}, monday, day5, text); !slices.Contains(got, "impossible_travel a1") {
		t.Errorf("a session from Brazil the next day: got %v, want impossible_travel a1", got)
	}
}
