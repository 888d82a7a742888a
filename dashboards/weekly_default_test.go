package dashboards

import (
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestWeeklyDefaultWeek: /reports/weekly without ?week= opens on the last
// complete week when it has data, and on the current week so far (saying
// so) when it has none; a week asked for is shown as it is.
func TestWeeklyDefaultWeek(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	c, _ := f.login(t, RoleManager)
	// The fixture's data is all in 2026-W48, the current week.
	_, body := get(t, c, f.ts.URL+"/reports/weekly")
	if !strings.Contains(body, "2026-W47, the last complete week, has no alerts and no access events: showing the current week so far") ||
		!strings.Contains(body, "In week 2026-W48") || !strings.Contains(body, `type="week" name="week" value="2026-W48"`) {
		t.Fatalf("empty last week: no note, or not on the current week:\n%s", body)
	}
	_, body = get(t, c, f.ts.URL+"/reports/weekly?week=2026-W47")
	if strings.Contains(body, `class="note"`) || !strings.Contains(body, "In week 2026-W47") {
		t.Fatalf("an asked-for week is replaced:\n%s", body)
	}
	// Once the last complete week has an alert, it is the default again.
	w47 := testNow.Add(-7 * 24 * time.Hour)
	if err := f.store.PutAlerts(t.Context(), []store.AlertRow{{Version: 1, Alert: models.Alert{ID: "al-w47", Fingerprint: "f47", Detector: "enumeration",
		Tenant: "retail", ActorID: "agent-17", Severity: models.SeverityHigh, Status: models.StatusOpen, FirstSeen: w47, LastSeen: w47, Findings: 1, UpdatedAt: w47}}}); err != nil {
		t.Fatal(err)
	}
	_, body = get(t, c, f.ts.URL+"/reports/weekly")
	if strings.Contains(body, `class="note"`) || !strings.Contains(body, "In week 2026-W47") {
		t.Fatalf("last week has an alert but is not the default:\n%s", body)
	}
}
