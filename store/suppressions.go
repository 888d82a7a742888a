package store

import (
	"context"
	"fmt"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// PutSuppression appends a version of a suppression (create, change or, with
// Deleted set, lift). version orders versions of one id; pass a value that
// grows, e.g. now in nanoseconds.
func (s *Store) PutSuppression(ctx context.Context, sp models.Suppression, version uint64) error {
	var del uint8
	if sp.Deleted {
		del = 1
	}
	until := sp.Until
	if until.IsZero() {
		until = time.Unix(0, 0)
	}
	err := s.insertRow(ctx, `INSERT INTO suppressions (id, version, kind, tenant, actor_id, detector,
store, created_at, until, author, reason, deleted)`, sp.ID, version, string(sp.Kind), sp.Tenant, sp.ActorID,
		sp.Detector, sp.Store, sp.CreatedAt.UTC(), until.UTC(), sp.Author, sp.Reason, del)
	if err != nil {
		return fmt.Errorf("writing suppression %s: %w", sp.ID, err)
	}
	return nil
}

// Suppressions returns the latest version of every suppression that is not
// lifted and not expired at now.
func (s *Store) Suppressions(ctx context.Context, now time.Time) ([]models.Suppression, error) {
	rows, err := s.conn.Query(ctx, `SELECT id, argMax(kind, version), argMax(tenant, version),
argMax(actor_id, version), argMax(detector, version), argMax(store, version),
argMax(created_at, version), argMax(until, version), argMax(author, version),
argMax(reason, version), argMax(deleted, version)
FROM suppressions GROUP BY id`)
	if err != nil {
		return nil, fmt.Errorf("reading suppressions: %w", err)
	}
	defer rows.Close()
	var out []models.Suppression
	for rows.Next() {
		var sp models.Suppression
		var kind string
		var del uint8
		if err := rows.Scan(&sp.ID, &kind, &sp.Tenant, &sp.ActorID, &sp.Detector, &sp.Store,
			&sp.CreatedAt, &sp.Until, &sp.Author, &sp.Reason, &del); err != nil {
			return nil, err
		}
		sp.Kind, sp.Deleted = models.SuppressionKind(kind), del == 1
		if sp.Until.Unix() <= 0 {
			sp.Until = time.Time{}
		}
		if sp.Active(now) {
			out = append(out, sp)
		}
	}
	return out, rows.Err()
}
