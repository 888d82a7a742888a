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

// clientDatabase, followed by the database name, is the comment each
// connection adds to its client name (Open).
const clientDatabase = "database "

// QueriesSince returns the text of every query of this store's database
// (its connections' client name names it) that finished on the server
// since the given time, as written to system.query_log (queries run with
// LogQueries). A test reads what a piece of code asked the server with it.
func (s *Store) QueriesSince(ctx context.Context, since time.Time) ([]string, error) {
	if err := s.exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		return nil, fmt.Errorf("flushing query log: %w", err)
	}
	return s.stringsOf(ctx, "reading query log", `SELECT query FROM system.query_log
WHERE type = 2 AND event_time >= ? AND position(client_name, ?) > 0`, since.UTC(), "("+clientDatabase+s.cfg.Database+";")
}
