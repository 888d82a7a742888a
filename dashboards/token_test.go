package dashboards

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestNewToken: a minted token authenticates, has the cw_<id>_<secret>
// shape, and no near miss does.
func TestNewToken(t *testing.T) {
	raw, tok, err := NewToken("ci", RoleSecOps)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(raw, "cw_"+tok.ID+"_") || len(raw) != len("cw_")+tokenIDLen+1+tokenSecretLen {
		t.Fatalf("token %q id %q", raw, tok.ID)
	}
	if err := (Config{Tokens: []Token{tok}}).Validate(); err != nil {
		t.Fatalf("minted token does not validate: %v", err)
	}
	a := newAuthenticator(Config{Tokens: []Token{tok}})
	if got, ok := a.token(raw); !ok || got.Name != "ci" || got.Role != RoleSecOps {
		t.Fatalf("minted token not accepted: %+v %v", got, ok)
	}
	last := raw[len(raw)-1]
	flip := byte('A')
	if last == 'A' {
		flip = 'B'
	}
	for _, bad := range []string{"", raw[:len(raw)-1], raw + "x", raw[:len(raw)-1] + string(flip), strings.ToUpper(raw), "cw_" + tok.ID + "_", tok.SHA256} {
		if _, ok := a.token(bad); ok {
			t.Errorf("near miss %q accepted", bad)
		}
	}
	if _, _, err := NewToken("x", "root"); err == nil {
		t.Error("role root accepted")
	}
}

// TestAPITokenFailuresRateLimited (issue 10 item 4): a client that keeps
// sending wrong bearer tokens is answered 429 without its token being
// checked; another client, and a good token from it, are unaffected; the
// failures are counted.
func TestAPITokenFailuresRateLimited(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{TokenAttempts: 5, TokenWindow: time.Minute})
	reg := prometheus.NewPedanticRegistry()
	f.srv.metrics = newMetrics(reg)
	call := func(remote, token string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/api/me", nil)
		req.RemoteAddr = remote
		req.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		f.srv.ServeHTTP(w, req)
		return w
	}
	for i := range 5 {
		if w := call("198.51.100.7:4000", randomBadToken()); w.Code != http.StatusUnauthorized {
			t.Fatalf("bad token %d: %d, want 401", i, w.Code)
		}
	}
	for i := range 100 {
		w := call("198.51.100.7:4001", randomBadToken())
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
			t.Fatalf("bad token %d after the limit: %d (Retry-After %q), want 429", 5+i, w.Code, w.Header().Get("Retry-After"))
		}
	}
	if w := call("198.51.100.7:4002", apiToken); w.Code != http.StatusTooManyRequests {
		t.Fatalf("good token from the limited client: %d, want 429 until the window passes", w.Code)
	}
	if w := call("203.0.113.9:5000", apiToken); w.Code != http.StatusOK {
		t.Fatalf("good token from another client: %d %s", w.Code, w.Body)
	}
	if got := testutil.ToFloat64(f.srv.metrics.tokenFailures.WithLabelValues("wrong")); got != 5 {
		t.Errorf("wrong-token count %v, want 5", got)
	}
	if got := testutil.ToFloat64(f.srv.metrics.tokenFailures.WithLabelValues("rate_limited")); got != 101 {
		t.Errorf("rate-limited count %v, want 101", got)
	}
	// The window passes: the client may try again.
	f.srv.d.Now = func() time.Time { return testNow.Add(61 * time.Second) }
	if w := call("198.51.100.7:4003", apiToken); w.Code != http.StatusOK {
		t.Fatalf("good token after the window: %d", w.Code)
	}
}

func randomBadToken() string {
	id, secret := make([]byte, tokenIDLen/2), make([]byte, 32)
	_, _ = rand.Read(id)
	_, _ = rand.Read(secret)
	return "cw_" + hex.EncodeToString(id) + "_" + base64.RawURLEncoding.EncodeToString(secret)
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBadAPITokens (issue 10 item 4) sends 1,000 requests with a
// random bearer token per iteration through the server, with 50 tokens
// configured, and reports the process CPU time they cost
// (cpu_ms/1000_bad_requests). "distinct clients" defeats the rate limit (a
// new address per request), so it measures the check itself; "one client"
// is the rate-limited case. Run:
//
//	go test -run '^$' -bench BadAPITokens -benchtime 5x ./dashboards/
func BenchmarkBadAPITokens(b *testing.B) {
	var toks []Token
	for i := range 50 {
		_, tok, err := NewToken(fmt.Sprintf("t%d", i), RoleResponder)
		if err != nil {
			b.Fatal(err)
		}
		toks = append(toks, tok)
	}
	f := newFixture(b, Config{Tokens: toks, Users: []User{{Name: "u", Role: RoleAdmin, PasswordHash: hash(b, "pw")}}})
	bad := make([]string, 1000)
	for i := range bad {
		bad[i] = randomBadToken()
		if i%2 == 1 {
			bad[i] = "garbage-" + bad[i]
		}
	}
	for _, mode := range []string{"distinct clients", "one client"} {
		b.Run(strings.ReplaceAll(mode, " ", "_"), func(b *testing.B) {
			var cpu time.Duration
			n := 0
			for b.Loop() {
				f.srv.tokenLimiter = newLimiter(f.srv.cfg.TokenAttempts, f.srv.cfg.TokenWindow)
				start := cpuTime(b)
				for i, tok := range bad {
					req := httptest.NewRequest(http.MethodGet, "/api/alerts", nil)
					req.RemoteAddr = "192.0.2.1:1000"
					if mode == "distinct clients" {
						req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:1000", n%256, i/256, i%256)
					}
					req.Header.Set("Authorization", "Bearer "+tok)
					w := httptest.NewRecorder()
					f.srv.ServeHTTP(w, req)
					if w.Code != http.StatusUnauthorized && w.Code != http.StatusTooManyRequests {
						b.Fatalf("bad token answered %d", w.Code)
					}
				}
				cpu += cpuTime(b) - start
				n++
			}
			ms := float64(cpu) / float64(n) / float64(time.Millisecond)
			b.ReportMetric(ms, "cpu_ms/1000_bad_requests")
			b.Logf("%s: 1000 bad-token requests cost %.1f ms CPU (mean of %d runs, 50 tokens configured)", mode, ms, n)
		})
	}
}
