package dashboards

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestNoCustomerIDInURLs (issue 10 item 10): a look-up by customer id is a
// POST (CSRF-checked) that leads to a page addressed by an opaque handle;
// no URL the server sends or links to (redirects, export and report links,
// the login page's next) holds the raw id; a raw id in a GET is refused;
// a handle works only for its user and only for dashboards.lookup_ttl.
func TestNoCustomerIDInURLs(t *testing.T) {
	const raw = "cust-1"
	f := newFixture(t, Config{LookupTTL: 10 * time.Minute})
	c, csrf := f.login(t, RoleResponder)
	noRaw := func(where, s string) {
		t.Helper()
		if strings.Contains(s, raw) {
			t.Errorf("%s holds the raw customer id: %q", where, s)
		}
	}
	// Without the CSRF token the form is refused.
	resp, err := c.PostForm(f.ts.URL+"/investigate", url.Values{"subject": {raw}, "tenant": {"retail"}, "since": {"24h"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST /investigate without CSRF: %d", resp.StatusCode)
	}
	resp, err = c.PostForm(f.ts.URL+"/investigate", url.Values{"csrf": {csrf}, "subject": {raw}, "tenant": {"retail"}, "since": {"24h"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !regexp.MustCompile(`^/investigate\?h=[A-Za-z0-9_-]{43}$`).MatchString(loc) {
		t.Fatalf("POST /investigate: %d to %q, want a handle", resp.StatusCode, loc)
	}
	resp, body := get(t, c, f.ts.URL+loc)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, ">7<") {
		t.Fatalf("GET %s: %d\n%s", loc, resp.StatusCode, body)
	}
	hrefs := regexp.MustCompile(`(?:href|action)="([^"]*)"`).FindAllStringSubmatch(body, -1)
	var dsar string
	for _, h := range hrefs {
		noRaw("link on the result page", h[1])
		if strings.HasPrefix(h[1], "/investigate/subject?") {
			dsar = strings.ReplaceAll(h[1], "&amp;", "&")
		}
	}
	if dsar == "" {
		t.Fatal("no data-subject report link on the result page")
	}
	resp, body = get(t, c, f.ts.URL+dsar)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "7 accesses by 1 actors") {
		t.Fatalf("GET %s: %d", dsar, resp.StatusCode)
	}
	// The report can be asked for directly by POST as well.
	resp, err = c.PostForm(f.ts.URL+"/investigate/subject", url.Values{"csrf": {csrf}, "subject": {raw}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if l := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(l, "/investigate/subject?h=") {
		t.Fatalf("POST /investigate/subject: %d to %q", resp.StatusCode, l)
	}
	// Raw ids in a GET are refused, pseudonyms are fine.
	for _, u := range []string{"/investigate?subject=" + raw, "/api/history?subject=" + raw, "/investigate/export?format=csv&subject=" + raw,
		"/investigate/subject?subject=" + raw, "/api/blast-radius?subject=" + raw} {
		if resp, body := get(t, c, f.ts.URL+u); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not accepted in URLs") {
			t.Errorf("GET %s: %d, want 400", u, resp.StatusCode)
		}
	}
	if resp, _ := get(t, c, f.ts.URL+"/api/history?since=24h&tenant=retail&subject="+f.pseudo.HashTenant("retail", raw)); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/history by pseudonym: %d", resp.StatusCode)
	}
	// A handle is its user's only.
	other, _ := f.login(t, RoleAdmin)
	if resp, _ := get(t, other, f.ts.URL+loc); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another user's handle: %d, want 404", resp.StatusCode)
	}
	// A signed-out visitor is sent to /login without the id in next.
	anon := f.client(t)
	for _, u := range []string{"/investigate?subject=" + raw + "&since=24h", loc} {
		resp, _ := get(t, anon, f.ts.URL+u)
		noRaw("login redirect", resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("anonymous GET %s: %d", u, resp.StatusCode)
		}
	}
	// Handles expire.
	f.srv.d.Now = func() time.Time { return testNow.Add(11 * time.Minute) }
	if resp, _ := get(t, c, f.ts.URL+loc); resp.StatusCode != http.StatusNotFound {
		t.Errorf("expired handle: %d, want 404", resp.StatusCode)
	}
}

// TestLoginBehindProxy (issue 10 item 10): behind a trusted reverse proxy
// the client is taken from X-Forwarded-For, so one client's failed
// sign-ins do not lock out the others; the back-off is per user name and
// grows; an untrusted peer's X-Forwarded-For is ignored.
func TestLoginBehindProxy(t *testing.T) {
	f := newFixture(t, Config{TrustedProxies: []string{"127.0.0.0/8"}, LoginAttempts: 5, LoginIPAttempts: 8})
	now := testNow
	f.srv.d.Now = func() time.Time { return now }
	try := func(xff, user, pw string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, f.ts.URL+"/login", strings.NewReader(url.Values{"user": {user}, "password": {pw}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", xff)
		resp, err := f.client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range 5 {
		if got := try("198.51.100.1", "admin-user", "wrong").StatusCode; got != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, got)
		}
	}
	// Everybody else behind the same proxy signs in.
	if got := try("198.51.100.2", "secops-user", "pw-secops").StatusCode; got != http.StatusSeeOther {
		t.Fatalf("other user, other client, same proxy: %d, want 303", got)
	}
	if got := try("198.51.100.1", "responder-user", "pw-responder").StatusCode; got != http.StatusSeeOther {
		t.Fatalf("other user, same client: %d, want 303", got)
	}
	// The user who failed waits 1s, then 2s, ...
	resp := try("198.51.100.3", "admin-user", "pw-admin")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("after 5 failures: %d Retry-After %q, want 429 and 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	now = now.Add(time.Second)
	if got := try("198.51.100.3", "admin-user", "wrong").StatusCode; got != http.StatusUnauthorized {
		t.Fatalf("after the 1s back-off: %d", got)
	}
	now = now.Add(time.Second)
	if got := try("198.51.100.3", "admin-user", "pw-admin").StatusCode; got != http.StatusTooManyRequests {
		t.Fatalf("1s after the 6th failure (wait 2s): %d, want 429", got)
	}
	now = now.Add(time.Second)
	if got := try("198.51.100.3", "admin-user", "pw-admin").StatusCode; got != http.StatusSeeOther {
		t.Fatalf("after the 2s back-off, right password: %d", got)
	}
	// A client spraying names is limited by its address (8 here).
	for i := range 8 {
		try("203.0.113.9", "nobody-"+string(rune('a'+i)), "x")
	}
	if got := try("203.0.113.9", "secops-user", "pw-secops").StatusCode; got != http.StatusTooManyRequests {
		t.Fatalf("sprayer's 9th attempt: %d, want 429", got)
	}
	// A forged left part of X-Forwarded-For does not help the sprayer.
	if got := try("10.9.9.9, 203.0.113.9", "secops-user", "pw-secops").StatusCode; got != http.StatusTooManyRequests {
		t.Fatalf("sprayer with a forged hop: %d, want 429", got)
	}
	t.Run("client address", func(t *testing.T) {
		ps := newProxies([]string{"10.0.0.0/8", "192.0.2.7"})
		for _, tc := range []struct{ remote, xff, want string }{
			{"10.1.1.1:5000", "198.51.100.1", "198.51.100.1"},
			{"10.1.1.1:5000", "6.6.6.6, 198.51.100.1, 10.2.2.2", "198.51.100.1"},
			{"192.0.2.7:5000", "198.51.100.1", "198.51.100.1"},
			{"203.0.113.5:5000", "198.51.100.1", "203.0.113.5"}, // not a trusted proxy: header ignored
			{"10.1.1.1:5000", "", "10.1.1.1"},
			{"10.1.1.1:5000", "10.3.3.3", "10.3.3.3"},
			{"10.1.1.1:5000", "junk, 10.3.3.3", "10.3.3.3"},
			{"[::ffff:10.1.1.1]:5000", "2001:db8::1", "2001:db8::1"},
		} {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if got := ps.client(r); got != tc.want {
				t.Errorf("remote %s XFF %q: %s, want %s", tc.remote, tc.xff, got, tc.want)
			}
		}
		if got := newProxies(nil).client(&http.Request{RemoteAddr: "10.1.1.1:1", Header: http.Header{"X-Forwarded-For": {"1.2.3.4"}}}); got != "10.1.1.1" {
			t.Errorf("no trusted proxies: %s", got)
		}
	})
}

// TestBackoffKeysBounded (issue 10 item 10, found in review): the sign-in
// back-off is keyed by the typed user name, which anybody at the form
// chooses (up to the 8 KiB body): a flood of failures with long names kept
// each name whole (8 MiB for 1,000 names, more with more client
// addresses). Long names are now kept as their SHA-256, and still back off
// one by one.
func TestBackoffKeysBounded(t *testing.T) {
	b := newBackoff(5, 15*time.Minute)
	now := testNow
	long := func(i int) string { return strings.Repeat("x", 8<<10-8) + fmt.Sprintf("%08d", i) }
	for i := range 1000 {
		b.fail(long(i), now)
	}
	size := 0
	for k := range b.m {
		size += len(k)
	}
	if len(b.m) != 1000 || size > 1000*(7+64) {
		t.Fatalf("%d keys of %d bytes in all, want 1000 keys of at most %d bytes", len(b.m), size, 1000*(7+64))
	}
	for range 5 {
		b.fail(long(1), now)
	}
	if b.wait(long(1), now) == 0 || b.wait(long(2), now) != 0 {
		t.Fatalf("long names do not back off one by one: %v %v", b.wait(long(1), now), b.wait(long(2), now))
	}
	b.reset(long(1))
	if b.wait(long(1), now) != 0 {
		t.Fatal("reset did not forget a long name")
	}
}

// TestRequestBodyBounded (issue 10 item 12, found in review): the CSRF
// check read a signed-in POST's form before any handler bounded its body,
// so Go parsed up to 10 MB of a urlencoded form (32 MB of a multipart one,
// the rest in temporary files). Every signed-in state-changing request is
// now bounded to 64 KiB: a 1 MiB form is refused, a normal one still works.
func TestRequestBodyBounded(t *testing.T) {
	f := newFixture(t, Config{})
	c, csrf := f.login(t, RoleResponder)
	post := func(extra int) int {
		t.Helper()
		v := url.Values{"csrf": {csrf}, "actor": {"agent-17"}, "since": {"24h"}, "pad": {strings.Repeat("x", extra)}}
		resp, err := c.PostForm(f.ts.URL+"/investigate", v)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(1 << 20); got == http.StatusSeeOther || got < 400 {
		t.Errorf("a 1 MiB form was taken: %d", got)
	}
	if got := post(1 << 10); got != http.StatusSeeOther {
		t.Errorf("a 1 KiB form: %d, want 303", got)
	}
}
