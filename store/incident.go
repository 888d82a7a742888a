package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// MaxIncidentWindows bounds the actor windows one incident assessment reads.
const MaxIncidentWindows = 50

// IncidentQuery is one query behind an incident's figures: its name, the
// SQL with the values written in (for a person to paste into
// clickhouse-client; the store runs the same SQL with bound values).
type IncidentQuery struct {
	Name string `json:"name"`
	SQL  string `json:"sql"`
}

// TenantImpact is what an incident touched in one tenant.
type TenantImpact struct {
	Tenant string `json:"tenant"`
	// Customers is the distinct customers whose data was accessed (denied
	// accesses left out); WithdrawnConsent how many of them had withdrawn
	// consent for at least one purpose by the time of the access.
	Customers        uint64    `json:"customers"`
	WithdrawnConsent uint64    `json:"withdrawn_consent"`
	Events           uint64    `json:"events"`
	Records          uint64    `json:"records"`
	First            time.Time `json:"first_access"`
	Last             time.Time `json:"last_access"`
	Actors           []string  `json:"actors"`
	Exports          uint64    `json:"exports"`
	ExportRecords    uint64    `json:"export_records"`
	Shares           uint64    `json:"shares"`
	ShareRecords     uint64    `json:"share_records"`
	Denied           uint64    `json:"denied"`
}

// CategoryImpact is one data category an incident touched.
type CategoryImpact struct {
	Tenant    string `json:"tenant"`
	Category  string `json:"category"`
	Customers uint64 `json:"customers"`
	Records   uint64 `json:"records"`
}

// IncidentFacts are the figures of an incident's accesses, each with the
// name of the query that produced it (Queries).
type IncidentFacts struct {
	Tenants      []TenantImpact     `json:"tenants"`
	Categories   []CategoryImpact   `json:"categories"`
	Destinations []DestinationTotal `json:"destinations"`
	Queries      []IncidentQuery    `json:"queries"`
	// Capped: more than MaxIncidentWindows windows were asked for; only
	// the first were read.
	Capped bool `json:"capped,omitempty"`
}

// The names of the incident queries (IncidentQuery.Name), which figures
// link to.
const (
	QueryImpact       = "impact"
	QueryConsent      = "withdrawn_consent"
	QueryCategories   = "categories"
	QueryDestinations = "destinations"
)

// incidentScope renders the events of the windows ws as a condition, once
// with ? placeholders and their values, once with the values written in.
func incidentScope(ws []ActorWindow) (bound string, args []any, literal string) {
	var b, l []string
	for _, w := range ws {
		b = append(b, "(tenant = ? AND actor_id = ? AND ts >= ? AND ts < ?)")
		args = append(args, w.Tenant, w.ActorID, w.From.UTC().Truncate(time.Second), ceilSecond(w.To))
		l = append(l, fmt.Sprintf("(tenant = %s AND actor_id = %s AND ts >= %s AND ts < %s)", sqlString(w.Tenant), sqlString(w.ActorID),
			sqlTime(w.From.UTC().Truncate(time.Second)), sqlTime(ceilSecond(w.To))))
	}
	return "(" + strings.Join(b, " OR ") + ")", args, "(" + strings.Join(l, "\n   OR ") + ")"
}

// sqlString renders s as a ClickHouse string literal (display only).
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// sqlTime renders t as a ClickHouse DateTime literal in UTC (display only).
func sqlTime(t time.Time) string {
	return "toDateTime('" + t.UTC().Format("2006-01-02 15:04:05") + "', 'UTC')"
}

const incidentImpactSQL = `SELECT tenant, uniqExactIf(subject_id, subject_id != '' AND result != 'denied') AS customers,
countIf(result != 'denied') AS n_events, sumIf(records, result != 'denied') AS n_records,
minIf(ts, result != 'denied') AS first_access, maxIf(ts, result != 'denied') AS last_access,
groupUniqArray(actor_id) AS actor_ids,
countIf(action = 'export' AND result != 'denied') AS n_exports, sumIf(records, action = 'export' AND result != 'denied') AS export_records,
countIf(action = 'share' AND result != 'denied') AS n_shares, sumIf(records, action = 'share' AND result != 'denied') AS share_records,
countIf(result = 'denied') AS n_denied
FROM events
WHERE %s
GROUP BY tenant
ORDER BY tenant`

// A customer counts as having withdrawn consent when the register's
// latest decision for some purpose is a withdrawal made at or before the
// customer's last access in the incident.
const incidentConsentSQL = `SELECT tenant, uniqExact(subject_id) AS withdrawn_consent
FROM (
  SELECT tenant, subject_id, max(ts) AS last_access
  FROM events
  WHERE %s AND subject_id != '' AND result != 'denied'
  GROUP BY tenant, subject_id
) AS accessed
ALL INNER JOIN (
  SELECT tenant, subject_id, argMax(granted, ts) AS granted_now, max(ts) AS decided
  FROM consents
  GROUP BY tenant, subject_id, purpose
) AS decisions USING (tenant, subject_id)
WHERE granted_now = 0 AND decided <= last_access
GROUP BY tenant
ORDER BY tenant`

