package dashboards

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestLoginAndAlertBlastRadiusAudited: sign-ins (success and failure) and
// the blast radius shown on an alert page and its API twin reach the audit
// trail; without the audit trail there is no session and no alert page.
func TestLoginAndAlertBlastRadiusAudited(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	post := func(user, pw string) int {
		resp, err := f.client(t).PostForm(f.ts.URL+"/login", url.Values{"user": {user}, "password": {pw}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("secops-user", "wrong"); got != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", got)
	}
	if got := post("hunter2-typed-as-name", "x"); got != http.StatusUnauthorized {
		t.Fatalf("unknown user: %d", got)
	}
	c, _ := f.login(t, RoleSecOps)
	if resp, _ := get(t, c, f.ts.URL+"/alerts/al-crit"); resp.StatusCode != 200 {
		t.Fatalf("alert page: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, f.ts.URL+"/api/alerts/al-crit"); resp.StatusCode != 200 {
		t.Fatalf("alert api: %d", resp.StatusCode)
	}
	es, err := f.store.AuditLog(t.Context(), store.AuditFilter{From: testNow.Add(-time.Hour), To: testNow.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Action+" "+e.User+" "+e.Source)
		if strings.Contains(e.User+e.Detail, "hunter2") {
			t.Errorf("an unknown typed name reached the audit trail: %+v", e)
		}
		if e.Action == "blast_radius" && (e.Rows != 40 || !strings.Contains(e.Detail, "alert=al-crit")) {
			t.Errorf("blast radius entry %+v: want alert=al-crit and 40 rows", e)
		}
	}
	for _, want := range []string{"login_failed secops-user web", "login_failed (unknown) web", "login secops-user web",
		"blast_radius secops-user web", "blast_radius secops-user api"} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("audit trail lacks %q:\n%s", want, strings.Join(got, "\n"))
		}
	}

	f.srv.d.Audit = failingAudit{f.srv.d.Audit}
	if resp, body := get(t, c, f.ts.URL+"/alerts/al-crit"); resp.StatusCode != http.StatusInternalServerError || strings.Contains(body, "agent-17") {
		t.Fatalf("alert page without its audit entry: %d", resp.StatusCode)
	}
	if got := post("secops-user", "pw-secops"); got != http.StatusInternalServerError {
		t.Fatalf("sign-in without its audit entry: %d", got)
	}
}

// TestAlertsLimitCapped: /api/alerts?limit= larger than
// store.MaxAlertsLimit returns that many alerts, not every alert.
func TestAlertsLimitCapped(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	var rows []store.AlertRow
	for i := range store.MaxAlertsLimit + 5 {
		rows = append(rows, store.AlertRow{Version: 1, Alert: models.Alert{ID: fmt.Sprintf("bulk-%04d", i), Fingerprint: "b", Detector: "volume",
			Tenant: "retail", ActorID: "a", Severity: models.SeverityLow, Status: models.StatusOpen, FirstSeen: testNow.Add(-time.Hour),
			LastSeen: testNow.Add(-time.Hour), UpdatedAt: testNow.Add(-time.Hour)}})
	}
	if err := f.store.PutAlerts(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	c, _ := f.login(t, RoleSecOps)
	for _, lim := range []string{"1000000", "9223372036854775807"} {
		resp, body := get(t, c, f.ts.URL+"/api/alerts?limit="+lim)
		var got struct {
			Alerts []json.RawMessage `json:"alerts"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != 200 {
			t.Fatalf("limit=%s: %d %v %.200s", lim, resp.StatusCode, err, body)
		}
		if len(got.Alerts) != store.MaxAlertsLimit {
			t.Fatalf("limit=%s returned %d alerts, want the cap %d", lim, len(got.Alerts), store.MaxAlertsLimit)
		}
	}
}
