package dashboards

import (
	"iter"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// injectedMarkup returns the first tag of page that the hostile strings
// would have made, had a template put them in as markup: an event-handler
// attribute (the templates have none), a javascript: link, or a script
// holding alert(. It reads tags with their quoted attribute values, so
// escaped text inside an attribute does not count.
func injectedMarkup(page string) string {
	for i := strings.IndexByte(page, '<'); i >= 0; {
		j, quote := i+1, byte(0)
		for ; j < len(page); j++ {
			c := page[j]
			if quote != 0 {
				if c == quote {
					quote = 0
				}
				continue
			}
			if c == '"' || c == '\'' {
				quote = c
			} else if c == '>' {
				break
			}
		}
		tag := page[i:min(j+1, len(page))]
		for name, value := range attrs(tag) {
			value = strings.ToLower(strings.TrimSpace(value))
			if strings.HasPrefix(name, "on") || ((name == "href" || name == "src") && strings.HasPrefix(value, "javascript:")) {
				return tag
			}
		}
		if strings.HasPrefix(strings.ToLower(tag), "<script") {
			if end := strings.Index(page[j:], "</script"); end >= 0 && strings.Contains(page[j:j+end], "alert(") {
				return tag
			}
		}
		next := strings.IndexByte(page[min(j+1, len(page)):], '<')
		if next < 0 {
			break
		}
		i = j + 1 + next
	}
	return ""
}

// attrs yields the attributes of one tag ("<name a=1 b='2' c>"), names
// lower-cased.
func attrs(tag string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		i := strings.IndexFunc(tag, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '/' })
		if i < 0 {
			return
		}
		for i < len(tag) {
			for i < len(tag) && strings.IndexByte(" \t\n\r/>", tag[i]) >= 0 {
				i++
			}
			start := i
			for i < len(tag) && strings.IndexByte(" \t\n\r/>=", tag[i]) < 0 {
				i++
			}
			name, value := strings.ToLower(tag[start:i]), ""
			if i < len(tag) && tag[i] == '=' {
				i++
				if i < len(tag) && (tag[i] == '"' || tag[i] == '\'') {
					q := tag[i]
					end := strings.IndexByte(tag[i+1:], q)
					if end < 0 {
						end = len(tag) - i - 1
					}
					value, i = tag[i+1:i+1+end], i+2+end
				} else {
					start := i
					for i < len(tag) && strings.IndexByte(" \t\n\r>", tag[i]) < 0 {
						i++
					}
					value = tag[start:i]
				}
			}
			if name != "" && !yield(name, value) {
				return
			}
			if start == i {
				i++
			}
		}
	}
}

// TestHostileDataRenderedEscaped fills every string an event, an alert and
// the audit trail can carry with hostile text and opens every page and API
// answer that shows it: HTML pages must show it escaped (never as markup,
// never as a javascript: link), CSV must neutralize formulas.
func TestHostileDataRenderedEscaped(t *testing.T) {
	hostile := []string{
		`<script>alert(1)</script>`,
		`"><img src=x onerror=alert(1)>`,
		`'><svg/onload=alert(1)>`,
		`</textarea><script>alert(1)</script>`,
		`javascript:alert(1)`,
		`<a href="javascript:alert(1)">x</a>`,
		`{{.Secret}}`,
		`=HYPERLINK("https://evil.example","x")`,
	}
	for page, want := range map[string]bool{`<p><img src=x onerror=alert(1)></p>`: true, `<a class="x" href="javascript:alert(1)">`: true,
		`<a href="/ok" onclick="x()">`: true, `<script>alert(1)</script>`: true, `<svg aria-label="&gt;&lt;img src=x onerror=alert(1)">`: false,
		`<p>&lt;img src=x onerror=alert(1)&gt;</p>`: false, `<a href="/investigate?actor=javascript:x">`: false} {
		if got := injectedMarkup(page) != ""; got != want {
			t.Fatalf("injectedMarkup(%q) = %v, want %v", page, got, want)
		}
	}
	pages := []string{"/alerts", "/alerts/al-1", "/investigate?actor=a&since=24h", "/investigate/blast?actor=a",
		"/investigate/subject?tenant=retail&subject=" + testPseudonym, "/reports/weekly", "/audit"}
	for _, s := range hostile {
		t.Run(s, func(t *testing.T) {
			srv, _, cookie := fakeServer(t, s)
			get := func(u string) (*httptest.ResponseRecorder, string) {
				r := httptest.NewRequest(http.MethodGet, u, nil)
				r.AddCookie(cookie)
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					t.Fatalf("GET %s: %d %s", u, w.Code, w.Body)
				}
				return w, w.Body.String()
			}
			for _, p := range pages {
				_, body := get(p)
				if strings.ContainsAny(s, `<"'`) && strings.Contains(body, s) {
					i := strings.Index(body, s)
					t.Errorf("GET %s shows %q unescaped: ...%s...", p, s, body[max(0, i-120):min(len(body), i+len(s)+40)])
				}
				if m := injectedMarkup(body); m != "" {
					t.Errorf("GET %s contains markup from the data: %s", p, m)
				}
				// The hostile text is shown (escaped), not dropped: the
				// page is about it.
				if p != "/reports/weekly" && !strings.Contains(body, "alert(1)") && strings.Contains(s, "alert(1)") {
					t.Errorf("GET %s does not show the actor at all", p)
				}
			}
			// Exports: CSV cells that a spreadsheet would run are quoted.
			_, csv := get("/investigate/export?actor=a&format=csv")
			for _, line := range strings.Split(csv, "\n")[1:] {
				for _, cell := range strings.Split(line, ",") {
					if c := strings.TrimPrefix(cell, `"`); c != "" && strings.ContainsRune("=+-@", rune(c[0])) {
						t.Errorf("CSV cell %q would run as a formula", cell)
					}
				}
			}
		})
	}
}

