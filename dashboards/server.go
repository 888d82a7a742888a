// Package dashboards serves chatwarden's web pages and their JSON API:
// the live alert feed with evidence charts and the Slack buttons' actions
// (/alerts), investigation of access history, timelines, blast radius and
// exports (/investigate), data-subject access reports and their
// customer-readable form (/investigate/subject/customer, HTML and PDF), the weekly
// breach-risk summary (/reports/weekly) and the audit trail (/audit).
// Users sign in with a role (secops, responder, manager, admin); every
// history, export and data-subject query is written to the audit trail.
// Pages are rendered on the server from embedded templates with inline SVG
// charts; nothing is loaded from the internet. Grafana dashboards for the
// same data ship in dashboards/grafana/.
package dashboards

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/report"
	"github.com/chatwarden/chatwarden/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

//go:embed openapi.json
var openAPI []byte

// EventQueries reads access history. *store.Store implements it.
type EventQueries interface {
	// History returns matching events newest first and whether more
	// matched than the filter's limit.
	History(ctx context.Context, f store.HistoryFilter) ([]models.Event, bool, error)
	// Exposure returns the blast radius of the matching events.
	Exposure(ctx context.Context, f store.HistoryFilter) (store.Exposure, error)
	// ActorSeries returns an actor's activity per bucket.
	ActorSeries(ctx context.Context, tenant, actor string, from, to time.Time, bucket time.Duration) ([]store.Point, error)
}

// SubjectQueries answers data-subject access requests. *store.Store
// implements it.
type SubjectQueries interface {
	// SubjectAccesses returns who accessed the customers (pseudonyms) in
	// [from, to), and whether lines were cut.
	// tenants (nil: all) bounds the tenants searched.
	SubjectAccesses(ctx context.Context, tenants, subjectIDs []string, from, to time.Time) ([]store.SubjectAccess, bool, error)
	// SubjectShares returns where the customers' data was shared or
	// exported to (named destinations) in [from, to), and whether lines
	// were cut. tenants (nil: all) bounds the tenants searched.
	SubjectShares(ctx context.Context, tenants, subjectIDs []string, from, to time.Time) ([]store.SubjectShare, bool, error)
}

// AuditLog is the audit trail. *store.Store implements it.
type AuditLog interface {
	// InsertAudit appends one entry; an error means the query it records
	// must not be answered.
	InsertAudit(ctx context.Context, a store.AuditEntry) error
	// AuditLog returns entries newest first.
	AuditLog(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error)
}

// AlertReader reads alerts. *store.Store implements it.
type AlertReader interface {
	// QueryAlerts returns the alerts matching q, most recently seen first.
	QueryAlerts(ctx context.Context, q store.AlertQuery) ([]models.Alert, error)
	// Alert returns one alert; found is false when there is none.
	Alert(ctx context.Context, id string) (models.Alert, bool, error)
}

// ActionRequest is one alert action asked for in the web UI or the API.
type ActionRequest struct {
	AlertID, Action string
	// User and Role are the signed-in user's (or "token:<name>" and the
	// token's role); alerting checks the role per action and severity.
	User string
	Role Role
	// Tenants are the principal's tenants (empty: every tenant); alerting
	// refuses an action on an alert of another tenant.
	Tenants []string
	// Reason is why; a false-positive mark requires one.
	Reason string
}

// AlertActions carries out what the Slack buttons do, wired in cmd to the
// alert package.
type AlertActions interface {
	// Act applies req at now. An error means nothing changed: one wrapping
	// ErrUnknownAlert (404), ErrActionNotAllowed (403) or
	// ErrActionNeedsReason (400), or another failure.
	Act(ctx context.Context, req ActionRequest, now time.Time) error
}

// AlertActionsFunc adapts a function to AlertActions.
type AlertActionsFunc func(ctx context.Context, req ActionRequest, now time.Time) error

// Act calls f.
func (f AlertActionsFunc) Act(ctx context.Context, req ActionRequest, now time.Time) error {
	return f(ctx, req, now)
}

// ErrUnknownAlert is what AlertActions returns for an alert id that does not
// exist (the pages answer 404).
var ErrUnknownAlert = errors.New("unknown alert")

// ErrActionNotAllowed is what AlertActions returns when the role may not take
// the action on that alert (e.g. a responder silencing a critical alert).
var ErrActionNotAllowed = errors.New("action not allowed")

// ErrActionNeedsReason is what AlertActions returns for a false-positive mark
// without a reason.
var ErrActionNeedsReason = errors.New("action needs a reason")

// Actions are the actions an alert offers, as on the Slack buttons.
var Actions = []string{"acknowledge", "false_positive", "escalate", "silence_24h"}

// WeeklyFunc builds the weekly summary of a week over tenants (nil: every
// tenant) (report.Reporter.WeeklyFor).
type WeeklyFunc func(ctx context.Context, w report.Week, tenants []string, now time.Time) (*report.Summary, error)

