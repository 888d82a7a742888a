package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// AlertRow is one version of an alert as the alerts table keeps it: the
// models.Alert plus alerting's bookkeeping.
type AlertRow struct {
	Alert models.Alert
	// Version orders versions of one alert id; the largest wins.
	Version uint64
	// MutedBy names what keeps the alert from being notified: a
	// suppression id or "inhibited:<alert id>"; empty when it is not muted.
	MutedBy string
	// AckedAt and EscalatedAt are zero until it happened.
	AckedAt     time.Time
	EscalatedAt time.Time
}

// AlertChange is one state change of an alert, for the audit trail.
type AlertChange struct {
	AlertID  string
	At       time.Time
	Status   models.AlertStatus
	Previous models.AlertStatus
	By       string
	Note     string
	Tenant   string
	ActorID  string
	Detector string
	Severity models.Severity
}

// AlertMessage is one version of a Slack message alerting owns: an alert
// group, an escalation or a weekly digest.
type AlertMessage struct {
	ID      string
	Version uint64
	// Kind is "group", "escalation" or "digest".
	Kind     string
	Channel  string
	GroupKey string
	Tenant   string
	ActorID  string
	AlertIDs []string
	// Rev is the content revision that should be shown; SentRev the one
	// Slack shows. Rev > SentRev means the message needs (re)sending.
	Rev     uint32
	SentRev uint32
	// TS and PostedChannel identify the posted Slack message (empty until
	// chat.postMessage answered).
	TS            string
	PostedChannel string
	// IntentAt is set, before posting, to when the first post was tried.
	IntentAt  time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
	// Closed means no further content change will come.
	Closed bool
	// Body is kind-specific JSON (the digest's content).
	Body string
}

func zeroTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return t.UTC()
}

func fromZero(t time.Time) time.Time {
	if t.Unix() <= 0 {
		return time.Time{}
	}
	return t.UTC()
}

// PutAlerts appends a version of each alert in one batch.
func (s *Store) PutAlerts(ctx context.Context, rows []AlertRow) error {
	if len(rows) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO alerts (id, version, fingerprint, detector, tenant,
actor_id, actor_type, severity, status, first_seen, last_seen, findings, latest, updated_at, updated_by,
muted_by, acked_at, escalated_at)`)
	if err != nil {
		return fmt.Errorf("preparing insert of %d alerts: %w", len(rows), err)
	}
	for _, r := range rows {
		a := r.Alert
		latest, err := json.Marshal(a.Latest)
		if err != nil {
			_ = batch.Abort()
			return fmt.Errorf("encoding finding of alert %s: %w", a.ID, err)
		}
		if err := batch.Append(a.ID, r.Version, a.Fingerprint, a.Detector, a.Tenant, a.ActorID,
			string(a.ActorType), uint8(a.Severity), string(a.Status), zeroTime(a.FirstSeen), zeroTime(a.LastSeen),
			uint32(a.Findings), string(latest), zeroTime(a.UpdatedAt), a.UpdatedBy, r.MutedBy,
			zeroTime(r.AckedAt), zeroTime(r.EscalatedAt)); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("appending alert %s: %w", a.ID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d alerts: %w", len(rows), err)
	}
	return nil
}

const selectAlerts = `SELECT id, max(version), argMax(fingerprint, version), argMax(detector, version),
argMax(tenant, version), argMax(actor_id, version), argMax(actor_type, version), argMax(severity, version),
argMax(status, version), argMax(first_seen, version), argMax(last_seen, version), argMax(findings, version),
argMax(latest, version), argMax(updated_at, version), argMax(updated_by, version), argMax(muted_by, version),
argMax(acked_at, version), argMax(escalated_at, version)
FROM alerts `

// ActiveAlerts returns the latest version of every alert that is not
// resolved and not marked false positive.
func (s *Store) ActiveAlerts(ctx context.Context) ([]AlertRow, error) {
	return s.queryAlerts(ctx, selectAlerts+`GROUP BY id
HAVING argMax(status, version) NOT IN ('resolved', 'false_positive') ORDER BY id`)
}

// AlertsByID returns the latest version of each of ids that exists.
func (s *Store) AlertsByID(ctx context.Context, ids []string) ([]AlertRow, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return s.queryAlerts(ctx, selectAlerts+`WHERE id IN ? GROUP BY id ORDER BY id`, InList(ids))
}

// RecentAlerts returns the latest version of alerts last seen in [from, to),
// newest first, at most limit.
func (s *Store) RecentAlerts(ctx context.Context, from, to time.Time, limit int) ([]AlertRow, error) {
	return s.queryAlerts(ctx, selectAlerts+`GROUP BY id
HAVING argMax(last_seen, version) >= ? AND argMax(last_seen, version) < ?
ORDER BY argMax(last_seen, version) DESC, id LIMIT ?`, from.UTC(), to.UTC(), limit)
}

func (s *Store) queryAlerts(ctx context.Context, q string, args ...any) ([]AlertRow, error) {
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading alerts: %w", err)
	}
	defer rows.Close()
	var out []AlertRow
	for rows.Next() {
		var (
			r                                      AlertRow
			a                                      = &r.Alert
			atype, status, latest                  string
			sev                                    uint8
			findings                               uint32
			first, last, updated, acked, escalated time.Time
		)
		if err := rows.Scan(&a.ID, &r.Version, &a.Fingerprint, &a.Detector, &a.Tenant, &a.ActorID, &atype,
			&sev, &status, &first, &last, &findings, &latest, &updated, &a.UpdatedBy, &r.MutedBy,
			&acked, &escalated); err != nil {
			return nil, fmt.Errorf("scanning alert: %w", err)
		}
		a.ActorType, a.Severity, a.Status = models.ActorType(atype), models.Severity(sev), models.AlertStatus(status)
		a.FirstSeen, a.LastSeen, a.UpdatedAt = fromZero(first), fromZero(last), fromZero(updated)
		a.Findings = int(findings)
		r.AckedAt, r.EscalatedAt = fromZero(acked), fromZero(escalated)
		if latest != "" {
			if err := json.Unmarshal([]byte(latest), &a.Latest); err != nil {
				return nil, fmt.Errorf("decoding finding of alert %s: %w", a.ID, err)
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// PutAlertChanges appends state changes in one batch.
func (s *Store) PutAlertChanges(ctx context.Context, cs []AlertChange) error {
	if len(cs) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO alert_changes (alert_id, at, status, previous, by,
note, tenant, actor_id, detector, severity)`)
	if err != nil {
		return fmt.Errorf("preparing insert of %d alert changes: %w", len(cs), err)
	}
	for _, c := range cs {
		if err := batch.Append(c.AlertID, c.At.UTC(), string(c.Status), string(c.Previous), c.By, c.Note,
			c.Tenant, c.ActorID, c.Detector, uint8(c.Severity)); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("appending change of alert %s: %w", c.AlertID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d alert changes: %w", len(cs), err)
	}
	return nil
}

