package store

import (
	"context"
	"fmt"
	"time"
)

// LastEventByStore returns, for every data store with events at or after
// since, the time of its latest event. Self-monitoring uses it to notice a
// source that has fallen silent.
func (s *Store) LastEventByStore(ctx context.Context, since time.Time) (map[string]time.Time, error) {
	rows, err := s.conn.Query(ctx, `SELECT store, max(ts) FROM events WHERE ts >= ? GROUP BY store`, since.UTC())
	if err != nil {
		return nil, fmt.Errorf("reading last event per store: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var st string
		var ts time.Time
		if err := rows.Scan(&st, &ts); err != nil {
			return nil, fmt.Errorf("scanning last event per store: %w", err)
		}
		out[st] = ts.UTC()
	}
	return out, rows.Err()
}

// ActorExposure is what one actor touched in a time range: the blast radius
// an alert shows when its finding carries none.
type ActorExposure struct {
	Subjects   uint64
	Records    uint64
	Categories []string
	Stores     []string
}

// ActorExposure counts the distinct customers, records, data categories and
// stores that actor touched in [from, to].
func (s *Store) ActorExposure(ctx context.Context, tenant, actor string, from, to time.Time) (ActorExposure, error) {
	var x ActorExposure
	err := s.conn.QueryRow(ctx, `SELECT uniqExactIf(subject_id, subject_id != ''), sum(records),
groupUniqArrayArray(fields), groupUniqArray(store)
FROM events WHERE tenant = ? AND actor_id = ? AND ts >= ? AND ts <= ?`,
		tenant, actor, from.UTC(), to.UTC()).Scan(&x.Subjects, &x.Records, &x.Categories, &x.Stores)
	if err != nil {
		return x, fmt.Errorf("reading exposure of actor: %w", err)
	}
	return x, nil
}
