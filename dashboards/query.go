package dashboards

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/report/chart"
	"github.com/chatwarden/chatwarden/store"
)

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// Search is an investigation's filter as the form and the API take it.
type Search struct {
	Tenant       string `json:"tenant,omitempty"`
	Actor        string `json:"actor,omitempty"`
	Subject      string `json:"-"` // raw customer id or pseudonym, as typed; never echoed back in JSON
	Store        string `json:"store,omitempty"`
	Action       string `json:"action,omitempty"`
	Conversation string `json:"conversation,omitempty"`
	Purpose      string `json:"purpose,omitempty"`
	Since        string `json:"since,omitempty"`
	From         string `json:"from,omitempty"`
	To           string `json:"to,omitempty"`
	Limit        int    `json:"limit,omitempty"`
}

// Empty reports whether no selector (actor, customer, store, action,
// conversation, purpose) is set.
func (q Search) Empty() bool {
	return q.Actor == "" && q.Subject == "" && q.Store == "" && q.Action == "" && q.Conversation == "" && q.Purpose == ""
}

func searchOf(v url.Values) Search {
	lim, _ := strconv.Atoi(v.Get("limit"))
	return Search{Tenant: strings.TrimSpace(v.Get("tenant")), Actor: strings.TrimSpace(v.Get("actor")),
		Subject: strings.TrimSpace(v.Get("subject")), Store: strings.TrimSpace(v.Get("store")),
		Action: strings.TrimSpace(v.Get("action")), Conversation: strings.TrimSpace(v.Get("conversation")),
		Purpose: strings.TrimSpace(v.Get("purpose")), Since: strings.TrimSpace(v.Get("since")),
		From: strings.TrimSpace(v.Get("from")), To: strings.TrimSpace(v.Get("to")), Limit: lim}
}

// The times ClickHouse's DateTime can hold. A range reaching outside is
// clipped to it (nothing is stored outside it): sent as is, the server would
// turn such a time into 1970-01-01 or 0000-00-00 and answer the wrong
// question.
var (
	minQueryTime = time.Unix(0, 0).UTC()
	maxQueryTime = time.Date(2106, 1, 1, 0, 0, 0, 0, time.UTC)
)

// MaxSince is the longest look-back ParseSince accepts.
const MaxSince = 100 * 365 * 24 * time.Hour

// ParseTimeRange turns since ("24h", "7d") or from/to (RFC 3339, or the
// browser's "2006-01-02T15:04") into [from, to), clipped to 1970-01-01 ..
// 2106-01-01. The default is the last 24h.
func ParseTimeRange(since, from, to string, now time.Time) (time.Time, time.Time, error) {
	end := now
	if to != "" {
		t, err := parseTime(to)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("to: %w", err)
		}
		end = t
	}
	start := end.Add(-24 * time.Hour)
	switch {
	case from != "":
		t, err := parseTime(from)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("from: %w", err)
		}
		start = t
	case since != "":
		d, err := ParseSince(since)
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		start = end.Add(-d)
	}
	if !start.Before(end) {
		return time.Time{}, time.Time{}, fmt.Errorf("from %s is not before to %s", start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	start, end = clipTime(start), clipTime(end)
	if !start.Before(end) {
		return time.Time{}, time.Time{}, fmt.Errorf("the range %s to %s holds no time between 1970 and 2106",
			start.Format(time.RFC3339), end.Format(time.RFC3339))
	}
	return start, end, nil
}

func clipTime(t time.Time) time.Time {
	switch {
	case t.Before(minQueryTime):
		return minQueryTime
	case t.After(maxQueryTime):
		return maxQueryTime
	}
	return t
}

// ParseSince parses a look-back such as "90m", "24h" or "7d", at most
// MaxSince.
func ParseSince(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return 0, fmt.Errorf("since: %q is not a number of days", s)
		}
		if days > int(MaxSince/(24*time.Hour)) {
			return 0, fmt.Errorf("since: %q is longer than %d days", s, MaxSince/(24*time.Hour))
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("since: %q is not a duration like 24h or 7d", s)
	}
	if d > MaxSince {
		return 0, fmt.Errorf("since: %q is longer than %d days", s, MaxSince/(24*time.Hour))
	}
	return d, nil
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (want RFC 3339 or 2006-01-02T15:04)", s)
}

