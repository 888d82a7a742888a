package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/report"
	"github.com/chatwarden/chatwarden/store"
)

// testNow is the fixed clock of the handler tests: Wednesday of 2026-W48.
var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// apiToken is the fixture's API token, in the minted cw_<id>_<secret> shape.
const apiToken = "cw_0123456789abcdef_c2NyaXB0LXRva2VuLWZvci10ZXN0cy1vbmx5LTAxMjM"

// fakeActions plays the alert engine: it records the action and writes the
// new status as a new alert version, as alerting does.
type fakeActions struct {
	s     *store.Store
	mu    sync.Mutex
	calls []string
	reqs  []ActionRequest
	// refuse, when set, is returned for every request (alerting's answer).
	refuse error
}

func (f *fakeActions) Act(ctx context.Context, req ActionRequest, now time.Time) error {
	id, action, user := req.AlertID, req.Action, req.User
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	if f.refuse != nil {
		return f.refuse
	}
	a, found, err := f.s.Alert(ctx, id)
	if err != nil {
		return err
	}
	if !found {
		return ErrUnknownAlert
	}
	f.mu.Lock()
	f.calls = append(f.calls, id+":"+action+":"+user)
	f.mu.Unlock()
	a.Status = map[string]models.AlertStatus{"acknowledge": models.StatusAcknowledged, "false_positive": models.StatusFalsePositive,
		"escalate": models.StatusEscalated, "silence_24h": models.StatusSilenced}[action]
	a.UpdatedAt, a.UpdatedBy = now, user
	return f.s.PutAlerts(ctx, []store.AlertRow{{Alert: a, Version: uint64(now.UnixNano())}})
}

type fixture struct {
	srv     *Server
	ts      *httptest.Server
	store   *store.Store
	actions *fakeActions
	pseudo  *pseudonym.Pseudonymizer
}

