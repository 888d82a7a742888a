package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/report"
	"github.com/chatwarden/chatwarden/store"
)

// FuzzParseTimeRange: no panic; an accepted range is non-empty and within
// ClickHouse's DateTime range. Seeds: testdata/fuzz/FuzzParseTimeRange.
func FuzzParseTimeRange(f *testing.F) {
	for _, s := range [][3]string{{"24h", "", ""}, {"7d", "", ""}, {"", "2026-11-01T00:00", "2026-11-02"}, {"", "", "2026-11-01T00:00:00Z"},
		{"106752d", "", ""}, {"9223372036854775807ns", "", ""}, {"-1h", "", ""}, {"0d", "", ""}, {"1e9h", "", ""},
		{"", "0001-01-01", "9999-12-31"}, {"", "2026-11-01T00:00:00+14:00", "2026-11-01T00:00:00-12:00"}, {"", "", "2200-01-01"}} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, since, from, to string) {
		a, b, err := ParseTimeRange(since, from, to, testNow)
		if err != nil {
			return
		}
		if !a.Before(b) {
			t.Fatalf("range [%s, %s) is empty or reversed", a, b)
		}
		if a.Before(minQueryTime) || b.After(maxQueryTime) {
			t.Fatalf("range [%s, %s) is outside ClickHouse's DateTime range", a, b)
		}
	})
}

// browserPath is what a browser makes of a relative redirect target: it
// drops tabs and newlines and reads a backslash as a slash.
func browserPath(s string) string {
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return -1
		case '\\':
			return '/'
		}
		return r
	}, s)
	return strings.TrimLeft(s, " \x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f")
}

// FuzzSafeNext: a post-login redirect target stays on this site however a
// browser reads it. Seeds: testdata/fuzz/FuzzSafeNext.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/alerts", "//evil.example", "/\\evil.example", "/\t/evil.example", "/\n/evil.example", "https://evil.example",
		"/%2F%2Fevil.example", "javascript:alert(1)", "/alerts?x=//y", " //evil.example", "/\r\n/evil.example", "/\x00/evil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if got == "" {
			return
		}
		p := browserPath(got)
		if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
			t.Fatalf("safeNext(%q) = %q: a browser reads it as %q, another site", next, got, p)
		}
		u, err := url.Parse(p)
		if err != nil || u.Scheme != "" || u.Host != "" {
			t.Fatalf("safeNext(%q) = %q leaves the site (%v)", next, got, err)
		}
	})
}

// fakeQueries answers every read in memory with hostile strings in every
// field, and records filters a real store would mishandle.
type fakeQueries struct {
	// fail makes the data-subject query fail.
	fail bool
	mu   sync.Mutex
	bad  []string
	evs  []models.Event
	alrt models.Alert
}

func (q *fakeQueries) check(what string, from, to time.Time) {
	// DateTime holds times up to 2106-02-07; the audit page asks for one
	// second past its range's end.
	if !from.Before(to) || from.Before(minQueryTime) || to.After(maxQueryTime.Add(time.Hour)) {
		q.mu.Lock()
		q.bad = append(q.bad, fmt.Sprintf("%s: range [%s, %s)", what, from, to))
		q.mu.Unlock()
	}
}

func (q *fakeQueries) History(_ context.Context, f store.HistoryFilter) ([]models.Event, bool, error) {
	q.check("history", f.From, f.To)
	return q.evs, false, nil
}

func (q *fakeQueries) Exposure(_ context.Context, f store.HistoryFilter) (store.Exposure, error) {
	q.check("exposure", f.From, f.To)
	h := q.evs[0].Store
	return store.Exposure{Events: 3, Subjects: 2, Categories: []store.Count{{Name: h, Count: 2}}, Stores: []store.Count{{Name: h, Count: 3}},
		Countries: []store.Count{{Name: h, Count: 1}}}, nil
}

func (q *fakeQueries) ActorSeries(_ context.Context, _, _ string, from, to time.Time, _ time.Duration) ([]store.Point, error) {
	q.check("series", from, to)
	return []store.Point{{T: from, Events: 3}}, nil
}

