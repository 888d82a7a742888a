package store

import (
	"context"
	"fmt"
	"time"
)

// RecordedQueries returns the text of every query that finished on the
// server since the given time from a client whose name matches the LIKE
// pattern (clickhouse-go names itself), as written to system.query_log
// (queries run with LogQueries). 18.16's query log has no database column.
// The SQL conformance check replays them on a current ClickHouse.
func (s *Store) RecordedQueries(ctx context.Context, since time.Time, clientLike string) ([]string, error) {
	if err := s.exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		return nil, fmt.Errorf("flushing query log: %w", err)
	}
	return s.stringsOf(ctx, "reading query log", `SELECT DISTINCT query FROM system.query_log
WHERE type = 2 AND event_time >= ? AND client_name LIKE ?`, since.UTC(), clientLike)
}
