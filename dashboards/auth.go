package dashboards

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// sessionCookie is the name of the session cookie.
const sessionCookie = "cw_session"

// principal is who is making a request.
type principal struct {
	Name string
	Role Role
	// CSRF is the session's anti-forgery token; empty for API tokens,
	// which are not sent by browsers on their own and need none.
	CSRF string
	// Token is true when the request authenticated with an API token.
	Token bool
	// Tenants are the tenants the principal may see; nil means all.
	Tenants []string
}

// mayTenant reports whether p may see tenant t's data.
func (p *principal) mayTenant(t string) bool {
	return len(p.Tenants) == 0 || slices.Contains(p.Tenants, t)
}

type ctxKey struct{}

func withPrincipal(ctx context.Context, p *principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

func principalOf(r *http.Request) *principal {
	p, _ := r.Context().Value(ctxKey{}).(*principal)
	return p
}

type session struct {
	p       principal
	expires time.Time
}

// sessions keeps the signed-in sessions in memory (a restart signs
// everybody out).
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	ttl time.Duration
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{m: map[string]*session{}, ttl: ttl}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *sessions) create(name string, role Role, tenants []string, now time.Time) (id string, sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m { // drop expired sessions
		if now.After(v.expires) {
			delete(s.m, k)
		}
	}
	id = randomToken()
	sess = &session{p: principal{Name: name, Role: role, CSRF: randomToken(), Tenants: tenants}, expires: now.Add(s.ttl)}
	s.m[id] = sess
	return id, sess
}

func (s *sessions) get(id string, now time.Time) (principal, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	if !ok {
		return principal{}, false
	}
	if now.After(v.expires) {
		delete(s.m, id)
		return principal{}, false
	}
	return v.p, true
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// limiter counts failed login attempts per key (IP address, user name) in a
// sliding window.
type limiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	fails  map[string][]time.Time
}

// maxLimiterKeys is how many keys a limiter holds before it sweeps expired
// ones on the next failure.
const maxLimiterKeys = 10000

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, fails: map[string][]time.Time{}}
}

func (l *limiter) prune(key string, now time.Time) []time.Time {
	ts := l.fails[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= l.window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.fails, key)
	} else {
		l.fails[key] = ts
	}
	return ts
}

// blocked reports whether any key has used up its attempts, and when the
// oldest counted attempt leaves the window.
func (l *limiter) blocked(now time.Time, keys ...string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if ts := l.prune(k, now); len(ts) >= l.max {
			return true, l.window - now.Sub(ts[0])
		}
	}
	return false, 0
}

func (l *limiter) fail(now time.Time, keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) >= maxLimiterKeys { // many clients: forget the expired ones
		for k := range l.fails {
			l.prune(k, now)
		}
	}
	for _, k := range keys {
		l.fails[k] = append(l.prune(k, now), now)
	}
}

func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
}

// authenticator checks passwords and API tokens.
type authenticator struct {
	users  map[string]User
	tokens *tokenTable
	dummy  []byte
}

func newAuthenticator(c Config) *authenticator {
	a := &authenticator{users: map[string]User{}, tokens: newTokenTable(c.Tokens)}
	for _, u := range c.Users {
		a.users[u.Name] = u
	}
	a.dummy, _ = bcrypt.GenerateFromPassword([]byte("not a password"), bcrypt.DefaultCost)
	return a
}

// password returns the user whose name and password match.
func (a *authenticator) password(name, password string) (User, bool) {
	u, ok := a.users[name]
	hash := []byte(u.PasswordHash)
	if !ok {
		hash = a.dummy // same cost whether or not the user exists
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	return u, ok && err == nil
}

// token returns the API token that raw is: one SHA-256 and a map look-up,
// whatever raw and however many tokens are configured.
func (a *authenticator) token(raw string) (Token, bool) {
	return a.tokens.lookup(raw)
}

// identify returns the principal of a request: a session cookie or a bearer
// token; nil when there is neither. A wrong bearer token counts against the
// client; a client with too many is answered 429 before its token is looked
// at.
func (s *Server) identify(w http.ResponseWriter, r *http.Request) (*principal, error) {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		now, key := s.now(), "ip:"+s.clientIP(r)
		if blocked, wait := s.tokenLimiter.blocked(now, key); blocked {
			s.metrics.tokenFailures.WithLabelValues("rate_limited").Inc()
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
			return nil, errorf(http.StatusTooManyRequests, "too many requests with a wrong API token; try again later")
		}
		if t, ok := s.auth.token(strings.TrimPrefix(h, "Bearer ")); ok {
			return &principal{Name: "token:" + t.Name, Role: t.Role, Token: true, Tenants: t.Tenants}, nil
		}
		s.tokenLimiter.fail(now, key)
		s.metrics.tokenFailures.WithLabelValues("wrong").Inc()
		return nil, nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, nil
	}
	p, ok := s.sessions.get(c.Value, s.now())
	if !ok {
		return nil, nil
	}
	return &p, nil
}

// csrfOK reports whether a state-changing request carries its session's
// anti-forgery token (form field "csrf" or header X-CSRF-Token).
func csrfOK(r *http.Request, p *principal) bool {
	if p.Token {
		return true
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(p.CSRF)) == 1
}

// clientIP is the address of the client: the remote address, or behind a
// trusted proxy (dashboards.trusted_proxies) the client it forwarded for.
func (s *Server) clientIP(r *http.Request) string {
	return s.proxies.client(r)
}

func (s *Server) setSessionCookie(w http.ResponseWriter, id string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: id, Path: "/", Expires: expires, MaxAge: int(s.cfg.SessionTTL.Seconds()),
		Secure: !s.cfg.InsecureCookies, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

func (s *Server) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		Secure: !s.cfg.InsecureCookies, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// securityHeaders sets the headers every response carries.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}