func (q *fakeQueries) SubjectAccesses(_ context.Context, _, ids []string, from, to time.Time) ([]store.SubjectAccess, bool, error) {
	q.check("subject", from, to)
	if q.fail {
		return nil, false, fmt.Errorf("reading subject %v: connection reset", ids)
	}
	e := q.evs[0]
	return []store.SubjectAccess{{Tenant: e.Tenant, ActorID: e.Actor.ID, ActorType: string(e.Actor.Type), ActorRole: e.Actor.Role,
		ActorVendor: e.Actor.Vendor, Purpose: e.Purpose, ConversationID: e.Conversation.ID, Stores: []string{e.Store},
		Actions: []string{string(e.Action)}, Categories: e.Fields, Events: 1, First: from, Last: from}}, false, nil
}

func (q *fakeQueries) SubjectShares(_ context.Context, tenants, ids []string, from, to time.Time) ([]store.SubjectShare, bool, error) {
	q.check("subject shares", from, to)
	e := q.evs[0]
	return []store.SubjectShare{{Tenant: tenants[0], Destination: e.Actor.Vendor, Action: "share", ActorType: string(e.Actor.Type),
		ActorRole: e.Actor.Role, ActorVendor: e.Actor.Vendor, Purpose: e.Purpose, Categories: e.Fields, Events: 1, First: from, Last: from}}, false, nil
}

func (q *fakeQueries) InsertAudit(context.Context, store.AuditEntry) error { return nil }

func (q *fakeQueries) AuditLog(_ context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	q.check("audit", f.From, f.To)
	h := q.evs[0].Store
	return []store.AuditEntry{{TS: testNow, User: h, Role: "admin", Source: "web", Action: h, Detail: h}}, nil
}

func (q *fakeQueries) QueryAlerts(context.Context, store.AlertQuery) ([]models.Alert, error) {
	return []models.Alert{q.alrt}, nil
}

func (q *fakeQueries) Alert(_ context.Context, id string) (models.Alert, bool, error) {
	return q.alrt, id == q.alrt.ID, nil
}

// hostileEvent is an event whose every string field holds s.
func hostileEvent(s string) models.Event {
	return models.Event{EventID: s, TS: testNow.Add(-time.Hour), Tenant: s, Actor: models.Actor{ID: s, Type: models.ActorBot, Role: s, Vendor: s},
		Action: models.ActionExport, Store: s, Resource: models.Resource{Type: s, ID: s}, SubjectID: s, Records: 7, Fields: []string{s, "email"},
		Purpose: s, Conversation: models.Conversation{ID: s, SubjectID: s}, Tool: s, Result: models.ResultDenied,
		Client: models.Client{IP: "10.0.0.1", Country: s, UserAgent: s}}
}

func hostileAlert(s string) models.Alert {
	return models.Alert{ID: "al-1", Fingerprint: s, Detector: s, Tenant: s, ActorID: s, ActorType: models.ActorBot,
		Severity: models.SeverityCritical, Status: models.StatusOpen, FirstSeen: testNow.Add(-time.Hour), LastSeen: testNow.Add(-50 * time.Minute),
		Findings: 2, UpdatedAt: testNow, UpdatedBy: s, Latest: models.Finding{Detector: s, Tenant: s, ActorID: s, ActorRole: s, ActorVendor: s,
			WindowStart: testNow.Add(-time.Hour), WindowEnd: testNow.Add(-50 * time.Minute), Summary: s, Severity: models.SeverityCritical,
			Evidence: models.Evidence{Metric: s, Observed: 9, Baseline: 1, BaselineSource: s, Peers: s, TopSubjects: []string{s},
				TopStores: []string{s}, Categories: []string{s}, EventIDs: []string{s}, Query: s, Notes: map[string]float64{s: 1}}}}
}