// AlertChanges returns the state changes of one alert, oldest first.
func (s *Store) AlertChanges(ctx context.Context, alertID string) ([]AlertChange, error) {
	rows, err := s.conn.Query(ctx, `SELECT alert_id, at, status, previous, by, note, tenant, actor_id,
detector, severity FROM alert_changes WHERE alert_id = ? ORDER BY at, status`, alertID)
	if err != nil {
		return nil, fmt.Errorf("reading changes of alert %s: %w", alertID, err)
	}
	defer rows.Close()
	var out []AlertChange
	for rows.Next() {
		var c AlertChange
		var status, prev string
		var sev uint8
		if err := rows.Scan(&c.AlertID, &c.At, &status, &prev, &c.By, &c.Note, &c.Tenant, &c.ActorID,
			&c.Detector, &sev); err != nil {
			return nil, fmt.Errorf("scanning alert change: %w", err)
		}
		c.Status, c.Previous, c.Severity = models.AlertStatus(status), models.AlertStatus(prev), models.Severity(sev)
		out = append(out, c)
	}
	return out, rows.Err()
}

// PutAlertMessages appends a version of each message in one batch.
func (s *Store) PutAlertMessages(ctx context.Context, ms []AlertMessage) error {
	if len(ms) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO alert_messages (id, version, kind, channel, group_key,
tenant, actor_id, alert_ids, rev, sent_rev, ts, posted_channel, intent_at, created_at, updated_at, closed, body)`)
	if err != nil {
		return fmt.Errorf("preparing insert of %d alert messages: %w", len(ms), err)
	}
	for _, m := range ms {
		var closed uint8
		if m.Closed {
			closed = 1
		}
		ids := m.AlertIDs
		if ids == nil {
			ids = []string{}
		}
		if err := batch.Append(m.ID, m.Version, m.Kind, m.Channel, m.GroupKey, m.Tenant, m.ActorID, ids,
			m.Rev, m.SentRev, m.TS, m.PostedChannel, zeroTime(m.IntentAt), zeroTime(m.CreatedAt),
			zeroTime(m.UpdatedAt), closed, m.Body); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("appending alert message %s: %w", m.ID, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d alert messages: %w", len(ms), err)
	}
	return nil
}

const selectMessages = `SELECT id, max(version), argMax(kind, version), argMax(channel, version),
argMax(group_key, version), argMax(tenant, version), argMax(actor_id, version), argMax(alert_ids, version),
argMax(rev, version), argMax(sent_rev, version), argMax(ts, version), argMax(posted_channel, version),
argMax(intent_at, version), argMax(created_at, version), argMax(updated_at, version),
argMax(closed, version), argMax(body, version)
FROM alert_messages `

// OpenAlertMessages returns the latest version of every message that is not
// closed or still has an unsent revision.
func (s *Store) OpenAlertMessages(ctx context.Context) ([]AlertMessage, error) {
	return s.queryMessages(ctx, selectMessages+`GROUP BY id
HAVING argMax(closed, version) = 0 OR argMax(rev, version) > argMax(sent_rev, version) ORDER BY id`)
}

// AlertMessagesByID returns the latest version of each of ids that exists.
func (s *Store) AlertMessagesByID(ctx context.Context, ids []string) ([]AlertMessage, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return s.queryMessages(ctx, selectMessages+`WHERE id IN ? GROUP BY id ORDER BY id`, InList(ids))
}

func (s *Store) queryMessages(ctx context.Context, q string, args ...any) ([]AlertMessage, error) {
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading alert messages: %w", err)
	}
	defer rows.Close()
	var out []AlertMessage
	for rows.Next() {
		var (
			m                        AlertMessage
			closed                   uint8
			intent, created, updated time.Time
		)
		if err := rows.Scan(&m.ID, &m.Version, &m.Kind, &m.Channel, &m.GroupKey, &m.Tenant, &m.ActorID,
			&m.AlertIDs, &m.Rev, &m.SentRev, &m.TS, &m.PostedChannel, &intent, &created, &updated,
			&closed, &m.Body); err != nil {
			return nil, fmt.Errorf("scanning alert message: %w", err)
		}
		m.IntentAt, m.CreatedAt, m.UpdatedAt, m.Closed = fromZero(intent), fromZero(created), fromZero(updated), closed == 1
		out = append(out, m)
	}
	return out, rows.Err()
}