// subjectIDs turns what a responder typed into the pseudonyms to look for:
// a pseudonym as is, a raw id hashed for tenant under every key version and
// both pseudonym schemes (the caller filters on that tenant).
func (s *Server) subjectIDs(tenant, typed string) []string {
	if typed == "" {
		return nil
	}
	if pseudonym.IsPseudonym(typed) {
		return []string{typed}
	}
	return s.d.Pseudonymize(tenant, typed)
}

// tenantScope returns the tenants a query of r may read when it asked for
// tenant asked ("" for none): [asked] when the principal may see it (403
// when not), else the principal's tenants (nil: every tenant).
func tenantScope(r *http.Request, asked string) ([]string, error) {
	p := principalOf(r)
	if asked != "" {
		if !p.mayTenant(asked) {
			return nil, errorf(http.StatusForbidden, "tenant %q is not one of yours", asked)
		}
		return []string{asked}, nil
	}
	return p.Tenants, nil
}

// subjectTenant is the tenant a raw customer id is looked up in: the one
// asked for, else the principal's only tenant, else models.DefaultTenant.
// The same raw id in two tenants is two people, so a look-up by raw id
// always names one tenant.
func subjectTenant(r *http.Request, asked string) (string, error) {
	p := principalOf(r)
	t := asked
	switch {
	case t != "":
	case len(p.Tenants) == 1:
		t = p.Tenants[0]
	default:
		t = models.DefaultTenant
	}
	if !p.mayTenant(t) {
		return "", errorf(http.StatusForbidden, "tenant %q is not one of yours: name the tenant to look the customer up in", t)
	}
	return t, nil
}

// filter builds the store filter of q for the principal of r: only its
// tenants; a raw customer id is looked up in one tenant.
func (s *Server) filter(r *http.Request, q Search) (store.HistoryFilter, error) {
	from, to, err := ParseTimeRange(q.Since, q.From, q.To, s.now())
	if err != nil {
		return store.HistoryFilter{}, errorf(http.StatusBadRequest, "%v", err)
	}
	if q.Action != "" && !validAction(q.Action) {
		return store.HistoryFilter{}, errorf(http.StatusBadRequest, "action %q is not one of %v", q.Action, models.Actions)
	}
	tenant := q.Tenant
	if q.Subject != "" && !pseudonym.IsPseudonym(q.Subject) {
		if tenant, err = subjectTenant(r, q.Tenant); err != nil {
			return store.HistoryFilter{}, err
		}
	}
	scope, err := tenantScope(r, tenant)
	if err != nil {
		return store.HistoryFilter{}, err
	}
	return store.HistoryFilter{Tenant: tenant, Tenants: scope, ActorID: q.Actor, SubjectIDs: s.subjectIDs(tenant, q.Subject), Store: q.Store,
		Action: q.Action, ConversationID: q.Conversation, Purpose: q.Purpose, From: from, To: to, Limit: q.Limit}, nil
}

func validAction(a string) bool {
	for _, x := range models.Actions {
		if string(x) == a {
			return true
		}
	}
	return false
}

// describe renders a filter for the audit trail: customer ids only as
// pseudonyms.
func describe(f store.HistoryFilter) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("tenant", f.Tenant)
	add("actor", f.ActorID)
	add("subject", strings.Join(f.SubjectIDs, ","))
	add("store", f.Store)
	add("action", f.Action)
	add("conversation", f.ConversationID)
	add("purpose", f.Purpose)
	add("from", f.From.Format(time.RFC3339))
	add("to", f.To.Format(time.RFC3339))
	return strings.Join(parts, " ")
}

// audit writes one audit entry about tenants (the tenants whose data the
// action read or changed; nil: none or every tenant). When it fails the
// caller must not answer with the data.
func (s *Server) audit(r *http.Request, action, detail string, rows int, tenants []string) error {
	p := principalOf(r)
	source := "web"
	if strings.HasPrefix(r.URL.Path, "/api/") {
		source = "api"
	}
	err := s.d.Audit.InsertAudit(r.Context(), store.AuditEntry{TS: s.now(), User: p.Name, Role: string(p.Role),
		Source: source, Action: action, Detail: detail, Rows: uint64(rows), Remote: s.clientIP(r), Tenants: tenants})
	if err != nil {
		return fmt.Errorf("writing the audit trail: %w", err)
	}
	s.metrics.auditRows.WithLabelValues(action).Add(float64(rows))
	return nil
}