// TestQueryParamDefects pins the defects FuzzParseTimeRange, FuzzSafeNext
// and FuzzQueryParams found: an overflowing look-back that turned the range
// around, times outside ClickHouse's DateTime (clamped by the server to a
// wrong answer), weeks beyond year 9999 (an empty 200 JSON answer), and
// post-login redirects that a browser reads as another site.
func TestQueryParamDefects(t *testing.T) {
	t.Run("time ranges", func(t *testing.T) {
		tests := []struct {
			since, from, to string
			wantFrom        time.Time
			wantTo          time.Time
			wantErr         bool
		}{
			{since: "106752d", wantErr: true}, // 106752 days overflow time.Duration
			{since: "36501d", wantErr: true},
			{since: "2562047h", wantErr: true},
			{since: "36500d", wantFrom: minQueryTime, wantTo: testNow},
			{from: "0001-01-01", to: "9999-12-31", wantFrom: minQueryTime, wantTo: maxQueryTime},
			{from: "2200-01-01", to: "2300-01-01", wantErr: true},
			{to: "1969-12-31", wantErr: true},
			{since: "24h", wantFrom: testNow.Add(-24 * time.Hour), wantTo: testNow},
			{from: "2026-11-25T13:00", to: "2026-11-25T12:00", wantErr: true},
		}
		for _, tc := range tests {
			from, to, err := ParseTimeRange(tc.since, tc.from, tc.to, testNow)
			if tc.wantErr {
				if err == nil {
					t.Errorf("%+v: got [%s, %s), want an error", tc, from, to)
				}
				continue
			}
			if err != nil || !from.Equal(tc.wantFrom) || !to.Equal(tc.wantTo) {
				t.Errorf("%+v: got [%s, %s) %v, want [%s, %s)", tc, from, to, err, tc.wantFrom, tc.wantTo)
			}
		}
	})
	t.Run("weeks", func(t *testing.T) {
		srv, _, cookie := fakeServer(t, "x")
		for week, want := range map[string]int{"9999-W52": 400, "1969-W52": 400, "2026-W47": 200} {
			r := httptest.NewRequest(http.MethodGet, "/api/reports/weekly?week="+week, nil)
			r.AddCookie(cookie)
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			if w.Code != want {
				t.Errorf("week %s: %d %q, want %d", week, w.Code, w.Body, want)
			}
		}
	})
	t.Run("redirects", func(t *testing.T) {
		for next, want := range map[string]string{"/alerts?x=1": "/alerts?x=1", "/\t/evil.example": "", "/\n/evil.example": "",
			"/\r\n/evil.example": "", "/\x00/evil": "", "/\\evil.example": "", "//evil.example": "", "https://evil.example": ""} {
			if got := safeNext(next); got != want {
				t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
			}
		}
		// Through the login form: the redirect after signing in stays here.
		srv, _, _ := fakeServer(t, "x")
		r := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{"user": {"admin"}, "password": {"pw"},
			"next": {"/\t/evil.example"}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if loc := w.Header().Get("Location"); w.Code != http.StatusSeeOther || strings.Contains(loc, "evil") {
			t.Errorf("login redirect: %d to %q", w.Code, loc)
		}
	})
}

// TestErrorLogHasNoRawCustomerID: a failing data-subject query (the API's
// POST, and the page reached through its handle) is logged with its route,
// and neither the answer nor the log holds the raw customer id typed.
func TestErrorLogHasNoRawCustomerID(t *testing.T) {
	srv, q, cookie := fakeServer(t, "x")
	var logs strings.Builder
	srv.log = slog.New(slog.NewTextHandler(&logs, nil))
	q.fail = true
	sess, _ := srv.sessions.get(cookie.Value, srv.now())
	post := func(path, ctype, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		r.Header.Set("X-CSRF-Token", sess.CSRF)
		r.AddCookie(cookie)
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w
	}
	form := post("/investigate/subject", "application/x-www-form-urlencoded", "subject=RAW-cust-981")
	page := form.Header().Get("Location")
	if form.Code != http.StatusSeeOther || !strings.HasPrefix(page, "/investigate/subject?h=") || strings.Contains(page, "RAW") {
		t.Fatalf("POST /investigate/subject: %d to %q", form.Code, page)
	}
	r := httptest.NewRequest(http.MethodGet, page, nil)
	r.AddCookie(cookie)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	for name, w := range map[string]*httptest.ResponseRecorder{"POST /api/subjects": post("/api/subjects", "application/json", `{"subject":"RAW-cust-981"}`),
		"GET " + page: w} {
		if w.Code != http.StatusInternalServerError {
			t.Fatalf("%s: %d, want 500", name, w.Code)
		}
		if strings.Contains(w.Body.String(), "RAW-cust-981") {
			t.Errorf("%s: the error page shows the raw id", name)
		}
	}
	if !strings.Contains(logs.String(), "serving page") || strings.Contains(logs.String(), "RAW-cust-981") {
		t.Errorf("log: %s", logs.String())
	}
}
