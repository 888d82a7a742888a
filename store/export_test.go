package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// exposureThreePass is the blast-radius query as it was before the one-pass
// exposureSQL: totals, stores with countries, and customers per category in
// three separate passes over the matching rows. It is kept here only as the
// reference the one-pass query must agree with.
func exposureThreePass(ctx context.Context, s *Store, table, where string, args []any) (Exposure, error) {
	var x Exposure
	err := s.conn.QueryRow(ctx, `SELECT count(), uniqExactIf(subject_id, subject_id != ''), sum(records),
uniqExact(actor_id), countIf(action IN ('export', 'share')), countIf(result = 'denied'), min(ts), max(ts)
FROM `+table+` WHERE `+where, args...).Scan(&x.Events, &x.Subjects, &x.Records, &x.Actors, &x.Exports, &x.Denied, &x.First, &x.Last)
	if err != nil {
		return x, err
	}
	if x.Events == 0 {
		return Exposure{Categories: []Count{}, Stores: []Count{}}, nil
	}
	x.First, x.Last = x.First.UTC(), x.Last.UTC()
	rows, err := s.conn.Query(ctx, `SELECT store, client_country, count() FROM `+table+` WHERE `+where+` GROUP BY store, client_country`, args...)
	if err != nil {
		return x, err
	}
	stores, countries := map[string]uint64{}, map[string]uint64{}
	for rows.Next() {
		var st, co string
		var n uint64
		if err := rows.Scan(&st, &co, &n); err != nil {
			return x, err
		}
		stores[st] += n
		countries[co] += n
	}
	rows.Close()
	x.Stores, x.Countries = sortedCounts(stores, 0), sortedCounts(countries, 20)
	x.Categories, err = s.counts(ctx, `SELECT cat, uniqExactIf(subject_id, subject_id != '') AS n
FROM `+table+` ARRAY JOIN fields AS cat WHERE `+where+` GROUP BY cat ORDER BY n DESC, cat`, args)
	return x, err
}

// ExposureThreePass runs the former three-pass blast radius of a filter.
func ExposureThreePass(ctx context.Context, s *Store, f HistoryFilter) (Exposure, error) {
	where, args := f.where()
	return exposureThreePass(ctx, s, f.table(), where, args)
}

// ExposureOfWindowsThreePass runs the former three-pass blast radius of
// alert windows (ws non-empty, at most MaxExposureWindows).
func ExposureOfWindowsThreePass(ctx context.Context, s *Store, ws []ActorWindow) (Exposure, error) {
	where, args := windowsWhere(ws)
	return exposureThreePass(ctx, s, "events", where, args)
}

// InsertAuditRowForTest writes an audit row exactly as given (chain fields
// included), bypassing the chain: a forged or replayed row.
func InsertAuditRowForTest(ctx context.Context, s *Store, a AuditEntry) error {
	return s.insertRow(ctx, "INSERT INTO audit_log (ts, user, role, source, action, detail, rows, remote, os_user, writer, seq, prev_hash, hash)",
		a.TS.UTC(), a.User, a.Role, a.Source, a.Action, a.Detail, a.Rows, a.Remote, a.OSUser, a.Writer, a.Seq, a.PrevHash, a.Hash)
}

// InsertEventsLocal writes evs into the events_local table of the node s is
// connected to: a cluster's shard-local insert, which BenchmarkInsertEvents
// compares with the insert through the Distributed table.
func InsertEventsLocal(ctx context.Context, s *Store, evs []models.Event, ingestedAt time.Time) error {
	return s.insertEvents(ctx, "events"+localSuffix, evs, ingestedAt)
}

// ShardReplicas returns the replicas (host:port) of each storage shard of
// s's cluster, in the order shard-local reads try them.
func ShardReplicas(ctx context.Context, s *Store) ([][]string, error) {
	l, err := s.clusterLayout(ctx)
	if err != nil {
		return nil, err
	}
	return l.replicas, nil
}

// SetShardReplicas makes shard-local reads of storage shard shard try
// addrs (a test's replica that is down), for the next hour.
func SetShardReplicas(ctx context.Context, s *Store, shard int, addrs []string) error {
	l, err := s.clusterLayout(ctx)
	if err != nil {
		return err
	}
	c := *l
	c.replicas = append([][]string(nil), l.replicas...)
	c.replicas[shard] = addrs
	c.read = time.Now().Add(time.Hour)
	s.shards.mu.Lock()
	s.shards.layout = &c
	s.shards.mu.Unlock()
	return nil
}