func hash(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// newFixture starts a server over a fresh ClickHouse database holding a
// small incident: agent-17 reads 40 customers' payment data at 02:00, a
// critical enumeration alert on it, and a vendor's low alert; billing-bo
// shares two customers' payment data with psp.example at 23:00.
func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	s := storetest.New(t)
	ctx := context.Background()
	p, err := pseudonym.New(pseudonym.Key{ID: '1', Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	base := testNow.Add(-10 * time.Hour).Truncate(time.Hour) // 02:00
	var evs []models.Event
	for i := range 40 {
		evs = append(evs, models.Event{EventID: fmt.Sprintf("e%d", i), TS: base.Add(time.Duration(i) * 20 * time.Second), Tenant: "retail",
			Actor: models.Actor{ID: "agent-17", Type: models.ActorHuman, Role: "support"}, Action: models.ActionRead, Store: "payments",
			Resource: models.Resource{Type: "payment_method", ID: p.Hash(fmt.Sprintf("pm-%d", i))}, SubjectID: p.Hash(fmt.Sprintf("cust-%d", i)), Records: 1,
			Fields: []string{"payment", "name"}, Purpose: "support", Result: models.ResultAllowed, Client: models.Client{Country: "DE", IP: "10.0.0.7"}})
	}
	for i := range 6 {
		evs = append(evs, models.Event{EventID: fmt.Sprintf("n%d", i), TS: base.Add(-time.Duration(i+1) * time.Hour), Tenant: "retail",
			Actor: models.Actor{ID: "agent-17", Type: models.ActorHuman, Role: "support"}, Action: models.ActionRead, Store: "crm",
			Resource: models.Resource{Type: "customer_profile"}, SubjectID: p.Hash("cust-1"), Records: 1, Fields: []string{"email"},
			Purpose: "support", Conversation: models.Conversation{ID: "conv-42", SubjectID: p.Hash("cust-1")}, Result: models.ResultAllowed})
	}
	evs = append(evs, models.Event{EventID: "v1", TS: base.Add(-time.Hour), Tenant: "retail",
		Actor: models.Actor{ID: "acme-ana", Type: models.ActorVendor, Vendor: "acme-bpo"}, Action: models.ActionRead, Store: "tickets",
		Resource: models.Resource{Type: "ticket"}, SubjectID: p.Hash("cust-900"), Records: 2, Fields: []string{"transcript_text"},
		Purpose: "support", Result: models.ResultAllowed, Client: models.Client{Country: "PH"}})
	// billing-bo sends two customers' payment data to the payment
	// processor (the weekly report's "data shared with third parties").
	for i := range 2 {
		evs = append(evs, models.Event{EventID: fmt.Sprintf("s%d", i), TS: base.Add(-3*time.Hour + time.Duration(i)*time.Minute), Tenant: "retail",
			Actor: models.Actor{ID: "billing-bo", Type: models.ActorHuman, Role: "billing"}, Action: models.ActionShare, Store: "payments",
			Resource: models.Resource{Type: "payment_method"}, SubjectID: p.Hash(fmt.Sprintf("cust-70%d", i)), Records: 6,
			Fields: []string{"payment", "name"}, Purpose: "billing", Result: models.ResultAllowed, Destination: "psp.example"})
	}
	if err := s.InsertEvents(ctx, evs, testNow); err != nil {
		t.Fatal(err)
	}
	alerts := []store.AlertRow{
		{Version: 1, Alert: models.Alert{ID: "al-crit", Fingerprint: "f1", Detector: "enumeration", Tenant: "retail", ActorID: "agent-17",
			ActorType: models.ActorHuman, Severity: models.SeverityCritical, Status: models.StatusOpen, FirstSeen: base, LastSeen: base.Add(13 * time.Minute),
			Findings: 3, UpdatedAt: base, Latest: models.Finding{Detector: "enumeration", Tenant: "retail", ActorID: "agent-17", ActorRole: "support",
				WindowStart: base, WindowEnd: base.Add(14 * time.Minute), Score: 9.1, Probability: 1e-7, Severity: models.SeverityCritical,
				Summary: "agent-17 read 40 customers' payment data in 14 minutes (baseline 1 per minute)",
				Evidence: models.Evidence{Metric: "distinct customers per minute", Observed: 3, Baseline: 0.5, Spread: 0.3, Threshold: 2,
					BaselineSource: "actor", Categories: []string{"payment"}, Notes: map[string]float64{"z": 8.3}}}}},
		{Version: 1, Alert: models.Alert{ID: "al-low", Fingerprint: "f2", Detector: "vendor_scope", Tenant: "retail", ActorID: "acme-ana",
			ActorType: models.ActorVendor, Severity: models.SeverityLow, Status: models.StatusOpen, FirstSeen: base.Add(-time.Hour), LastSeen: base.Add(-time.Hour),
			Findings: 1, UpdatedAt: base, Latest: models.Finding{Detector: "vendor_scope", ActorVendor: "acme-bpo", Summary: "acme-ana read tickets, outside contract"}}},
	}
	if err := s.PutAlerts(ctx, alerts); err != nil {
		t.Fatal(err)
	}
	if cfg.Users == nil {
		for _, r := range Roles {
			cfg.Users = append(cfg.Users, User{Name: string(r) + "-user", Role: r, PasswordHash: hash(t, "pw-"+string(r))})
		}
		cfg.Tokens = []Token{{Name: "script", Role: RoleResponder, ID: "0123456789abcdef", SHA256: TokenHash(apiToken)}}
	}
	cfg.InsecureCookies = true
	acts := &fakeActions{s: s}
	rep := &report.Reporter{Events: s, Shares: s, Alerts: report.StoreAlerts(s)}
	srv, err := New(cfg, Deps{Events: s, Subjects: s, Audit: s, Alerts: s, Actions: acts, Weekly: rep.WeeklyFor, Incidents: s,
		Pseudonymize: p.AllTenant, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(openAPIValidated(t, srv)) // every /api answer is checked against openapi.json
	t.Cleanup(ts.Close)
	return &fixture{srv: srv, ts: ts, store: s, actions: acts, pseudo: p}
}

// client is a browser-like client: a cookie jar, no redirect following.
func (f *fixture) client(t testing.TB) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// login signs in as role and returns the client and the session's CSRF token.
func (f *fixture) login(t testing.TB, role Role) (*http.Client, string) {
	t.Helper()
	c := f.client(t)
	resp, err := c.PostForm(f.ts.URL+"/login", url.Values{"user": {string(role) + "-user"}, "password": {"pw-" + string(role)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login as %s: %d", role, resp.StatusCode)
	}
	resp, err = c.Get(f.ts.URL + "/api/me")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var me struct {
		Role string `json:"role"`
		CSRF string `json:"csrf_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&me); err != nil || me.Role != string(role) || me.CSRF == "" {
		t.Fatalf("me after login as %s: %+v %v", role, me, err)
	}
	return c, me.CSRF
}

func get(t testing.TB, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// testPseudonym is a well-formed pseudonym (no customer of the fixture).
const testPseudonym = "p10123456789abcdef0123456789abcdef"

// concrete turns a route pattern into a URL that exercises it.
func concrete(path string) string {
	r := strings.NewReplacer("{id}", "al-crit", "{$}", "")
	p := r.Replace(path)
	switch path {
	case "/investigate", "/api/history", "/investigate/blast", "/api/blast-radius":
		p += "?actor=agent-17&since=24h"
	case "/investigate/export":
		p += "?actor=agent-17&format=csv"
	case "/investigate/subject", "/investigate/subject/customer":
		p += "?tenant=retail&subject=" + testPseudonym
	}
	return p
}

// postBody is what the role matrix POSTs to a route: a JSON body for the
// API, a form for the pages.
func postBody(path string) string {
	switch path {
	case "/api/history", "/api/blast-radius":
		return `{"actor":"agent-17","since":"24h"}`
	case "/api/subjects", "/api/subjects/customer-report":
		return `{"subject":"cust-1"}`
	}
	return `{"action":"acknowledge"}`
}

func TestRouteRoleMatrix(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	clients := map[string]*http.Client{"anonymous": f.client(t)}
	csrf := map[string]string{}
	for _, r := range Roles {
		clients[string(r)], csrf[string(r)] = f.login(t, r)
	}
	public := map[string]bool{"GET /healthz": true, "GET /login": true, "POST /login": true}
	for _, rt := range f.srv.routes {
		name := rt.method + " " + rt.path
		if (rt.roles == nil) != public[name] {
			t.Errorf("%s: public=%v, want %v (only login and health are public here; Slack mounts its own)", name, rt.roles == nil, public[name])
		}
		if public[name] || rt.path == "/logout" {
			continue
		}
		for who, c := range clients {
			t.Run(name+" as "+who, func(t *testing.T) {
				u := f.ts.URL + concrete(rt.path)
				var resp *http.Response
				var err error
				if rt.method == http.MethodPost {
					if rt.api {
						req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(postBody(rt.path)))
						req.Header.Set("X-CSRF-Token", csrf[who])
						resp, err = c.Do(req)
					} else {
						resp, err = c.PostForm(u, url.Values{"csrf": {csrf[who]}, "action": {"acknowledge"}, "subject": {"cust-1"}})
					}
				} else {
					resp, err = c.Get(u)
				}
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				var want []int
				switch {
				case who == "anonymous" && rt.method == http.MethodGet && !rt.api:
					want = []int{http.StatusSeeOther}
				case who == "anonymous":
					want = []int{http.StatusUnauthorized}
				case slices.Contains(rt.roles, Role(who)) && (rt.method == http.MethodPost || rt.path == "/{$}"):
					want = []int{http.StatusOK, http.StatusSeeOther}
				case slices.Contains(rt.roles, Role(who)):
					want = []int{http.StatusOK}
				default:
					want = []int{http.StatusForbidden}
				}
				if !slices.Contains(want, resp.StatusCode) {
					t.Fatalf("%s %s as %s: %d, want %v", rt.method, u, who, resp.StatusCode, want)
				}
				if who == "anonymous" && resp.StatusCode == http.StatusSeeOther && !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
					t.Fatalf("redirect to %q, want the login page", resp.Header.Get("Location"))
				}
			})
		}
	}
	t.Run("unknown path as admin", func(t *testing.T) {
		resp, _ := get(t, clients["admin"], f.ts.URL+"/nope")
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("health and assets without login", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/assets/style.css", "/assets/app.js", "/login"} {
			if resp, _ := get(t, clients["anonymous"], f.ts.URL+p); resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %d", p, resp.StatusCode)
			}
		}
	})
}

func TestSecurityHeadersAndCookie(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	c := f.client(t)
	resp, err := c.PostForm(f.ts.URL+"/login", url.Values{"user": {"admin-user"}, "password": {"pw-admin"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"cw_session=", "HttpOnly", "SameSite=Strict", "Max-Age=43200"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("cookie %q lacks %s", cookie, want)
		}
	}
	if strings.Contains(cookie, "Secure") {
		t.Errorf("insecure_cookies set, but cookie is Secure: %q", cookie)
	}
	for h, want := range map[string]string{"Content-Security-Policy": "default-src 'self'", "X-Content-Type-Options": "nosniff",
		"Referrer-Policy": "no-referrer"} {
		if !strings.Contains(resp.Header.Get(h), want) {
			t.Errorf("%s = %q", h, resp.Header.Get(h))
		}
	}
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("CSP lacks frame-ancestors")
	}
	t.Run("secure by default", func(t *testing.T) {
		srv := &Server{cfg: Config{}.WithDefaults()}
		rec := httptest.NewRecorder()
		srv.setSessionCookie(rec, "x", testNow.Add(time.Hour))
		if !strings.Contains(rec.Header().Get("Set-Cookie"), "Secure") {
			t.Fatalf("cookie not Secure by default: %s", rec.Header().Get("Set-Cookie"))
		}
	})
	t.Run("logout ends the session", func(t *testing.T) {
		c, token := f.login(t, RoleAdmin)
		resp, err := c.PostForm(f.ts.URL+"/logout", url.Values{"csrf": {token}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		if r, _ := get(t, c, f.ts.URL+"/alerts"); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("after logout /alerts: %d", r.StatusCode)
		}
	})
	t.Run("expired session", func(t *testing.T) {
		sess := newSessions(time.Minute)
		id, _ := sess.create("u", RoleAdmin, nil, testNow)
		if _, ok := sess.get(id, testNow.Add(30*time.Second)); !ok {
			t.Fatal("fresh session not found")
		}
		if _, ok := sess.get(id, testNow.Add(2*time.Minute)); ok {
			t.Fatal("expired session accepted")
		}
	})
}

func TestCSRF(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	c, token := f.login(t, RoleSecOps)
	cases := []struct {
		name  string
		form  url.Values
		hdr   string
		want  int
		calls int
	}{
		{"no token", url.Values{"action": {"acknowledge"}}, "", http.StatusForbidden, 0},
		{"wrong token", url.Values{"action": {"acknowledge"}, "csrf": {"forged"}}, "", http.StatusForbidden, 0},
		{"other session's token", url.Values{"action": {"acknowledge"}}, "x", http.StatusForbidden, 0},
		{"form token", url.Values{"action": {"acknowledge"}, "csrf": {token}}, "", http.StatusSeeOther, 1},
		{"header token", url.Values{"action": {"escalate"}}, token, http.StatusSeeOther, 2},
	}
	_, otherToken := f.login(t, RoleSecOps)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, f.ts.URL+"/alerts/al-crit/action", strings.NewReader(tc.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			switch tc.hdr {
			case "x":
				req.Header.Set("X-CSRF-Token", otherToken)
			case "":
			default:
				req.Header.Set("X-CSRF-Token", tc.hdr)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want || len(f.actions.calls) != tc.calls {
				t.Fatalf("status %d calls %v, want %d and %d calls", resp.StatusCode, f.actions.calls, tc.want, tc.calls)
			}
		})
	}
	t.Run("logout needs the token", func(t *testing.T) {
		resp, err := c.PostForm(f.ts.URL+"/logout", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("logout without token: %d", resp.StatusCode)
		}
	})
	t.Run("api token needs no csrf", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, f.ts.URL+"/api/alerts/al-crit/action", strings.NewReader(`{"action":"acknowledge"}`))
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasSuffix(f.actions.calls[len(f.actions.calls)-1], ":token:script") {
			t.Fatalf("token action: %d %v", resp.StatusCode, f.actions.calls)
		}
	})
}

func TestLoginRateLimit(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{LoginAttempts: 3, LoginWindow: time.Minute})
	c := f.client(t)
	try := func(user, pw string) int {
		resp, err := c.PostForm(f.ts.URL+"/login", url.Values{"user": {user}, "password": {pw}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 3 {
		if got := try("admin-user", "wrong"); got != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, got)
		}
	}
	if got := try("admin-user", "pw-admin"); got != http.StatusTooManyRequests {
		t.Fatalf("4th attempt with the right password: %d, want 429", got)
	}
	// Issue 10 item 10: one user's failures no longer lock out the others
	// at the same address (behind a proxy that was everybody).
	if got := try("secops-user", "pw-secops"); got != http.StatusSeeOther {
		t.Fatalf("same IP, other user: %d, want 303 (the back-off is per user name)", got)
	}
	t.Run("window slides", func(t *testing.T) {
		l := newLimiter(2, time.Minute)
		l.fail(testNow, "ip:a", "user:u")
		l.fail(testNow.Add(10*time.Second), "ip:b", "user:u")
		if b, _ := l.blocked(testNow.Add(20*time.Second), "ip:c", "user:u"); !b {
			t.Fatal("user with 2 failures not blocked")
		}
		if b, _ := l.blocked(testNow.Add(20*time.Second), "ip:a"); b {
			t.Fatal("ip with 1 failure blocked")
		}
		if b, _ := l.blocked(testNow.Add(65*time.Second), "user:u"); b {
			t.Fatal("failure older than the window still counted")
		}
	})
}

func TestInvestigateAndAudit(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	c, _ := f.login(t, RoleResponder)
	t.Run("history by raw customer id", func(t *testing.T) {
		resp, body := postJSON(t, c, f.ts.URL+"/api/history", csrfOf(t, f, c), `{"subject":"cust-1","tenant":"retail","since":"24h"}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		var res HistoryResult
		if err := json.Unmarshal([]byte(body), &res); err != nil {
			t.Fatal(err)
		}
		// The tenant-scoped pseudonym first, then the pre-tenant one the
		// fixture's rows carry.
		if len(res.Events) != 7 || res.Subjects[0] != f.pseudo.HashTenant("retail", "cust-1") ||
			!slices.Contains(res.Subjects, f.pseudo.Hash("cust-1")) || strings.Contains(body, `"cust-1"`) {
			t.Fatalf("events %d subjects %v", len(res.Events), res.Subjects)
		}
	})
	t.Run("page", func(t *testing.T) {
		resp, body := get(t, c, f.ts.URL+"/investigate?actor=agent-17&since=24h")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<svg") || !strings.Contains(body, "agent-17") || !strings.Contains(body, ">46<") {
			t.Fatalf("%d\n%s", resp.StatusCode, body)
		}
	})
	t.Run("csv export", func(t *testing.T) {
		resp, body := get(t, c, f.ts.URL+"/investigate/export?conversation=conv-42&format=csv&since=2d")
		lines := strings.Split(strings.TrimSpace(body), "\n")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" || len(lines) != 7 || !strings.HasPrefix(lines[0], "ts,event_id") {
			t.Fatalf("%d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	})
	t.Run("dsar", func(t *testing.T) {
		resp, body := postJSON(t, c, f.ts.URL+"/api/subjects", csrfOf(t, f, c), `{"subject":"cust-3","tenant":"retail"}`)
		var rep SubjectReport
		if err := json.Unmarshal([]byte(body), &rep); err != nil || resp.StatusCode != 200 {
			t.Fatal(resp.StatusCode, err, body)
		}
		if len(rep.Accesses) != 1 || rep.Accesses[0].ActorID != "agent-17" || !slices.Equal(rep.Categories, []string{"name", "payment"}) {
			t.Fatalf("report %+v", rep)
		}
	})
	t.Run("blast radius of an alert", func(t *testing.T) {
		_, body := get(t, c, f.ts.URL+"/api/blast-radius?alert=al-crit")
		var b BlastRadius
		if err := json.Unmarshal([]byte(body), &b); err != nil {
			t.Fatal(err)
		}
		if b.Exposure.Subjects != 40 || b.Exposure.SensitiveSubjects() != 40 || b.Actor != "agent-17" {
			t.Fatalf("blast %+v", b)
		}
	})
	t.Run("manager sees no per-customer data", func(t *testing.T) {
		m, _ := f.login(t, RoleManager)
		if resp, _ := postJSON(t, m, f.ts.URL+"/api/blast-radius", csrfOf(t, f, m), `{"subject":"cust-1"}`); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("manager blast by customer: %d", resp.StatusCode)
		}
		if resp, _ := get(t, m, f.ts.URL+"/api/blast-radius?actor=agent-17"); resp.StatusCode != http.StatusOK {
			t.Fatalf("manager blast by actor: %d", resp.StatusCode)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, q := range []string{"/api/history?since=24h", "/api/history?actor=a&since=forever", "/api/history?actor=a&action=steal"} {
			if resp, _ := get(t, c, f.ts.URL+q); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s: %d", q, resp.StatusCode)
			}
		}
	})
	t.Run("audit trail", func(t *testing.T) {
		a, _ := f.login(t, RoleAdmin)
		_, body := get(t, a, f.ts.URL+"/api/audit")
		var got struct{ Entries []store.AuditEntry }
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		actions := map[string]int{}
		for _, e := range got.Entries {
			actions[e.Action]++
			if strings.Contains(e.Detail, "cust-") {
				t.Errorf("raw customer id in the audit trail: %q", e.Detail)
			}
			if e.User == "" || e.Remote == "" {
				t.Errorf("entry lacks who/where: %+v", e)
			}
		}
		if actions["history"] != 2 || actions["export"] != 1 || actions["dsar"] != 1 || actions["blast_radius"] != 2 {
			t.Fatalf("audited actions %v", actions)
		}
		for _, e := range got.Entries {
			if e.Action == "export" && e.Rows != 6 {
				t.Fatalf("export rows %d", e.Rows)
			}
		}
	})
}

// failingAudit refuses to write.
type failingAudit struct{ inner AuditLog }

func (f failingAudit) AuditLog(ctx context.Context, q store.AuditFilter) ([]store.AuditEntry, error) {
	return f.inner.AuditLog(ctx, q)
}

func (failingAudit) InsertAudit(context.Context, store.AuditEntry) error {
	return fmt.Errorf("audit table unavailable")
}

func TestNoDataWithoutAudit(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	c, _ := f.login(t, RoleResponder) // signing in is audited too
	f.srv.d.Audit = failingAudit{f.srv.d.Audit}
	resp, body := get(t, c, f.ts.URL+"/api/history?actor=agent-17")
	if resp.StatusCode != http.StatusInternalServerError || strings.Contains(body, "agent-17") {
		t.Fatalf("unaudited query answered: %d %s", resp.StatusCode, body)
	}
}

func TestAlertPagesAndActions(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	c, token := f.login(t, RoleSecOps)
	resp, body := get(t, c, f.ts.URL+"/alerts?severity=high")
	if resp.StatusCode != 200 || !strings.Contains(body, "al-crit") || strings.Contains(body, "al-low") || !strings.Contains(body, `data-refresh="30"`) {
		t.Fatalf("feed %d:\n%s", resp.StatusCode, body)
	}
	resp, body = get(t, c, f.ts.URL+"/alerts/al-crit")
	for _, want := range []string{"<svg", "baseline band", "distinct customers of agent-17 per minute", "40</span>", `name="csrf" value="` + token} {
		if !strings.Contains(body, want) {
			t.Errorf("detail lacks %q", want)
		}
	}
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	resp, err := c.PostForm(f.ts.URL+"/alerts/al-crit/action", url.Values{"csrf": {token}, "action": {"acknowledge"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || f.actions.calls[0] != "al-crit:acknowledge:secops-user" {
		t.Fatalf("action: %d %v", resp.StatusCode, f.actions.calls)
	}
	if _, body = get(t, c, f.ts.URL+"/api/alerts?status=acknowledged"); !strings.Contains(body, "al-crit") {
		t.Fatalf("acknowledged alert not listed: %s", body)
	}
	for _, tc := range []struct {
		path, action string
		want         int
	}{{"/alerts/al-crit/action", "delete", 400}, {"/alerts/nope/action", "acknowledge", 404}} {
		resp, err := c.PostForm(f.ts.URL+tc.path, url.Values{"csrf": {token}, "action": {tc.action}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d want %d", tc.path, tc.action, resp.StatusCode, tc.want)
		}
	}
}

// TestAlertActionRoleAndReason (issue 10 item 1): the web form and the API
// pass the user's role and the reason to alerting; a refusal is 403 and
// audited, a missing reason 400; the reason lands in the audit row.
func TestAlertActionRoleAndReason(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	c, token := f.login(t, RoleResponder)
	post := func(v url.Values) int {
		v.Set("csrf", token)
		resp, err := c.PostForm(f.ts.URL+"/alerts/al-crit/action", v)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(url.Values{"action": {"false_positive"}, "reason": {"  known batch job CHG-9 "}}); got != http.StatusSeeOther {
		t.Fatalf("false positive: %d", got)
	}
	if r := f.actions.reqs[0]; r.Role != RoleResponder || r.Reason != "known batch job CHG-9" || r.User != "responder-user" {
		t.Fatalf("request %+v", r)
	}
	f.actions.refuse = fmt.Errorf("%w: role responder may not silence_24h a critical alert", ErrActionNotAllowed)
	if got := post(url.Values{"action": {"silence_24h"}}); got != http.StatusForbidden {
		t.Fatalf("refused silence: %d, want 403", got)
	}
	f.actions.refuse = fmt.Errorf("%w", ErrActionNeedsReason)
	if got := post(url.Values{"action": {"false_positive"}}); got != http.StatusBadRequest {
		t.Fatalf("no reason: %d, want 400", got)
	}
	es, err := f.store.AuditLog(t.Context(), store.AuditFilter{From: testNow.Add(-time.Hour), To: testNow.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var applied, refused bool
	for _, e := range es {
		applied = applied || (e.Action == "alert_action" && strings.Contains(e.Detail, `reason="known batch job CHG-9"`))
		refused = refused || (e.Action == "alert_action_refused" && strings.Contains(e.Detail, "action=silence_24h"))
	}
	if !applied || !refused {
		t.Fatalf("audit rows %+v", es)
	}
}

func TestWeeklyPage(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	c, _ := f.login(t, RoleManager)
	resp, body := get(t, c, f.ts.URL+"/reports/weekly?week=2026-W48")
	if resp.StatusCode != 200 || !strings.Contains(body, "In week 2026-W48") || !strings.Contains(body, "<svg") ||
		!strings.Contains(body, `<h2 id="shared">Data shared with third parties</h2>`) || !strings.Contains(body, "<td>psp.example</td><td class=\"num\">12</td><td class=\"num\">2</td>") {
		t.Fatalf("%d\n%s", resp.StatusCode, body)
	}
	if resp, _ := get(t, c, f.ts.URL+"/api/reports/weekly?week=2026-W99"); resp.StatusCode != 400 {
		t.Fatalf("bad week: %d", resp.StatusCode)
	}
}

// TestOpenAPICoversRoutes keeps openapi.json true: every /api route is
// documented with its method, and every documented path is served.
func TestOpenAPICoversRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	f := &Server{}
	served := map[string]bool{}
	for _, rt := range f.routeTable() {
		if !strings.HasPrefix(rt.path, "/api/") {
			continue
		}
		served[rt.method+" "+rt.path] = true
		ops, ok := doc.Paths[rt.path]
		if !ok {
			t.Errorf("%s is served but not in openapi.json", rt.path)
			continue
		}
		if _, ok := ops[strings.ToLower(rt.method)]; !ok {
			t.Errorf("%s %s is served but openapi.json lacks the method", rt.method, rt.path)
		}
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			if !served[strings.ToUpper(m)+" "+p] {
				t.Errorf("openapi.json documents %s %s, which is not served", m, p)
			}
		}
	}
	// Path parameters are declared.
	re := regexp.MustCompile(`\{(\w+)\}`)
	for p, ops := range doc.Paths {
		for _, m := range re.FindAllStringSubmatch(p, -1) {
			for meth, raw := range ops {
				if !strings.Contains(string(raw), `"name": "`+m[1]+`"`) {
					t.Errorf("%s %s does not declare path parameter %s", meth, p, m[1])
				}
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := hash(t, "x")
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"ok", Config{Users: []User{{Name: "a", Role: RoleAdmin, PasswordHash: good}}}, ""},
		{"bad role", Config{Users: []User{{Name: "a", Role: "root", PasswordHash: good}}}, "users[0].role"},
		{"plain password", Config{Users: []User{{Name: "a", Role: RoleAdmin, PasswordHash: "hunter2"}}}, "users[0].password_hash"},
		{"duplicate", Config{Users: []User{{Name: "a", Role: RoleAdmin, PasswordHash: good}, {Name: "a", Role: RoleAdmin, PasswordHash: good}}}, "users[1].name"},
		{"trusted proxy", Config{TrustedProxies: []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"}}, ""},
		{"bad trusted proxy", Config{TrustedProxies: []string{"10.0.0.0/8", "proxy.internal"}}, "dashboards.trusted_proxies[1]"},
		{"token ok", Config{Tokens: []Token{{Name: "t", Role: RoleAdmin, ID: "0123456789abcdef", SHA256: TokenHash(apiToken)}}}, ""},
		{"token bad sha256", Config{Tokens: []Token{{Name: "t", Role: RoleAdmin, ID: "0123456789abcdef", SHA256: "x"}}}, "tokens[0].sha256"},
		{"token bad id", Config{Tokens: []Token{{Name: "t", Role: RoleAdmin, ID: "ABC", SHA256: TokenHash(apiToken)}}}, "tokens[0].id"},
		{"token duplicate id", Config{Tokens: []Token{{Name: "t", Role: RoleAdmin, ID: "0123456789abcdef", SHA256: TokenHash(apiToken)},
			{Name: "u", Role: RoleAdmin, ID: "0123456789abcdef", SHA256: TokenHash(apiToken)}}}, "tokens[1].id"},
		// TestConfigValidate/bcrypt_token_refused (issue 10 item 4): a bcrypt
		// token hash, accepted before, is refused with the field and the fix.
		{"bcrypt token refused", Config{Tokens: []Token{{Name: "t", Role: RoleAdmin, Hash: good}}}, "tokens[0].hash: bcrypt API token hashes are no longer accepted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

// postJSON POSTs body as JSON with the session's CSRF token.
func postJSON(t testing.TB, c *http.Client, u, csrf, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", csrf)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// csrfOf returns the CSRF token of c's session.
func csrfOf(t testing.TB, f *fixture, c *http.Client) string {
	t.Helper()
	_, body := get(t, c, f.ts.URL+"/api/me")
	var me struct {
		CSRF string `json:"csrf_token"`
	}
	if err := json.Unmarshal([]byte(body), &me); err != nil || me.CSRF == "" {
		t.Fatalf("me: %s %v", body, err)
	}
	return me.CSRF
}
