package store

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// backFillHour is the UTC hour of an event, the bucket (and, by
// toYYYYMMDD, the partition) of the tables a back-fill statement fills.
const backFillHour = "toDateTime(intDiv(toUInt32(ts), 3600) * 3600)"

// backFilled lists the tables whose migration back-fills them from the
// stored events (INSERT INTO t (...) SELECT ... FROM events): each is
// partitioned by toYYYYMMDD of backFillHour (actor_minute_exports by that of
// the minute, which falls in the same day).
var backFilled = map[string]bool{"actor_hour": true, "events_by_hour": true, "vendor_hour": true,
	"actor_minute_exports": true, "vendor_actor_hour": true}

// backFill runs a migration's back-fill statement stmt (INSERT INTO table
// (...) SELECT ... FROM events ...) one UTC hour of events at a time, so
// that no single statement outlasts the query timeout, and one partition
// of table at a time: the partition is dropped first, so that a back-fill
// that stopped part-way (a timeout, a restart) and runs again does not
// count an event twice. It must run with ingest stopped: the rows that
// table's view writes into a partition before it is filled are dropped
// with it, and an event stored while the view exists and before its hour
// is filled is counted twice.
func (s *Store) backFill(ctx context.Context, table, stmt string) error {
	if !backFilled[table] {
		return fmt.Errorf("back-fill of %s: not a table partitioned by the UTC hour of its events", table)
	}
	loc := fromEventsRe.FindStringIndex(stmt)
	if loc == nil {
		return fmt.Errorf("back-fill of %s: it reads no FROM events", table)
	}
	// One hour of events at a time (events is ordered by actor: the
	// hour's bounds prune its daily partitions only).
	hourStmt := stmt[:loc[0]] + "FROM (SELECT * FROM events WHERE ts >= ? AND ts < ?)" + stmt[loc[1]:]
	stmts, err := s.statements(hourStmt)
	if err != nil {
		return err
	}
	rows, err := s.conn.Query(ctx, `SELECT DISTINCT toUInt32(`+backFillHour+`) AS h, toString(toYYYYMMDD(toDateTime(h))) FROM events`)
	if err != nil {
		return fmt.Errorf("back-fill of %s: listing the hours of events: %w", table, err)
	}
	hours := map[string][]int64{}
	for rows.Next() {
		var h uint32
		var p string
		if err := rows.Scan(&h, &p); err != nil {
			rows.Close()
			return err
		}
		hours[p] = append(hours[p], int64(h))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("back-fill of %s: listing the hours of events: %w", table, err)
	}
	parts := make([]string, 0, len(hours))
	for p := range hours {
		parts = append(parts, p)
	}
	sort.Strings(parts)
	for _, p := range parts {
		if _, ok := partitionEnd(p); !ok {
			return fmt.Errorf("back-fill of %s: partition %q is not a day", table, p)
		}
		// p is all digits (partitionEnd) and table a known name.
		drop, perShard := dropPartitionSQL(s.cfg.Cluster, s.cfg.Database, table, p)
		if perShard {
			err = s.oncePerShard(ctx, table+localSuffix, drop)
		} else {
			err = s.exec(ctx, drop)
		}
		if err != nil {
			return fmt.Errorf("back-fill of %s: clearing partition %s: %w", table, p, err)
		}
		hs := hours[p]
		sort.Slice(hs, func(i, j int) bool { return hs[i] < hs[j] })
		for _, h := range hs {
			from := time.Unix(h, 0).UTC()
			for _, st := range stmts {
				if err := s.exec(ctx, st, from, from.Add(time.Hour)); err != nil {
					return fmt.Errorf("back-fill of %s: hour %s: %w", table, from.Format(time.RFC3339), err)
				}
			}
		}
		s.log.Info("back-filled partition", "table", table, "partition", p, "hours", len(hs))
	}
	return nil
}