const incidentCategoriesSQL = `SELECT tenant, category, uniqExactIf(subject_id, subject_id != '') AS customers, sum(records) AS n_records
FROM events
ARRAY JOIN fields AS category
WHERE %s AND result != 'denied'
GROUP BY tenant, category
ORDER BY tenant, customers DESC, category`

const incidentDestinationsSQL = `SELECT tenant, destination, count() AS n_events, sum(records) AS n_records,
uniqExactIf(subject_id, subject_id != '') AS customers, uniqExact(actor_id) AS n_actors,
groupUniqArrayArray(fields) AS categories, min(ts) AS first_share, max(ts) AS last_share
FROM shares
WHERE %s AND result != 'denied'
GROUP BY tenant, destination
ORDER BY tenant, n_records DESC, destination`

// IncidentFacts computes the figures of the accesses in the windows ws
// (an incident's actors over its alerts' spans): per tenant the customers
// and how many of them had withdrawn consent, events, records, first and
// last access, actors, exports and shares; per category customers and
// records; the destinations data went to. Each query is returned with its
// values written in, so that every figure can show the query behind it.
func (s *Store) IncidentFacts(ctx context.Context, ws []ActorWindow) (IncidentFacts, error) {
	f := IncidentFacts{Tenants: []TenantImpact{}, Categories: []CategoryImpact{}, Destinations: []DestinationTotal{}, Queries: []IncidentQuery{}}
	if len(ws) == 0 {
		return f, nil
	}
	if len(ws) > MaxIncidentWindows {
		ws, f.Capped = ws[:MaxIncidentWindows], true
	}
	scope, args, lit := incidentScope(ws)
	for _, q := range []struct{ name, sql string }{
		{QueryImpact, incidentImpactSQL}, {QueryConsent, incidentConsentSQL},
		{QueryCategories, incidentCategoriesSQL}, {QueryDestinations, incidentDestinationsSQL},
	} {
		f.Queries = append(f.Queries, IncidentQuery{Name: q.name, SQL: fmt.Sprintf(q.sql, lit)})
	}
	rows, err := s.conn.Query(ctx, fmt.Sprintf(incidentImpactSQL, scope), args...)
	if err != nil {
		return f, fmt.Errorf("reading the incident's impact: %w", err)
	}
	byTenant := map[string]int{}
	for rows.Next() {
		var t TenantImpact
		if err := rows.Scan(&t.Tenant, &t.Customers, &t.Events, &t.Records, &t.First, &t.Last, &t.Actors,
			&t.Exports, &t.ExportRecords, &t.Shares, &t.ShareRecords, &t.Denied); err != nil {
			rows.Close()
			return f, fmt.Errorf("scanning the incident's impact: %w", err)
		}
		t.First, t.Last = t.First.UTC(), t.Last.UTC()
		if t.Events == 0 {
			t.First, t.Last = time.Time{}, time.Time{}
		}
		sort.Strings(t.Actors)
		byTenant[t.Tenant] = len(f.Tenants)
		f.Tenants = append(f.Tenants, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("reading the incident's impact: %w", err)
	}
	rows, err = s.conn.Query(ctx, fmt.Sprintf(incidentConsentSQL, scope), args...)
	if err != nil {
		return f, fmt.Errorf("reading the incident's withdrawn consents: %w", err)
	}
	for rows.Next() {
		var tenant string
		var n uint64
		if err := rows.Scan(&tenant, &n); err != nil {
			rows.Close()
			return f, fmt.Errorf("scanning the incident's withdrawn consents: %w", err)
		}
		if i, ok := byTenant[tenant]; ok {
			f.Tenants[i].WithdrawnConsent = n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("reading the incident's withdrawn consents: %w", err)
	}
	rows, err = s.conn.Query(ctx, fmt.Sprintf(incidentCategoriesSQL, scope), args...)
	if err != nil {
		return f, fmt.Errorf("reading the incident's categories: %w", err)
	}
	for rows.Next() {
		var c CategoryImpact
		if err := rows.Scan(&c.Tenant, &c.Category, &c.Customers, &c.Records); err != nil {
			rows.Close()
			return f, fmt.Errorf("scanning the incident's categories: %w", err)
		}
		f.Categories = append(f.Categories, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("reading the incident's categories: %w", err)
	}
	rows, err = s.conn.Query(ctx, fmt.Sprintf(incidentDestinationsSQL, scope), args...)
	if err != nil {
		return f, fmt.Errorf("reading the incident's destinations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d DestinationTotal
		if err := rows.Scan(&d.Tenant, &d.Destination, &d.Events, &d.Records, &d.Subjects, &d.Actors, &d.Categories,
			&d.First, &d.Last); err != nil {
			return f, fmt.Errorf("scanning the incident's destinations: %w", err)
		}
		d.First, d.Last = d.First.UTC(), d.Last.UTC()
		sort.Strings(d.Categories)
		f.Destinations = append(f.Destinations, d)
	}
	return f, rows.Err()
}