// fakeServer is a dashboards server over fakeQueries, and an admin's
// session cookie.
func fakeServer(t testing.TB, s string) (*Server, *fakeQueries, *http.Cookie) {
	t.Helper()
	q := &fakeQueries{evs: []models.Event{hostileEvent(s)}, alrt: hostileAlert(s)}
	p, err := pseudonym.New(pseudonym.Key{ID: '1', Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	weekly := func(_ context.Context, w report.Week, _ []string, now time.Time) (*report.Summary, error) {
		return &report.Summary{Week: w.String(), From: w.Start(), To: w.End(), GeneratedAt: now, Paragraph: s,
			TopActors: []report.ActorRisk{}, Exposure: store.Exposure{Categories: []store.Count{{Name: s, Count: 1}}}}, nil
	}
	cfg := Config{InsecureCookies: true, Users: []User{{Name: "admin", Role: RoleAdmin, PasswordHash: hash(t, "pw")}}}
	srv, err := New(cfg, Deps{Events: q, Subjects: q, Audit: q, Alerts: q, Weekly: weekly, Pseudonymize: p.AllTenant,
		Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader("user=admin&password=pw"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	srv.ServeHTTP(w, r)
	for _, c := range w.Result().Cookies() {
		if c.Value != "" {
			return srv, q, c
		}
	}
	t.Fatalf("login: %d, no session cookie", w.Code)
	return nil, nil, nil
}

// getRoutes are the GET pages and API endpoints whose query parameters and
// ids the fuzzer varies.
var getRoutes = []string{"/alerts", "/alerts/{id}", "/investigate", "/investigate/export", "/investigate/blast",
	"/investigate/subject", "/investigate/subject/customer", "/reports/weekly", "/audit", "/api/alerts", "/api/alerts/{id}", "/api/history",
	"/api/blast-radius", "/api/reports/weekly", "/api/audit", "/login"}

// FuzzQueryParams requests every GET page and API endpoint as an admin
// with an arbitrary query string and id. No request may panic or answer
// 5xx (the fakes never fail), no filter reaching the store may be empty or
// outside ClickHouse's time range, API answers are JSON, and the marker tag
// <x-fuzz never appears unescaped in a page. Seeds: testdata/fuzz/FuzzQueryParams.
func FuzzQueryParams(f *testing.F) {
	seeds := []string{"actor=agent-17&since=24h", "since=106752d&actor=a", "from=0001-01-01&to=9999-12-31&store=crm",
		"to=2200-01-01&actor=a", "limit=-5&actor=a&format=csv", "limit=99999999999999999999&store=x&format=json",
		"severity=CRITICAL&status=open&limit=1", "severity=<x-fuzz>&status=%00", "week=2026-W53", "week=-001-W01",
		"week=9999-W52", "subject=cust-1&since=90d", "alert=al-1", "alert=<x-fuzz>", "action=steal&actor=a",
		"next=//evil.example", "actor=<x-fuzz onload=1>&since=1h", "since=&from=2026-11-25T13:00&to=2026-11-25T12:00&actor=a",
		"user=<x-fuzz>&action=dsar", "done=<x-fuzz>", "%zz=1&actor=%", "tenant=a;b&actor=a&actor=b&format=csv&format=json"}
	for i, s := range seeds {
		f.Add(uint8(i), s, "al-1")
		f.Add(uint8(i+3), s, "<x-fuzz>")
	}
	srv, q, cookie := fakeServer(f, "<x-fuzz>&\"'")
	f.Fuzz(func(t *testing.T, route uint8, query, id string) {
		path := strings.Replace(getRoutes[int(route)%len(getRoutes)], "{id}", url.PathEscape(id), 1)
		r, err := http.NewRequest(http.MethodGet, "http://x"+path+"?"+query, nil)
		if err != nil {
			return // not a request a client can send
		}
		r.AddCookie(cookie)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("GET %s?%s: %d %s", path, query, w.Code, w.Body)
		}
		q.mu.Lock()
		bad := q.bad
		q.bad = nil
		q.mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("GET %s?%s reached the store with %v", path, query, bad)
		}
		body := w.Body.String()
		ct := w.Header().Get("Content-Type")
		switch {
		case strings.HasPrefix(ct, "application/json"):
			if !json.Valid(w.Body.Bytes()) {
				t.Fatalf("GET %s?%s: invalid JSON %q", path, query, body)
			}
		case strings.HasPrefix(ct, "text/html"):
			if strings.Contains(strings.ToLower(body), "<x-fuzz") {
				i := strings.Index(strings.ToLower(body), "<x-fuzz")
				t.Fatalf("GET %s?%s: unescaped marker in the page: %q", path, query, body[max(0, i-200):min(len(body), i+100)])
			}
		}
	})
}