// Deps are what the server reads and calls.
type Deps struct {
	Events   EventQueries
	Subjects SubjectQueries
	Audit    AuditLog
	Alerts   AlertReader
	// Actions may be nil: the action buttons are then disabled.
	Actions AlertActions
	Weekly  WeeklyFunc
	// Incidents, when set, serves the breach assessment
	// (/incidents/{id}); without it those pages answer 503.
	Incidents report.IncidentSource
	// Pseudonymize returns the pseudonyms of a raw customer id of a tenant
	// under every key version and scheme (pseudonym.Pseudonymizer.AllTenant).
	Pseudonymize func(tenant, raw string) []string
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *slog.Logger
	// Registerer receives the server's metrics (default: none).
	Registerer prometheus.Registerer
}

// Server is the web server's http.Handler.
type Server struct {
	cfg      Config
	d        Deps
	auth     *authenticator
	sessions *sessions
	// limiter counts failed sign-ins per client address; backoff delays
	// them per user name.
	limiter *limiter
	backoff *backoff
	proxies proxies
	lookups *lookups
	// tokenLimiter counts wrong API tokens per client.
	tokenLimiter *limiter
	tmpl         map[string]*template.Template
	renderer     *report.Renderer
	mux          *http.ServeMux
	routes       []route
	metrics      *metrics
	log          *slog.Logger
}

type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	loginFailures prometheus.Counter
	tokenFailures *prometheus.CounterVec
	auditRows     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_dashboards_requests_total",
			Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "chatwarden_dashboards_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route (method and pattern).",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}}, []string{"route"}),
		loginFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_dashboards_login_failures_total",
			Help: "Failed or rate-limited sign-in attempts."}),
		tokenFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_dashboards_token_failures_total",
			Help: "Requests with a wrong API token (wrong) or refused unchecked after too many (rate_limited)."}, []string{"result"}),
		auditRows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_dashboards_audited_rows_total",
			Help: "Rows returned by audited queries, by action."}, []string{"action"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.loginFailures, m.tokenFailures, m.auditRows)
	}
	return m
}

// route is one registered endpoint: who may call it and what it does.
type route struct {
	method, path string
	roles        []Role // nil: public
	api          bool
	h            func(w http.ResponseWriter, r *http.Request) error
}

// New parses the templates and builds the server. A template error fails
// here, at start-up.
func New(cfg Config, d Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if d.Events == nil || d.Subjects == nil || d.Audit == nil || d.Alerts == nil || d.Weekly == nil || d.Pseudonymize == nil {
		return nil, errors.New("dashboards: Events, Subjects, Audit, Alerts, Weekly and Pseudonymize are required")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	rd, err := report.NewRenderer()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, d: d, auth: newAuthenticator(cfg), sessions: newSessions(cfg.SessionTTL),
		limiter: newLimiter(cfg.LoginIPAttempts, cfg.LoginWindow), backoff: newBackoff(cfg.LoginAttempts, cfg.LoginWindow),
		proxies: newProxies(cfg.TrustedProxies), lookups: newLookups(cfg.LookupTTL), tokenLimiter: newLimiter(cfg.TokenAttempts, cfg.TokenWindow), renderer: rd, metrics: newMetrics(d.Registerer), log: d.Log}
	if err := s.parseTemplates(); err != nil {
		return nil, err
	}
	s.routes = s.routeTable()
	s.mux = http.NewServeMux()
	for _, rt := range s.routes {
		s.mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
	assets, _ := fs.Sub(assetFS, "assets")
	s.mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))
	s.mux.HandleFunc("GET /assets/customer-report.css", s.customerStyle)
	return s, nil
}

func (s *Server) now() time.Time { return s.d.Now().UTC() }

var (
	anyRole      = []Role{RoleSecOps, RoleResponder, RoleManager, RoleAdmin}
	alertRoles   = []Role{RoleSecOps, RoleResponder, RoleAdmin}
	historyRoles = []Role{RoleSecOps, RoleResponder, RoleAdmin}
	subjectRoles = []Role{RoleResponder, RoleAdmin}
	blastRoles   = []Role{RoleSecOps, RoleResponder, RoleManager, RoleAdmin}
	adminRoles   = []Role{RoleAdmin}
	reportRoles  = anyRole
	publicRoute  []Role
)

