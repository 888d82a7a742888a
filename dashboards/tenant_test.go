package dashboards

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestTenantSeparation: one raw customer id in two tenants is two people.
// A data-subject report or history by raw id covers one tenant (also for
// rows stored under the pre-tenant pseudonym, which is the same in both);
// a user or token limited to a tenant sees nothing of another tenant on any
// page or API: history, blast radius, subjects, alerts, alert actions; the
// weekly report covers only their tenants.
func TestTenantSeparation(t *testing.T) {
	t.Parallel() // a database of its own
	const bankToken = "cw_fedcba9876543210_YmFuay1vbmx5LXRva2VuLWZvci10ZXN0cy0wMTIzNDU"
	cfg := Config{Users: []User{
		{Name: "all-resp", Role: RoleResponder, PasswordHash: hash(t, "pw-all")},
		{Name: "retail-resp", Role: RoleResponder, PasswordHash: hash(t, "pw-retail"), Tenants: []string{"retail"}},
		{Name: "retail-secops", Role: RoleSecOps, PasswordHash: hash(t, "pw-secops"), Tenants: []string{"retail"}},
		{Name: "retail-admin", Role: RoleAdmin, PasswordHash: hash(t, "pw-radmin"), Tenants: []string{"retail"}},
		{Name: "admin", Role: RoleAdmin, PasswordHash: hash(t, "pw-admin")},
	}, Tokens: []Token{{Name: "bank", Role: RoleResponder, ID: "fedcba9876543210", SHA256: TokenHash(bankToken), Tenants: []string{"bank"}}}}
	f := newFixture(t, cfg)
	at := testNow.Add(-2 * time.Hour)
	ev := func(id, tenant, actor, subject string) models.Event {
		return models.Event{EventID: id, TS: at, Tenant: tenant, Actor: models.Actor{ID: actor, Type: models.ActorHuman},
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, SubjectID: subject,
			Records: 1, Fields: []string{"email"}, Purpose: "support", Result: models.ResultAllowed}
	}
	if err := f.store.InsertEvents(t.Context(), []models.Event{
		// As ingest now stores them: the tenant is in the pseudonym.
		ev("r1", "retail", "agent-r", f.pseudo.HashTenant("retail", "cust-shared")),
		ev("b1", "bank", "agent-b", f.pseudo.HashTenant("bank", "cust-shared")),
		// As ingest stored them before: one pseudonym for both people.
		ev("r2", "retail", "agent-r", f.pseudo.Hash("cust-legacy")),
		ev("b2", "bank", "agent-b", f.pseudo.Hash("cust-legacy")),
	}, testNow); err != nil {
		t.Fatal(err)
	}
	if err := f.store.PutAlerts(t.Context(), []store.AlertRow{{Version: 1, Alert: models.Alert{ID: "al-bank", Fingerprint: "fb",
		Detector: "volume", Tenant: "bank", ActorID: "agent-b", Severity: models.SeverityHigh, Status: models.StatusOpen,
		FirstSeen: at, LastSeen: at, UpdatedAt: at}}}); err != nil {
		t.Fatal(err)
	}
	csrfs := map[*http.Client]string{}
	login := func(name, pw string) (*http.Client, string) {
		c := f.client(t)
		resp, err := c.PostForm(f.ts.URL+"/login", url.Values{"user": {name}, "password": {pw}})
		if err != nil || resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("login %s: %v %v", name, resp, err)
		}
		resp.Body.Close()
		_, body := get(t, c, f.ts.URL+"/api/me")
		var me struct {
			CSRF string `json:"csrf_token"`
		}
		_ = json.Unmarshal([]byte(body), &me)
		csrfs[c] = me.CSRF
		return c, me.CSRF
	}
	actors := func(body string) string { // the actors whose rows a JSON answer holds (not the echoed filter)
		var cb bytes.Buffer
		if json.Compact(&cb, []byte(body)) == nil {
			body = cb.String()
		}
		var out []string
		for _, a := range []string{"agent-r", "agent-b"} {
			if strings.Contains(body, `"id":"`+a+`"`) || strings.Contains(body, `"actor_id":"`+a+`"`) {
				out = append(out, a)
			}
		}
		return strings.Join(out, ",")
	}
	// check requests path ("PATH JSON" is a POST look-up, as customer ids
	// are sent) and checks the status and the actors answered.
	check := func(t *testing.T, c *http.Client, auth, path string, wantCode int, wantActors string) {
		t.Helper()
		method, body := http.MethodGet, ""
		if p, b, ok := strings.Cut(path, " "); ok {
			method, path, body = http.MethodPost, p, b
		}
		req, _ := http.NewRequest(method, f.ts.URL+path, strings.NewReader(body))
		req.Header.Set("X-CSRF-Token", csrfs[c])
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		if resp.StatusCode != wantCode || (wantCode == 200 && actors(b.String()) != wantActors) {
			t.Errorf("%s %s: %d naming [%s]; want %d naming [%s]\n%.300s", method, path, resp.StatusCode, actors(b.String()), wantCode, wantActors, b.String())
		}
	}

	t.Run("one raw id in two tenants is two people", func(t *testing.T) {
		c, _ := login("all-resp", "pw-all")
		check(t, c, "", `/api/subjects {"subject":"cust-shared","tenant":"retail"}`, 200, "agent-r")
		check(t, c, "", `/api/subjects {"subject":"cust-shared","tenant":"bank"}`, 200, "agent-b")
		check(t, c, "", `/api/subjects {"subject":"cust-legacy","tenant":"retail"}`, 200, "agent-r")
		check(t, c, "", `/api/history {"subject":"cust-legacy","tenant":"bank","since":"24h"}`, 200, "agent-b")
		check(t, c, "", "/api/history?actor=agent-b&since=24h", 200, "agent-b")
	})
	t.Run("user limited to retail", func(t *testing.T) {
		c, csrf := login("retail-resp", "pw-retail")
		check(t, c, "", `/api/subjects {"subject":"cust-shared"}`, 200, "agent-r") // its only tenant
		check(t, c, "", `/api/subjects {"subject":"cust-legacy"}`, 200, "agent-r")
		check(t, c, "", `/api/subjects {"subject":"cust-shared","tenant":"bank"}`, http.StatusForbidden, "")
		check(t, c, "", "/api/history?actor=agent-b&since=24h", 200, "")
		check(t, c, "", "/api/history?actor=agent-b&tenant=bank&since=24h", http.StatusForbidden, "")
		if _, body := get(t, c, f.ts.URL+"/api/blast-radius?actor=agent-b&since=24h"); !strings.Contains(strings.ReplaceAll(body, " ", ""), `"events":0`) {
			t.Errorf("blast radius of another tenant's actor: %.300s", body)
		}
		check(t, c, "", "/api/blast-radius?alert=al-bank", http.StatusNotFound, "")
		check(t, c, "", "/api/alerts/al-bank", http.StatusNotFound, "")
		check(t, c, "", "/alerts/al-bank", http.StatusNotFound, "")
		// The weekly report of the current week (with both alerts and both
		// tenants' events): retail's share only (was 403).
		check(t, c, "", "/api/reports/weekly?week=2026-W48", 200, "")
		_, body := get(t, c, f.ts.URL+"/api/reports/weekly?week=2026-W48")
		if strings.Contains(body, "al-bank") || strings.Contains(body, "agent-b") || strings.Contains(body, `"bank"`) ||
			!strings.Contains(body, "agent-17") || !strings.Contains(strings.Join(strings.Fields(body), ""), `"tenants":["retail"]`) {
			t.Errorf("weekly report of a retail user: %.600s", body)
		}
		if resp, page := get(t, c, f.ts.URL+"/reports/weekly?week=2026-W48"); resp.StatusCode != 200 || strings.Contains(page, "agent-b") ||
			!strings.Contains(page, "Tenants: retail only.") {
			t.Errorf("weekly page of a retail user: %d %.300s", resp.StatusCode, page)
		}
		_, body = get(t, c, f.ts.URL+"/api/alerts")
		if strings.Contains(body, "al-bank") || !strings.Contains(body, "al-crit") {
			t.Errorf("alert list of a retail user: %.300s", body)
		}
		resp, err := c.PostForm(f.ts.URL+"/alerts/al-bank/action", url.Values{"csrf": {csrf}, "action": {"acknowledge"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || len(f.actions.calls) != 0 {
			t.Errorf("a retail user acted on a bank alert: %d %v", resp.StatusCode, f.actions.calls)
		}
	})
	t.Run("token limited to bank", func(t *testing.T) {
		c := f.client(t)
		check(t, c, bankToken, `/api/subjects {"subject":"cust-shared"}`, 200, "agent-b")
		check(t, c, bankToken, "/api/history?actor=agent-r&since=24h", 200, "")
		check(t, c, bankToken, "/api/alerts/al-crit", http.StatusNotFound, "")
		check(t, c, bankToken, "/api/alerts/al-bank", 200, "agent-b")
		check(t, c, bankToken, "/api/reports/weekly?week=2026-W48", 200, "agent-b")
	})
	// The audit trail of an admin limited to retail holds the rows about
	// retail only: retail users' sign-ins and look-ups, look-ups of a user
	// of every tenant that returned retail rows; not the look-ups that
	// returned bank's rows, nor rows about no tenant (a sign-in of a user of
	// every tenant). An admin of every tenant sees them all.
	t.Run("audit trail limited to retail", func(t *testing.T) {
		c, _ := login("all-resp", "pw-all")
		check(t, c, "", "/api/history?actor=agent-r&since=24h", 200, "agent-r")
		check(t, c, "", "/api/history?actor=agent-b&since=24h", 200, "agent-b")
		audit := func(c *http.Client) []store.AuditEntry {
			t.Helper()
			resp, body := get(t, c, f.ts.URL+"/api/audit?since=30d")
			var out struct {
				Entries []store.AuditEntry `json:"entries"`
			}
			if err := json.Unmarshal([]byte(body), &out); err != nil || resp.StatusCode != 200 {
				t.Fatalf("audit: %d %v %.300s", resp.StatusCode, err, body)
			}
			return out.Entries
		}
		ra, _ := login("retail-admin", "pw-radmin")
		var sawRetailLookup, sawRetailLogin bool
		for _, e := range audit(ra) {
			if len(e.Tenants) == 0 || slices.ContainsFunc(e.Tenants, func(x string) bool { return x != "retail" }) ||
				e.User == "all-resp" && strings.Contains(e.Detail, "agent-b") || e.User == "token:bank" || e.User == "admin" {
				t.Errorf("a retail admin sees a row not about retail: %+v", e)
			}
			sawRetailLookup = sawRetailLookup || e.User == "all-resp" && strings.Contains(e.Detail, "actor=agent-r")
			sawRetailLogin = sawRetailLogin || e.User == "retail-resp" && e.Action == "login"
		}
		if !sawRetailLookup || !sawRetailLogin {
			t.Errorf("a retail admin misses rows about retail: look-up %v, sign-in %v", sawRetailLookup, sawRetailLogin)
		}
		a, _ := login("admin", "pw-admin")
		var bankRows, untenanted int
		for _, e := range audit(a) {
			if slices.Contains(e.Tenants, "bank") {
				bankRows++
			}
			if len(e.Tenants) == 0 {
				untenanted++
			}
		}
		if bankRows == 0 || untenanted == 0 {
			t.Errorf("an admin of every tenant sees %d rows about bank, %d about no tenant; want some of each", bankRows, untenanted)
		}
	})
}

func TestTenantsConfigValidate(t *testing.T) {
	for _, ts := range [][]string{{""}, {" retail"}, {"retail", "retail"}} {
		c := Config{Users: []User{{Name: "u", Role: RoleAdmin, PasswordHash: hash(t, "x"), Tenants: ts}}}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "dashboards.users[0].tenants") {
			t.Errorf("tenants %q: %v, want an error naming dashboards.users[0].tenants", ts, err)
		}
	}
}
