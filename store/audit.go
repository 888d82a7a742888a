package store

import (
	"context"
	"fmt"
	"time"
)

// AuditEntry is one line of the audit trail: who looked at what, when, from
// where, and how many rows they got. Detail never holds a raw customer id.
type AuditEntry struct {
	TS     time.Time `json:"ts"`
	User   string    `json:"user"`
	Role   string    `json:"role"`
	Source string    `json:"source"` // web, api or cli
	Action string    `json:"action"` // history, export, blast_radius, dsar, alert_action ...
	Detail string    `json:"detail"`
	Rows   uint64    `json:"rows"`
	Remote string    `json:"remote,omitempty"`
}

// InsertAudit appends one entry to the audit trail.
func (s *Store) InsertAudit(ctx context.Context, a AuditEntry) error {
	err := s.insertRow(ctx, "INSERT INTO audit_log (ts, user, role, source, action, detail, rows, remote)",
		a.TS.UTC().Truncate(time.Second), a.User, a.Role, a.Source, a.Action, a.Detail, a.Rows, a.Remote)
	if err != nil {
		return fmt.Errorf("writing audit entry: %w", err)
	}
	return nil
}

// AuditFilter selects audit entries; empty fields match anything.
type AuditFilter struct {
	From, To time.Time
	User     string
	Action   string
	// Limit bounds the entries (default 500).
	Limit int
}

// AuditLog returns audit entries, newest first.
func (s *Store) AuditLog(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	q := "SELECT ts, user, role, source, action, detail, rows, remote FROM audit_log WHERE ts >= ? AND ts < ?"
	args := []any{f.From.UTC(), f.To.UTC()}
	if f.User != "" {
		q += " AND user = ?"
		args = append(args, f.User)
	}
	if f.Action != "" {
		q += " AND action = ?"
		args = append(args, f.Action)
	}
	lim := f.Limit
	if lim <= 0 {
		lim = 500
	}
	q += " ORDER BY ts DESC LIMIT ?"
	args = append(args, uint64(lim))
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var a AuditEntry
		if err := rows.Scan(&a.TS, &a.User, &a.Role, &a.Source, &a.Action, &a.Detail, &a.Rows, &a.Remote); err != nil {
			return nil, fmt.Errorf("reading audit entry: %w", err)
		}
		a.TS = a.TS.UTC()
		out = append(out, a)
	}
	return out, rows.Err()
}
