package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// DestinationActivity is what one actor sent to one destination in one
// detection window, read from shares.
type DestinationActivity struct {
	WindowStart time.Time
	Tenant      string
	ActorID     string
	Destination string
	Events      uint64
	Records     uint64
	Subjects    uint64
	Categories  []string
}

// DestinationWindowsSQL is the query behind DestinationWindows, exported so
// that findings can quote it.
const DestinationWindowsSQL = `SELECT toDateTime(intDiv(toUInt32(ts), %d) * %d) AS window_start, tenant, actor_id, destination,
count(), sum(records), uniqExactIf(subject_id, subject_id != ''), groupUniqArrayArray(fields)
FROM shares
WHERE ts >= ? AND ts < ? AND result != 'denied'%s
GROUP BY window_start, tenant, actor_id, destination
ORDER BY window_start, tenant, actor_id, destination`

// DestinationWindows returns, per window of length window (whole seconds,
// aligned to the epoch) in [from, to), what each actor of shard sent to each
// destination (denied shares left out: nothing left), ordered by window,
// tenant, actor and destination. It reads shares, which holds only the
// events with a destination.
func (s *Store) DestinationWindows(ctx context.Context, from, to time.Time, window time.Duration, shard Shard) ([]DestinationActivity, error) {
	w := int64(window / time.Second)
	if w < 1 || window%time.Second != 0 {
		return nil, fmt.Errorf("reading destination windows: window %s is not a whole number of seconds", window)
	}
	pred, pargs := shard.predicate()
	// w is an integer we formatted, not user text; the times and shard are bound.
	q := fmt.Sprintf(DestinationWindowsSQL, w, w, pred)
	var out []DestinationActivity
	err := s.detectRead(ctx, shard, q, append([]any{from.UTC(), to.UTC()}, pargs...), func() { out = out[:0] }, func(rows driver.Rows) error {
		for rows.Next() {
			var a DestinationActivity
			if err := rows.Scan(&a.WindowStart, &a.Tenant, &a.ActorID, &a.Destination, &a.Events, &a.Records,
				&a.Subjects, &a.Categories); err != nil {
				return fmt.Errorf("scanning destination windows: %w", err)
			}
			a.WindowStart = a.WindowStart.UTC()
			sort.Strings(a.Categories)
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading destination windows %s..%s: %w", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), err)
	}
	return out, nil
}

// DestinationTotal is what one tenant sent to one destination over a span.
type DestinationTotal struct {
	Tenant      string    `json:"tenant"`
	Destination string    `json:"destination"`
	Events      uint64    `json:"events"`
	Records     uint64    `json:"records"`
	Subjects    uint64    `json:"customers"`
	Actors      uint64    `json:"actors"`
	Categories  []string  `json:"categories"`
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
}

// SharedByDestinationSQL is the query behind SharedByDestination.
const SharedByDestinationSQL = `SELECT tenant, destination, count(), sum(records), uniqExactIf(subject_id, subject_id != ''),
uniqExact(actor_id), groupUniqArrayArray(fields), min(ts), max(ts)
FROM shares
WHERE ts >= ? AND ts < ? AND result != 'denied'%s
GROUP BY tenant, destination
ORDER BY tenant, destination`

// SharedByDestination returns, per tenant and destination, what was sent
// in [from, to) by shares and exports that were not denied; tenants, when
// not empty, restricts the rows to those tenants.
func (s *Store) SharedByDestination(ctx context.Context, tenants []string, from, to time.Time) ([]DestinationTotal, error) {
	cond, args := "", []any{from.UTC(), to.UTC()}
	if len(tenants) > 0 {
		cond = " AND tenant IN ?"
		args = append(args, InList(tenants))
	}
	rows, err := s.conn.Query(ctx, fmt.Sprintf(SharedByDestinationSQL, cond), args...)
	if err != nil {
		return nil, fmt.Errorf("reading shares by destination: %w", err)
	}
	defer rows.Close()
	var out []DestinationTotal
	for rows.Next() {
		var d DestinationTotal
		if err := rows.Scan(&d.Tenant, &d.Destination, &d.Events, &d.Records, &d.Subjects, &d.Actors,
			&d.Categories, &d.First, &d.Last); err != nil {
			return nil, fmt.Errorf("scanning shares by destination: %w", err)
		}
		d.First, d.Last = d.First.UTC(), d.Last.UTC()
		sort.Strings(d.Categories)
		out = append(out, d)
	}
	return out, rows.Err()
}