// routeTable lists every endpoint and who may call it.
func (s *Server) routeTable() []route {
	return []route{
		{"GET", "/healthz", publicRoute, false, s.healthz},
		{"GET", "/login", publicRoute, false, s.loginPage},
		{"POST", "/login", publicRoute, false, s.loginSubmit},
		{"POST", "/logout", anyRole, false, s.logout},
		{"GET", "/{$}", anyRole, false, s.home},

		{"GET", "/alerts", alertRoles, false, s.alertsPage},
		{"GET", "/alerts/{id}", alertRoles, false, s.alertPage},
		{"GET", "/incidents/{id}", alertRoles, false, s.incidentPage},
		{"POST", "/alerts/{id}/action", alertRoles, false, s.alertActionForm},
		{"GET", "/investigate", historyRoles, false, s.investigatePage},
		{"POST", "/investigate", historyRoles, false, s.investigateSubmit},
		{"GET", "/investigate/export", historyRoles, false, s.exportHistory},
		{"GET", "/investigate/blast", blastRoles, false, s.blastPage},
		{"GET", "/investigate/subject", subjectRoles, false, s.subjectPage},
		{"POST", "/investigate/subject", subjectRoles, false, s.subjectSubmit},
		{"GET", "/investigate/subject/customer", subjectRoles, false, s.customerPage},
		{"GET", "/reports/weekly", reportRoles, false, s.weeklyPage},
		{"GET", "/audit", adminRoles, false, s.auditPage},

		{"GET", "/api/openapi.json", anyRole, true, s.apiOpenAPI},
		{"GET", "/api/me", anyRole, true, s.apiMe},
		{"GET", "/api/alerts", alertRoles, true, s.apiAlerts},
		{"GET", "/api/alerts/{id}", alertRoles, true, s.apiAlert},
		{"GET", "/api/incidents/{id}", alertRoles, true, s.apiIncident},
		{"POST", "/api/alerts/{id}/action", alertRoles, true, s.apiAlertAction},
		{"GET", "/api/history", historyRoles, true, s.apiHistory},
		{"POST", "/api/history", historyRoles, true, s.apiHistory},
		{"GET", "/api/blast-radius", blastRoles, true, s.apiBlast},
		{"POST", "/api/blast-radius", blastRoles, true, s.apiBlast},
		{"POST", "/api/subjects", subjectRoles, true, s.apiSubject},
		{"POST", "/api/subjects/customer-report", subjectRoles, true, s.apiCustomer},
		{"GET", "/api/reports/weekly", reportRoles, true, s.apiWeekly},
		{"GET", "/api/audit", adminRoles, true, s.apiAudit},
	}
}

// ServeHTTP serves the pages, the API and the assets.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	s.mux.ServeHTTP(w, r)
}

// statusWriter remembers the status code for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// httpError is an error with the status code to answer.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// maxRequestBody bounds the body of every signed-in state-changing request
// (the largest the pages and API take is a 16 KiB look-up).
const maxRequestBody = 64 << 10

// wrap authenticates, authorizes, checks CSRF and turns handler errors into
// responses.
func (s *Server) wrap(rt route) http.Handler {
	name := rt.method + " " + rt.path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		defer func() {
			s.metrics.requests.WithLabelValues(name, fmt.Sprint(max(sw.code, 200))).Inc()
			s.metrics.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
		}()
		if rt.roles != nil {
			p, err := s.identify(sw, r)
			if err != nil {
				s.fail(sw, r, true, err)
				return
			}
			if p == nil {
				if rt.api || strings.HasPrefix(r.URL.Path, "/api/") || r.Method != http.MethodGet {
					s.fail(sw, r, rt.api, errorf(http.StatusUnauthorized, "sign in or send an API token"))
					return
				}
				next := r.URL.RequestURI()
				if q := searchOf(r.URL.Query()); q.Subject != "" && !pseudonym.IsPseudonym(q.Subject) {
					next = r.URL.Path // never carry a customer id on to /login
				}
				http.Redirect(sw, r, "/login?next="+urlQueryEscape(next), http.StatusSeeOther)
				return
			}
			if !slices.Contains(rt.roles, p.Role) {
				s.fail(sw, r, rt.api, errorf(http.StatusForbidden, "role %s may not open this page", p.Role))
				return
			}
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				// Before the CSRF check reads the form: without a bound,
				// Go parses up to 10 MB of a urlencoded body and 32 MB of
				// a multipart one (the rest in temporary files).
				r.Body = http.MaxBytesReader(sw, r.Body, maxRequestBody)
			}
			if r.Method != http.MethodGet && r.Method != http.MethodHead && !csrfOK(r, p) {
				s.fail(sw, r, rt.api, errorf(http.StatusForbidden, "missing or wrong CSRF token"))
				return
			}
			r = r.WithContext(withPrincipal(r.Context(), p))
		}
		if err := rt.h(sw, r); err != nil {
			s.fail(sw, r, rt.api, err)
		}
	})
}

// fail answers an error as JSON (API) or an error page.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, api bool, err error) {
	code, msg := http.StatusInternalServerError, "internal error"
	var he *httpError
	switch {
	case errors.As(err, &he):
		code, msg = he.code, he.msg
	case errors.Is(err, context.Canceled):
		return
	default:
		// The route, not the URL: a refused GET can still carry a raw
		// customer id in its query (?subject=).
		s.log.Error("serving page", "route", r.Pattern, "err", err)
	}
	if api || strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, code, map[string]string{"error": msg})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_ = s.tmpl["error"].ExecuteTemplate(w, "layout", s.pageData(r, "Error", map[string]any{"Code": code, "Message": msg}))
}