// RunMigration runs the statements of the embedded migration version again
// (each in its cluster form on a cluster), as Migrate would on a database
// that lacks it.
func RunMigration(ctx context.Context, s *Store, version int) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Version != version {
			continue
		}
		for _, stmt := range m.Statements {
			if err := s.migrateStatement(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("no migration %d", version)
}

// HourDaysIn runs hourDaysSQL as if the server's time zone were tz: whether
// every day of tz starts on a whole UTC hour.
func HourDaysIn(ctx context.Context, s *Store, tz string) (bool, error) {
	q := strings.Replace(hourDaysSQL, "number * 21600)", "number * 21600, ?)", 1)
	if q == hourDaysSQL {
		return false, fmt.Errorf("hourDaysSQL has no toDateTime(... number * 21600) to give a time zone")
	}
	var off uint64
	err := s.conn.QueryRow(ctx, q, tz).Scan(&off)
	return off == 0, err
}

// ExposureReadsHours reports whether ExposureOfWindows(ws) reads
// events_by_hour (on a server whose days start on whole UTC hours).
func ExposureReadsHours(ws []ActorWindow) bool {
	_, _, ok := hourWindowsWhere(ws)
	return ok
}

// InsertEventsBlocks writes evs into events in one INSERT of blocks of
// blockRows rows (BenchmarkInsertBlocks).
func InsertEventsBlocks(ctx context.Context, s *Store, evs []models.Event, ingestedAt time.Time, blockRows int) error {
	return s.insertEventsBlocks(ctx, "events", evs, ingestedAt, blockRows)
}

// InsertEventBatchesSplit is InsertEventBatches with inserts of at least
// splitRows rows split into concurrent INSERTs, blocks of blockRows rows
// (TestInsertEventsSplit).
func InsertEventBatchesSplit(ctx context.Context, s *Store, bs []EventBatch, blockRows, splitRows int) error {
	return s.insertEventBatches(ctx, "events", bs, blockRows, splitRows)
}

// SplitEvents is splitEvents (TestSplitEvents).
func SplitEvents(bs []EventBatch) [][][]int32 { return splitEvents(bs) }

// windowAggregatesArraysSQL and windowAggregatesArraysRawSQL are
// WindowAggregatesSQL and WindowAggregatesRawSQL as they were before the
// sets came as length-prefixed strings: the arrays themselves, scanned
// into []string. Kept here only as the reference the strings must decode
// to, item for item and in the same order.
const windowAggregatesArraysSQL = `SELECT toDateTime(intDiv(toUInt32(minute), %d) * %d) AS window_start, tenant, actor_id,
anyLastMerge(actor_type_any), anyLastMerge(actor_role_any), anyLastMerge(actor_vendor_any),
sumMerge(events), sumMerge(records_sum), sumMerge(bytes_sum), sumMerge(exports),
sumMerge(export_records), sumMerge(denied), uniqExactIfMerge(subjects),
groupUniqArrayMerge(stores), groupUniqArrayMerge(resource_types),
groupUniqArrayArrayMerge(categories), groupUniqArrayIfMerge(countries)
FROM actor_minute
WHERE minute >= ? AND minute < ?
GROUP BY window_start, tenant, actor_id
ORDER BY window_start, tenant, actor_id`

const windowAggregatesArraysRawSQL = `SELECT toDateTime(intDiv(toUInt32(ts), %d) * %d) AS window_start, tenant, actor_id,
anyLast(actor_type), anyLast(actor_role), anyLast(actor_vendor),
count(), sum(records), sum(bytes), countIf(action IN ('export', 'share')),
sumIf(records, action IN ('export', 'share')), countIf(result = 'denied'), uniqExactIf(subject_id, subject_id != ''),
groupUniqArray(store), groupUniqArray(resource_type),
groupUniqArrayArray(fields), groupUniqArrayIf(client_country, client_country != ''),
countIf(action = 'export'), sumIf(records, action = 'export')
FROM events
WHERE ts >= ? AND ts < ?
GROUP BY window_start, tenant, actor_id
ORDER BY window_start, tenant, actor_id`

// WindowAggregatesArrays is WindowAggregates (unsharded) as it read the
// sets before: the arrays scanned by clickhouse-go.
func WindowAggregatesArrays(ctx context.Context, s *Store, from, to time.Time, window time.Duration) ([]WindowActivity, error) {
	w := int64(window / time.Second)
	raw := w%60 != 0
	q := fmt.Sprintf(windowAggregatesArraysSQL, w, w)
	if raw {
		q = fmt.Sprintf(windowAggregatesArraysRawSQL, w, w)
	}
	args := []any{from.UTC(), to.UTC()}
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []WindowActivity
	for rows.Next() {
		var a WindowActivity
		dst := []any{&a.WindowStart, &a.Tenant, &a.ActorID, &a.ActorType, &a.ActorRole, &a.ActorVendor,
			&a.Events, &a.Records, &a.Bytes, &a.Exports, &a.ExportRecords, &a.Denied, &a.Subjects,
			&a.Stores, &a.ResourceTypes, &a.Categories, &a.Countries}
		if raw {
			dst = append(dst, &a.ExportOnly, &a.ExportOnlyRecords)
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, err
		}
		a.WindowStart = a.WindowStart.UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !raw && len(out) > 0 {
		err = s.windowExports(ctx, out, fmt.Sprintf(WindowExportsSQL, w, w, ""), args, Shard{})
	}
	return out, err
}

// DecodeSet is decodeSet, for tests.
var DecodeSet = decodeSet

// InsertEventsOneInsert writes evs into events as InsertEvents does (rows
// grouped by actor, blocks of insertBlockRows rows) but as one INSERT,
// never split (BenchmarkInsertViewsCPU reads its CPU by query id); with
// inputOrder, in evs' order, as InsertEvents did before actorOrder.
func InsertEventsOneInsert(ctx context.Context, s *Store, evs []models.Event, ingestedAt time.Time, inputOrder bool) error {
	bs := []EventBatch{{Events: evs, IngestedAt: ingestedAt}}
	var rows [][]int32
	if !inputOrder {
		rows = actorOrder(bs, nil)
	}
	return s.insertEventRows(ctx, "events", bs, rows, insertBlockRows)
}

// ActorOrder is actorOrder (TestActorOrder).
func ActorOrder(bs []EventBatch, rows [][]int32) [][]int32 { return actorOrder(bs, rows) }