// auditLogin writes a sign-in to the audit trail: action login, or
// login_failed for a wrong name or password (attempts refused by the rate
// limiter are only counted in chatwarden_dashboards_login_failures_total,
// so that a flood cannot fill the trail). A name that is no configured user
// is recorded as "(unknown)": people type passwords into the name field.
// A failed write of a failed attempt is logged; of a success, returned.
func (s *Server) auditLogin(r *http.Request, name string, ok bool) error {
	u, known := s.auth.users[name]
	// A sign-in is about the user's tenants (none for a user of every
	// tenant): an admin of those tenants sees their users' sign-ins.
	e := store.AuditEntry{TS: s.now(), User: name, Role: string(u.Role), Source: "web", Action: "login", Remote: s.clientIP(r),
		Tenants: u.Tenants}
	if !ok {
		e.Action = "login_failed"
		if !known {
			e.User, e.Detail = "(unknown)", "no such user"
		}
	}
	if err := s.d.Audit.InsertAudit(r.Context(), e); err != nil {
		if !ok {
			s.log.Error("writing a failed sign-in to the audit trail", "err", err)
		}
		return fmt.Errorf("writing the audit trail: %w", err)
	}
	return nil
}

// TenantsOf returns the distinct tenants of rows, sorted: what an audit row
// of a query over every tenant is about.
func TenantsOf[T any](rows []T, tenant func(T) string) []string {
	var out []string
	for _, r := range rows {
		if t := tenant(r); !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// HistoryResult is what a history search returns.
type HistoryResult struct {
	Filter    Search         `json:"filter"`
	From      time.Time      `json:"from"`
	To        time.Time      `json:"to"`
	Subjects  []string       `json:"subject_pseudonyms,omitempty"`
	Events    []models.Event `json:"events"`
	Truncated bool           `json:"truncated"`
}

// history runs and audits a history search.
func (s *Server) history(r *http.Request, q Search, action string) (HistoryResult, store.HistoryFilter, error) {
	f, err := s.filter(r, q)
	if err != nil {
		return HistoryResult{}, f, err
	}
	if q.Empty() {
		return HistoryResult{}, f, errorf(http.StatusBadRequest, "give an actor, customer, store, action, conversation or purpose")
	}
	evs, more, err := s.d.Events.History(r.Context(), f)
	if err != nil {
		return HistoryResult{}, f, err
	}
	tenants := f.Tenants
	if len(tenants) == 0 { // every tenant: the row is about the tenants the answer held
		tenants = TenantsOf(evs, func(e models.Event) string { return e.Tenant })
	}
	if err := s.audit(r, action, describe(f), len(evs), tenants); err != nil {
		return HistoryResult{}, f, err
	}
	if evs == nil {
		evs = []models.Event{}
	}
	return HistoryResult{Filter: q, From: f.From, To: f.To, Subjects: f.SubjectIDs, Events: evs, Truncated: more}, f, nil
}

// BlastRadius is the exposure of an alert's or an actor's window.
type BlastRadius struct {
	Tenant   string         `json:"tenant,omitempty"`
	Actor    string         `json:"actor,omitempty"`
	AlertID  string         `json:"alert_id,omitempty"`
	From     time.Time      `json:"from"`
	To       time.Time      `json:"to"`
	Exposure store.Exposure `json:"exposure"`
}

// blast computes and audits the blast radius of an alert (alert=ID) or of a
// search's window.
func (s *Server) blast(r *http.Request, q Search, alertID string) (BlastRadius, error) {
	var f store.HistoryFilter
	var b BlastRadius
	if id := alertID; id != "" {
		a, found, err := s.d.Alerts.Alert(r.Context(), id)
		if err != nil {
			return b, err
		}
		if !found || !principalOf(r).mayTenant(a.Tenant) {
			return b, errorf(http.StatusNotFound, "no alert %q", id)
		}
		from, to := alertWindow(a)
		f = store.HistoryFilter{Tenant: a.Tenant, Tenants: []string{a.Tenant}, ActorID: a.ActorID, From: from, To: to}
		b.AlertID = a.ID
	} else {
		if q.Subject != "" && principalOf(r).Role == RoleManager {
			return b, errorf(http.StatusForbidden, "managers see aggregates, not per-customer queries")
		}
		var err error
		if f, err = s.filter(r, q); err != nil {
			return b, err
		}
		if q.Empty() {
			return b, errorf(http.StatusBadRequest, "give an alert, or an actor, store, action, conversation or purpose")
		}
	}
	x, err := s.d.Events.Exposure(r.Context(), f)
	if err != nil {
		return b, err
	}
	if err := s.audit(r, "blast_radius", describe(f), int(x.Events), f.Tenants); err != nil {
		return b, err
	}
	b.Tenant, b.Actor, b.From, b.To, b.Exposure = f.Tenant, f.ActorID, f.From, f.To, x
	return b, nil
}

// alertWindow is the span of an alert's findings.
func alertWindow(a models.Alert) (time.Time, time.Time) {
	from, to := a.FirstSeen, a.LastSeen
	if ws := a.Latest.WindowStart; !ws.IsZero() && ws.Before(from) {
		from = ws
	}
	if we := a.Latest.WindowEnd; we.After(to) {
		to = we
	}
	if !to.After(from) {
		to = from.Add(time.Minute)
	}
	return from, to
}

// SubjectReport is a data-subject access report.
type SubjectReport struct {
	// Tenants are the tenants searched (empty: every tenant, for a
	// pseudonym given as is).
	Tenants   []string              `json:"tenants,omitempty"`
	Subjects  []string              `json:"subject_pseudonyms"`
	From      time.Time             `json:"from"`
	To        time.Time             `json:"to"`
	Accesses  []store.SubjectAccess `json:"accesses"`
	Truncated bool                  `json:"truncated"`
	Actors    int                   `json:"actors"`
	Events    uint64                `json:"events"`
	// Categories lists every data category accessed.
	Categories []string `json:"categories"`
}

// SubjectReportOf runs a data-subject access report (pages, API and CLI
// share it). The caller audits it.
// tenants (nil: every tenant) bounds where the customer is looked for.
func SubjectReportOf(ctx context.Context, q SubjectQueries, tenants, ids []string, from, to time.Time) (SubjectReport, error) {
	acc, more, err := q.SubjectAccesses(ctx, tenants, ids, from, to)
	if err != nil {
		return SubjectReport{}, err
	}
	rep := SubjectReport{Tenants: tenants, Subjects: ids, From: from, To: to, Accesses: acc, Truncated: more, Categories: []string{}}
	if rep.Accesses == nil {
		rep.Accesses = []store.SubjectAccess{}
	}
	actors, cats := map[string]bool{}, map[string]bool{}
	for _, a := range acc {
		actors[a.Tenant+"/"+a.ActorID] = true
		rep.Events += a.Events
		for _, c := range a.Categories {
			if !cats[c] {
				cats[c] = true
				rep.Categories = append(rep.Categories, c)
			}
		}
	}
	rep.Actors = len(actors)
	return rep, nil
}

// subjectScope resolves the customer and period of a data-subject report
// for the principal of r: the tenants searched (a raw id is looked up in one
// tenant), the customer's pseudonyms, and q's time range (default the last
// 90 days).
func (s *Server) subjectScope(r *http.Request, q Search) (tenants, ids []string, from, to time.Time, err error) {
	tenant := q.Tenant
	if q.Subject != "" && !pseudonym.IsPseudonym(q.Subject) {
		if tenant, err = subjectTenant(r, tenant); err != nil {
			return nil, nil, from, to, err
		}
	}
	if tenants, err = tenantScope(r, tenant); err != nil {
		return nil, nil, from, to, err
	}
	ids = s.subjectIDs(tenant, q.Subject)
	if len(ids) == 0 {
		return nil, nil, from, to, errorf(http.StatusBadRequest, "no customer id")
	}
	since := q.Since
	if since == "" && q.From == "" {
		since = "90d"
	}
	if from, to, err = ParseTimeRange(since, q.From, q.To, s.now()); err != nil {
		return nil, nil, from, to, errorf(http.StatusBadRequest, "%v", err)
	}
	return tenants, ids, from, to, nil
}

// subjectDetail is the audit detail of a data-subject query.
func subjectDetail(tenants, ids []string, from, to time.Time) string {
	return "tenant=" + strings.Join(tenants, ",") + " subject=" + strings.Join(ids, ",") + " from=" + from.Format(time.RFC3339) + " to=" + to.Format(time.RFC3339)
}

// subject runs and audits a data-subject access report for q's customer
// (raw id or pseudonym, looked up in q's tenant) over q's time range
// (default the last 90 days).
func (s *Server) subject(r *http.Request, q Search) (SubjectReport, error) {
	tenants, ids, from, to, err := s.subjectScope(r, q)
	if err != nil {
		return SubjectReport{}, err
	}
	rep, err := SubjectReportOf(r.Context(), s.d.Subjects, tenants, ids, from, to)
	if err != nil {
		return rep, err
	}
	about := tenants
	if len(about) == 0 {
		about = TenantsOf(rep.Accesses, func(a store.SubjectAccess) string { return a.Tenant })
	}
	if err := s.audit(r, "dsar", subjectDetail(tenants, ids, from, to), len(rep.Accesses), about); err != nil {
		return SubjectReport{}, err
	}
	return rep, nil
}

// evidenceChart draws an alert's actor series against the baseline band of
// its finding's evidence.
func (s *Server) evidenceChart(ctx context.Context, a models.Alert) (chartData, error) {
	from, to := alertWindow(a)
	ev := a.Latest.Evidence
	metric := strings.ToLower(ev.Metric)
	bucket := time.Minute
	switch {
	case strings.Contains(metric, "day"):
		bucket = 24 * time.Hour
	case strings.Contains(metric, "hour"):
		bucket = time.Hour
	}
	span := max(to.Sub(from), bucket)
	start := from.Add(-6 * span).Truncate(bucket)
	end := to.Add(2 * span)
	if end.After(s.now()) {
		end = s.now().Add(bucket)
	}
	pts, err := s.d.Events.ActorSeries(ctx, a.Tenant, a.ActorID, start, end, bucket)
	if err != nil {
		return chartData{}, err
	}
	pick := func(p store.Point) float64 { return float64(p.Events) }
	name := "events"
	switch {
	case strings.Contains(metric, "export"):
		pick, name = func(p store.Point) float64 { return float64(p.Exports) }, "exports"
	case strings.Contains(metric, "denied"):
		pick, name = func(p store.Point) float64 { return float64(p.Denied) }, "denied accesses"
	case strings.Contains(metric, "subject") || strings.Contains(metric, "customer"):
		pick, name = func(p store.Point) float64 { return float64(p.Subjects) }, "distinct customers"
	case strings.Contains(metric, "record"):
		pick, name = func(p store.Point) float64 { return float64(p.Records) }, "records"
	}
	var ts []time.Time
	var vs []float64
	for _, p := range pts {
		ts = append(ts, p.T)
		vs = append(vs, pick(p))
	}
	ts, vs = zeroFill(ts, vs, start, end, bucket)
	band := chart.Band{Baseline: ev.Baseline, Threshold: ev.Threshold}
	if ev.Spread > 0 {
		band.Low, band.High = max(0, ev.Baseline-3*ev.Spread), ev.Baseline+3*ev.Spread
	} else if ev.Baseline > 0 {
		band.Low, band.High = 0, ev.Baseline
	}
	per := map[time.Duration]string{time.Minute: "minute", time.Hour: "hour", 24 * time.Hour: "day"}[bucket]
	title := fmt.Sprintf("%s of %s per %s against its baseline", name, a.ActorID, per)
	return chartData{Title: title, SVG: chart.Timeline(title, ts, vs, band, from, to), Points: len(pts)}, nil
}

// zeroFill adds the empty buckets between start and end (an actor that did
// nothing in a minute has no row in actor_minute), so that a line does not
// bridge idle time. Long ranges (over 2000 buckets) are left as they are.
func zeroFill(ts []time.Time, vs []float64, start, end time.Time, bucket time.Duration) ([]time.Time, []float64) {
	start, end = start.Truncate(bucket), end.Truncate(bucket)
	if end.Sub(start)/bucket > 2000 || !start.Before(end) {
		return ts, vs
	}
	have := make(map[time.Time]float64, len(ts))
	for i, t := range ts {
		have[t] = vs[i]
	}
	var ots []time.Time
	var ovs []float64
	for t := start; !t.After(end); t = t.Add(bucket) {
		ots = append(ots, t)
		ovs = append(ovs, have[t])
	}
	return ots, ovs
}
