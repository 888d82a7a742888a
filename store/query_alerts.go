package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// AlertQuery selects alerts for the pages: empty fields match anything. The
// filters apply to the latest version of each alert.
type AlertQuery struct {
	Severity string // minimum severity name
	Status   string
	Detector string
	Tenant   string
	// Tenants, when not empty, is the set of tenants the asker may see.
	Tenants []string
	ActorID string
	// From and To bound last_seen (To exclusive); zero means unbounded.
	From, To time.Time
	// Limit bounds the alerts (default 200, at most MaxAlertsLimit).
	Limit int
}

const alertColumns = `id, argMax(fingerprint, version), argMax(detector, version) AS det,
argMax(tenant, version) AS ten, argMax(actor_id, version) AS act, argMax(actor_type, version),
argMax(severity, version) AS sev, argMax(status, version) AS st, argMax(first_seen, version),
argMax(last_seen, version) AS ls, argMax(findings, version), argMax(latest, version),
argMax(updated_at, version), argMax(updated_by, version)`

// QueryAlerts returns the latest version of the alerts matching q, most
// recently seen first.
func (s *Store) QueryAlerts(ctx context.Context, q AlertQuery) ([]models.Alert, error) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		conds = append(conds, cond)
		args = append(args, v)
	}
	if q.Severity != "" {
		sev, err := models.ParseSeverity(q.Severity)
		if err != nil {
			return nil, err
		}
		add("sev >= ?", uint8(sev))
	}
	if q.Status != "" {
		add("st = ?", q.Status)
	}
	if q.Detector != "" {
		add("det = ?", q.Detector)
	}
	if q.Tenant != "" {
		add("ten = ?", q.Tenant)
	}
	if len(q.Tenants) > 0 {
		add("ten IN ?", InList(q.Tenants))
	}
	if q.ActorID != "" {
		add("act = ?", q.ActorID)
	}
	if !q.From.IsZero() {
		add("ls >= ?", q.From.UTC())
	}
	if !q.To.IsZero() {
		add("ls < ?", q.To.UTC())
	}
	sql := "SELECT " + alertColumns + " FROM alerts GROUP BY id"
	if len(conds) > 0 {
		sql += " HAVING " + strings.Join(conds, " AND ")
	}
	lim := q.Limit
	if lim <= 0 {
		lim = 200
	}
	lim = min(lim, MaxAlertsLimit)
	sql += " ORDER BY ls DESC, id LIMIT ?"
	return s.scanAlerts(ctx, sql, append(args, uint64(lim))...)
}

// MaxAlertsLimit is the most alerts one QueryAlerts returns: a larger limit
// is cut to it, so that one request cannot make the server read and render
// every alert ever raised.
const MaxAlertsLimit = 1000

// Alert returns the latest version of one alert; found is false when no
// alert has the id.
func (s *Store) Alert(ctx context.Context, id string) (a models.Alert, found bool, err error) {
	as, err := s.scanAlerts(ctx, "SELECT "+alertColumns+" FROM alerts WHERE id = ? GROUP BY id", id)
	if err != nil || len(as) == 0 {
		return models.Alert{}, false, err
	}
	return as[0], true, nil
}

func (s *Store) scanAlerts(ctx context.Context, q string, args ...any) ([]models.Alert, error) {
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("querying alerts: %w", err)
	}
	defer rows.Close()
	var out []models.Alert
	for rows.Next() {
		var (
			a                     models.Alert
			atype, status, latest string
			sev                   uint8
			findings              uint32
		)
		if err := rows.Scan(&a.ID, &a.Fingerprint, &a.Detector, &a.Tenant, &a.ActorID, &atype, &sev, &status,
			&a.FirstSeen, &a.LastSeen, &findings, &latest, &a.UpdatedAt, &a.UpdatedBy); err != nil {
			return nil, fmt.Errorf("reading alert: %w", err)
		}
		a.ActorType, a.Severity, a.Status, a.Findings = models.ActorType(atype), models.Severity(sev), models.AlertStatus(status), int(findings)
		a.FirstSeen, a.LastSeen, a.UpdatedAt = a.FirstSeen.UTC(), a.LastSeen.UTC(), a.UpdatedAt.UTC()
		if latest != "" {
			if err := json.Unmarshal([]byte(latest), &a.Latest); err != nil {
				return nil, fmt.Errorf("decoding the finding of alert %s: %w", a.ID, err)
			}
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AlertLife is an alert with when people first reacted to it and when it
// was first closed, from its state changes.
type AlertLife struct {
	Alert models.Alert
	// AckedAt is the first change to acknowledged, escalated or
	// false_positive made by a person; zero if none. An automatic
	// escalation (by "chatwarden", the alert was not acknowledged in time)
	// is not a reaction.
	AckedAt time.Time
	// ResolvedAt is the first change to resolved or false_positive; zero if
	// none.
	ResolvedAt time.Time
}

// AlertLives returns every alert first seen in [from, to) with its
// reaction and resolution times; tenants, when not empty, keeps only the
// alerts of those tenants.
func (s *Store) AlertLives(ctx context.Context, tenants []string, from, to time.Time) ([]AlertLife, error) {
	cond, args := tenantIn("ten", tenants)
	as, err := s.scanAlerts(ctx, "SELECT "+alertColumns+` FROM alerts GROUP BY id
HAVING argMax(first_seen, version) >= ? AND argMax(first_seen, version) < ?`+cond+` ORDER BY id`,
		append([]any{from.UTC(), to.UTC()}, args...)...)
	if err != nil {
		return nil, err
	}
	out := make([]AlertLife, len(as))
	idx := map[string]int{}
	ids := make([]string, len(as))
	for i, a := range as {
		out[i].Alert = a
		idx[a.ID] = i
		ids[i] = a.ID
	}
	const chunk = 2000
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		rows, err := s.conn.Query(ctx, `SELECT alert_id,
minIf(at, status IN ('acknowledged', 'escalated', 'false_positive') AND by != 'chatwarden') AS acked,
minIf(at, status IN ('resolved', 'false_positive')) AS resolved,
countIf(status IN ('acknowledged', 'escalated', 'false_positive') AND by != 'chatwarden'), countIf(status IN ('resolved', 'false_positive'))
FROM alert_changes WHERE alert_id IN ? GROUP BY alert_id`, InList(part))
		if err != nil {
			return nil, fmt.Errorf("reading alert changes: %w", err)
		}
		for rows.Next() {
			var id string
			var acked, resolved time.Time
			var nAck, nRes uint64
			if err := rows.Scan(&id, &acked, &resolved, &nAck, &nRes); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading alert change times: %w", err)
			}
			i := idx[id]
			if nAck > 0 {
				out[i].AckedAt = acked.UTC()
			}
			if nRes > 0 {
				out[i].ResolvedAt = resolved.UTC()
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("reading alert changes: %w", err)
		}
	}
	return out, nil
}
