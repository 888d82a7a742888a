package dashboards

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/report"
	"github.com/chatwarden/chatwarden/report/chart"
	"github.com/chatwarden/chatwarden/store"
)

// pages are the page templates; each is parsed with layout.html.
var pages = []string{"login", "alerts", "alert", "investigate", "blast", "subject", "weekly", "audit", "error", "incident", "customer"}

func (s *Server) parseTemplates() error {
	funcs := report.Funcs()
	funcs["ts"] = func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	}
	funcs["short"] = func(t time.Time) string { return t.UTC().Format("Jan 2 15:04") }
	funcs["join"] = strings.Join
	funcs["ago"] = func(t time.Time) string { return report.Human(s.now().Sub(t)) + " ago" }
	funcs["can"] = func(p *principal, what string) bool { return p != nil && can(p.Role, what) }
	funcs["query"] = func(v url.Values, k, val string) template.URL {
		c := url.Values{}
		for key, vs := range v {
			c[key] = slices.Clone(vs)
		}
		c.Set(k, val)
		return template.URL("?" + c.Encode()) //nolint:gosec // encoded query
	}
	funcs["f1"] = func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	funcs["sevname"] = func(sv models.Severity) string { return sv.String() }
	funcs["neg"] = func(f float64) float64 { return -f }
	funcs["list"] = func(xs ...string) []string { return xs }
	funcs["actions"] = func() []string {
		out := make([]string, len(models.Actions))
		for i, a := range models.Actions {
			out[i] = string(a)
		}
		return out
	}
	s.tmpl = map[string]*template.Template{}
	for _, p := range pages {
		t := template.New(p).Funcs(funcs)
		if _, err := t.ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html"); err != nil {
			return fmt.Errorf("parsing template %s: %w", p, err)
		}
		if p == "weekly" {
			if _, err := t.AddParseTree("weekly-body", s.renderer.HTMLTemplates().Lookup("weekly-body").Tree); err != nil {
				return fmt.Errorf("adding weekly body: %w", err)
			}
			if _, err := t.AddParseTree("violation", s.renderer.HTMLTemplates().Lookup("violation").Tree); err != nil {
				return fmt.Errorf("adding weekly violation: %w", err)
			}
		}
		s.tmpl[p] = t
	}
	return nil
}

// can says which navigation items a role sees.
func can(r Role, what string) bool {
	switch what {
	case "alerts":
		return slices.Contains(alertRoles, r)
	case "investigate":
		return slices.Contains(historyRoles, r)
	case "subject":
		return slices.Contains(subjectRoles, r)
	case "blast":
		return slices.Contains(blastRoles, r)
	case "weekly":
		return slices.Contains(reportRoles, r)
	case "audit":
		return slices.Contains(adminRoles, r)
	}
	return false
}

type pageData struct {
	Title   string
	User    *principal
	Path    string
	Query   url.Values
	Refresh int
	Data    any
	Now     time.Time
}

func (s *Server) pageData(r *http.Request, title string, data any) pageData {
	return pageData{Title: title, User: principalOf(r), Path: r.URL.Path, Query: r.URL.Query(), Data: data, Now: s.now()}
}

// render executes a page into a buffer first, so that a template error
// answers 500 instead of half a page.
func (s *Server) render(w http.ResponseWriter, page string, pd pageData) error {
	var buf bytes.Buffer
	if err := s.tmpl[page].ExecuteTemplate(&buf, "layout", pd); err != nil {
		return fmt.Errorf("rendering %s: %w", page, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err := buf.WriteTo(w)
	return err
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "text/plain")
	_, err := w.Write([]byte("ok\n"))
	return err
}

func homeOf(r Role) string {
	switch r {
	case RoleManager:
		return "/reports/weekly"
	case RoleResponder:
		return "/investigate"
	}
	return "/alerts"
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) error {
	http.Redirect(w, r, homeOf(principalOf(r).Role), http.StatusSeeOther)
	return nil
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	// Browsers drop tabs and newlines from a URL and read a backslash as a
	// slash: "/\t/evil.example" would leave the site. No control character
	// has a place in a path of ours.
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") ||
		strings.ContainsFunc(next, unicode.IsControl) {
		return ""
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" {
		return ""
	}
	return next
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) error {
	return s.render(w, "login", s.pageData(r, "Sign in", map[string]string{"Next": safeNext(r.URL.Query().Get("next"))}))
}

func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	name, password := r.PostFormValue("user"), r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	now := s.now()
	ipKey := "ip:" + s.clientIP(r)
	fail := func(code int, msg string) error {
		s.metrics.loginFailures.Inc()
		w.WriteHeader(code)
		return s.render(w, "login", s.pageData(r, "Sign in", map[string]string{"Next": next, "Error": msg, "User": name}))
	}
	// Per client address: many failures across names (spraying). Per user
	// name: a back-off that grows with each failure in a row, so that
	// guessing one account's password is slow and nobody else is held up.
	wait := s.backoff.wait(name, now)
	if blocked, ipWait := s.limiter.blocked(now, ipKey); blocked {
		wait = max(wait, ipWait)
	}
	if wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		s.log.Warn("login rate-limited", "user", name, "ip", s.clientIP(r))
		return fail(http.StatusTooManyRequests, fmt.Sprintf("Too many failed attempts. Try again in %s.", report.Human(wait.Round(time.Second))))
	}
	u, ok := s.auth.password(name, password)
	if !ok {
		s.limiter.fail(now, ipKey)
		s.backoff.fail(name, now)
		s.auditLogin(r, name, false)
		return fail(http.StatusUnauthorized, "Wrong user name or password.")
	}
	if err := s.auditLogin(r, u.Name, true); err != nil {
		return err // no session without its audit entry
	}
	s.backoff.reset(name)
	id, sess := s.sessions.create(u.Name, u.Role, u.Tenants, now)
	s.setSessionCookie(w, id, sess.expires)
	if next == "" {
		next = homeOf(u.Role)
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.delete(c.Value)
	}
	s.clearSessionCookie(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

func alertQueryOf(v url.Values) store.AlertQuery {
	lim, _ := strconv.Atoi(v.Get("limit"))
	return store.AlertQuery{Severity: v.Get("severity"), Status: v.Get("status"), Detector: strings.TrimSpace(v.Get("detector")),
		Tenant: strings.TrimSpace(v.Get("tenant")), ActorID: strings.TrimSpace(v.Get("actor")), Limit: lim}
}

func (s *Server) queryAlerts(r *http.Request) ([]models.Alert, error) {
	q := alertQueryOf(r.URL.Query())
	if q.Severity != "" {
		if _, err := models.ParseSeverity(q.Severity); err != nil {
			return nil, errorf(http.StatusBadRequest, "%v", err)
		}
	}
	if q.Status != "" && !slices.Contains(models.AlertStatuses, models.AlertStatus(q.Status)) {
		return nil, errorf(http.StatusBadRequest, "status %q is not one of %v", q.Status, models.AlertStatuses)
	}
	scope, err := tenantScope(r, q.Tenant)
	if err != nil {
		return nil, err
	}
	q.Tenants = scope
	as, err := s.d.Alerts.QueryAlerts(r.Context(), q)
	if as == nil {
		as = []models.Alert{}
	}
	return as, err
}

type alertsView struct {
	Alerts     []models.Alert
	Severities []string
	Statuses   []models.AlertStatus
	BySeverity map[string]int
}

func (s *Server) alertsPage(w http.ResponseWriter, r *http.Request) error {
	as, err := s.queryAlerts(r)
	if err != nil {
		return err
	}
	v := alertsView{Alerts: as, Severities: []string{"critical", "high", "medium", "low", "info"}, Statuses: models.AlertStatuses, BySeverity: map[string]int{}}
	for _, a := range as {
		v.BySeverity[a.Severity.String()]++
	}
	pd := s.pageData(r, "Alerts", v)
	pd.Refresh = s.cfg.RefreshSeconds
	return s.render(w, "alerts", pd)
}

type alertView struct {
	Alert   models.Alert
	Chart   chartData
	Blast   BlastRadius
	Actions []string
	Enabled bool
	Done    string
}

type chartData struct {
	Title  string
	SVG    template.HTML
	Points int
}

func (s *Server) alertDetail(r *http.Request) (alertView, error) {
	a, found, err := s.d.Alerts.Alert(r.Context(), r.PathValue("id"))
	if err != nil {
		return alertView{}, err
	}
	if !found || !principalOf(r).mayTenant(a.Tenant) { // another tenant's alert does not exist for them
		return alertView{}, errorf(http.StatusNotFound, "no alert %q", r.PathValue("id"))
	}
	c, err := s.evidenceChart(r.Context(), a)
	if err != nil {
		return alertView{}, err
	}
	from, to := alertWindow(a)
	x, err := s.d.Events.Exposure(r.Context(), store.HistoryFilter{Tenant: a.Tenant, ActorID: a.ActorID, From: from, To: to})
	if err != nil {
		return alertView{}, err
	}
	if err := s.audit(r, "blast_radius", "alert="+a.ID+" tenant="+a.Tenant+" actor="+a.ActorID+
		" from="+from.Format(time.RFC3339)+" to="+to.Format(time.RFC3339), int(x.Events), []string{a.Tenant}); err != nil {
		return alertView{}, err
	}
	return alertView{Alert: a, Chart: c, Blast: BlastRadius{Tenant: a.Tenant, Actor: a.ActorID, AlertID: a.ID, From: from, To: to, Exposure: x},
		Actions: Actions, Enabled: s.d.Actions != nil, Done: r.URL.Query().Get("done")}, nil
}

func (s *Server) alertPage(w http.ResponseWriter, r *http.Request) error {
	v, err := s.alertDetail(r)
	if err != nil {
		return err
	}
	pd := s.pageData(r, "Alert "+v.Alert.ID, v)
	return s.render(w, "alert", pd)
}

// act carries out an alert action for the signed-in user.
func (s *Server) act(r *http.Request, id, action, reason string) error {
	if !slices.Contains(Actions, action) {
		return errorf(http.StatusBadRequest, "action %q is not one of %v", action, Actions)
	}
	if s.d.Actions == nil {
		return errorf(http.StatusServiceUnavailable, "alert actions are not wired in this process")
	}
	p := principalOf(r)
	// The alert's tenant: for the tenant check, and for the audit row.
	a, found, err := s.d.Alerts.Alert(r.Context(), id)
	if err != nil {
		return err
	}
	if !found || !p.mayTenant(a.Tenant) {
		return errorf(http.StatusNotFound, "no alert %q", id)
	}
	about := []string{a.Tenant}
	reason = strings.TrimSpace(reason)
	err = s.d.Actions.Act(r.Context(), ActionRequest{AlertID: id, Action: action, User: p.Name, Role: p.Role, Tenants: p.Tenants, Reason: reason}, s.now())
	switch {
	case errors.Is(err, ErrUnknownAlert):
		return errorf(http.StatusNotFound, "no alert %q", id)
	case errors.Is(err, ErrActionNotAllowed):
		_ = s.audit(r, "alert_action_refused", "alert="+id+" action="+action, 0, about)
		return errorf(http.StatusForbidden, "%v", err)
	case errors.Is(err, ErrActionNeedsReason):
		return errorf(http.StatusBadRequest, "a false-positive mark needs a reason")
	case err != nil:
		return err
	}
	detail := "alert=" + id + " action=" + action
	if reason != "" {
		detail += " reason=" + strconv.Quote(reason)
	}
	return s.audit(r, "alert_action", detail, 1, about)
}

func (s *Server) alertActionForm(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.act(r, id, r.PostFormValue("action"), r.PostFormValue("reason")); err != nil {
		return err
	}
	http.Redirect(w, r, "/alerts/"+url.PathEscape(id)+"?done="+url.QueryEscape(r.PostFormValue("action")), http.StatusSeeOther)
	return nil
}

type investigateView struct {
	Search    Search
	Ran       bool
	Result    HistoryResult
	Exposure  store.Exposure
	Timeline  chartData
	Error     string
	ExportCSV template.URL
	ExportJS  template.URL
	CanDSAR   bool
	// DSAR links to the data-subject report of the search's customer.
	DSAR template.URL
}

func (s *Server) investigatePage(w http.ResponseWriter, r *http.Request) error {
	q, err := s.searchFrom(r)
	if err != nil {
		return err
	}
	v := investigateView{Search: q, CanDSAR: can(principalOf(r).Role, "subject")}
	if !q.Empty() {
		res, f, err := s.history(r, q, "history")
		var he *httpError
		switch {
		case errors.As(err, &he) && he.code == http.StatusBadRequest:
			v.Error = he.msg
		case err != nil:
			return err
		default:
			v.Ran, v.Result = true, res
			if v.Exposure, err = s.d.Events.Exposure(r.Context(), f); err != nil {
				return err
			}
			if v.Timeline, err = s.timeline(r, f, res.Events); err != nil {
				return err
			}
			ex := r.URL.Query() // a handle, or a query without customer ids
			ex.Set("format", "csv")
			v.ExportCSV = template.URL("/investigate/export?" + ex.Encode()) //nolint:gosec // encoded query
			ex.Set("format", "json")
			v.ExportJS = template.URL("/investigate/export?" + ex.Encode()) //nolint:gosec // encoded query
			if q.Subject != "" {
				dv := url.Values{"subject": {q.Subject}} // a pseudonym
				if h := r.URL.Query().Get("h"); h != "" {
					dv = url.Values{"h": {h}}
				}
				v.DSAR = template.URL("/investigate/subject?" + dv.Encode()) //nolint:gosec // encoded query
			}
		}
	}
	return s.render(w, "investigate", s.pageData(r, "Investigate", v))
}

// timeline draws activity over the search window: an actor's complete
// series from actor_minute, otherwise the events found, per bucket.
func (s *Server) timeline(r *http.Request, f store.HistoryFilter, evs []models.Event) (chartData, error) {
	span := f.To.Sub(f.From)
	bucket := time.Hour
	switch {
	case span <= 3*time.Hour:
		bucket = time.Minute
	case span > 14*24*time.Hour:
		bucket = 24 * time.Hour
	}
	var ts []time.Time
	var vs []float64
	title := "events per " + map[time.Duration]string{time.Minute: "minute", time.Hour: "hour", 24 * time.Hour: "day"}[bucket]
	// The actor series covers one tenant or all: not for a principal
	// limited to some tenants who named none.
	if f.ActorID != "" && !f.BySubject() && f.Store == "" && f.Action == "" && f.ConversationID == "" && f.Purpose == "" &&
		(f.Tenant != "" || len(f.Tenants) == 0) {
		pts, err := s.d.Events.ActorSeries(r.Context(), f.Tenant, f.ActorID, f.From, f.To, bucket)
		if err != nil {
			return chartData{}, err
		}
		for _, p := range pts {
			ts = append(ts, p.T)
			vs = append(vs, float64(p.Events))
		}
		ts, vs = zeroFill(ts, vs, f.From, f.To, bucket)
		title = "Activity of " + f.ActorID + ": " + title
	} else {
		counts := map[time.Time]float64{}
		for _, e := range evs {
			counts[e.TS.Truncate(bucket)]++
		}
		for t := range counts {
			ts = append(ts, t)
		}
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		for _, t := range ts {
			vs = append(vs, counts[t])
		}
		title = "Matching events shown: " + title
	}
	return chartData{Title: title, SVG: chart.WideTimeline(title, ts, vs, chart.Band{}, time.Time{}, time.Time{}), Points: len(ts)}, nil
}

// exportHistory writes a history search as CSV or JSON (up to 100,000 rows).
func (s *Server) exportHistory(w http.ResponseWriter, r *http.Request) error {
	q, err := s.searchFrom(r)
	if err != nil {
		return err
	}
	if q.Limit <= 0 {
		q.Limit = store.MaxHistoryLimit
	}
	format := r.URL.Query().Get("format")
	if format != "csv" && format != "json" {
		return errorf(http.StatusBadRequest, "format must be csv or json")
	}
	res, _, err := s.history(r, q, "export")
	if err != nil {
		return err
	}
	name := "chatwarden-history-" + s.now().Format("20060102-150405")
	if format == "json" {
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.json"`)
		writeJSON(w, http.StatusOK, res)
		return nil
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	return WriteCSV(w, res.Events)
}

// CSVHeader is the header row of history exports.
var CSVHeader = []string{"ts", "event_id", "tenant", "actor_id", "actor_type", "actor_role", "actor_vendor", "action", "store",
	"resource_type", "resource_id", "subject_id", "records", "fields", "purpose", "conversation_id", "conversation_subject_id",
	"tool", "result", "client_ip", "client_country", "destination"}

// WriteCSV writes events as CSV with CSVHeader. Cells that a spreadsheet
// would run as a formula are prefixed with a quote.
func WriteCSV(w interface{ Write([]byte) (int, error) }, evs []models.Event) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, e := range evs {
		row := []string{e.TS.UTC().Format(time.RFC3339), e.EventID, e.Tenant, e.Actor.ID, string(e.Actor.Type), e.Actor.Role,
			e.Actor.Vendor, string(e.Action), e.Store, e.Resource.Type, e.Resource.ID, e.SubjectID, strconv.FormatUint(e.Records, 10),
			strings.Join(e.Fields, ";"), e.Purpose, e.Conversation.ID, e.Conversation.SubjectID, e.Tool, string(e.Result),
			e.Client.IP, e.Client.Country, e.Destination}
		for i, c := range row {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				row[i] = "'" + c
			}
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func (s *Server) blastPage(w http.ResponseWriter, r *http.Request) error {
	q, err := s.searchFrom(r)
	if err != nil {
		return err
	}
	alertID := r.URL.Query().Get("alert")
	v := map[string]any{"Search": q, "Alert": alertID}
	if alertID != "" || !q.Empty() {
		b, err := s.blast(r, q, alertID)
		var he *httpError
		switch {
		case errors.As(err, &he) && he.code == http.StatusBadRequest:
			v["Error"] = he.msg
		case err != nil:
			return err
		default:
			v["Blast"] = b
			var labels []string
			var vals []float64
			for _, c := range b.Exposure.Categories {
				labels = append(labels, c.Name)
				vals = append(vals, float64(c.Count))
			}
			v["Chart"] = chart.HBars("customers per data category", labels, vals, chart.Severity["critical"])
		}
	}
	return s.render(w, "blast", s.pageData(r, "Blast radius", v))
}

func (s *Server) subjectPage(w http.ResponseWriter, r *http.Request) error {
	q, err := s.searchFrom(r)
	if err != nil {
		return err
	}
	rep, err := s.subject(r, q)
	if err != nil {
		return err
	}
	return s.render(w, "subject", s.pageData(r, "Data-subject access report", rep))
}

// weekOf reads ?week= or takes the last complete week.
func (s *Server) weekOf(r *http.Request) (report.Week, error) {
	if v := r.URL.Query().Get("week"); v != "" {
		w, err := report.ParseWeek(v)
		if err != nil {
			return w, errorf(http.StatusBadRequest, "%v", err)
		}
		if w.Start().Before(minQueryTime) || w.End().After(maxQueryTime) {
			return w, errorf(http.StatusBadRequest, "week %s: want a week between 1970 and 2105", v)
		}
		return w, nil
	}
	return report.LastComplete(s.now()), nil
}

func (s *Server) weeklyPage(w http.ResponseWriter, r *http.Request) error {
	wk, err := s.weekOf(r)
	if err != nil {
		return err
	}
	now := s.now()
	// A principal limited to some tenants gets the summary of those.
	tenants := principalOf(r).Tenants
	sum, err := s.d.Weekly(r.Context(), wk, tenants, now)
	if err != nil {
		return err
	}
	// On a new installation the last complete week is all zeros: open on
	// the current week so far instead, and say so. A week asked for by
	// name is shown as it is.
	var note string
	if r.URL.Query().Get("week") == "" && !weekHasData(sum) {
		cur := report.WeekOf(now)
		cs, err := s.d.Weekly(r.Context(), cur, tenants, now)
		if err != nil {
			return err
		}
		note = fmt.Sprintf("%s, the last complete week, has no alerts and no access events: showing the current week so far (%s, from %s to now). Pick another week above.",
			wk, cur, cur.Start().Format("Mon 2 Jan"))
		wk, sum = cur, cs
	}
	return s.render(w, "weekly", s.pageData(r, "Weekly breach-risk summary "+wk.String(),
		map[string]any{"Summary": sum, "Prev": wk.Add(-1).String(), "Next": wk.Add(1).String(), "HasNext": wk.Add(1).End().Before(now.Add(7 * 24 * time.Hour)),
			"Note": note, "Current": report.WeekOf(now).String()}))
}

// weekHasData reports whether a weekly summary has any alert or access
// event.
func weekHasData(sum *report.Summary) bool {
	if sum == nil {
		return false
	}
	if sum.Alerts > 0 {
		return true
	}
	for _, d := range sum.Volume {
		if d.Events > 0 {
			return true
		}
	}
	return false
}

func (s *Server) auditEntries(r *http.Request) ([]store.AuditEntry, error) {
	v := r.URL.Query()
	since := v.Get("since")
	if since == "" {
		since = "7d"
	}
	from, to, err := ParseTimeRange(since, v.Get("from"), v.Get("to"), s.now())
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	// An admin limited to some tenants sees the rows about those only.
	es, err := s.d.Audit.AuditLog(r.Context(), store.AuditFilter{From: from, To: to.Add(time.Second), User: v.Get("user"), Action: v.Get("action"),
		Tenants: principalOf(r).Tenants})
	if es == nil {
		es = []store.AuditEntry{}
	}
	return es, err
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request) error {
	es, err := s.auditEntries(r)
	if err != nil {
		return err
	}
	return s.render(w, "audit", s.pageData(r, "Audit trail", es))
}
