package store

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// PartialInsert is what CompletePartialInsert found and wrote.
type PartialInsert struct {
	// Stored holds the ids that the events table holds: the caller must
	// not insert them again.
	Stored map[string]bool
	// Written counts, per materialized view target, the events whose rows
	// CompletePartialInsert wrote into it.
	Written map[string]int
	// Unsure lists the actor_minute, actor_minute_exports, actor_hour and
	// vendor_actor_hour keys ("table minute tenant actor") whose
	// counts matched neither "has the events" nor "lacks them" (another
	// writer of the same actor and minute, or an older partial insert):
	// left as they are.
	Unsure []string
}

// eventView is a materialized view over events: its target table and its
// SELECT, as the migrations create them.
type eventView struct {
	name, target, sel string
}

// fromEventsRe matches the FROM clause of a view over events.
var fromEventsRe = regexp.MustCompile(`(?i)\bFROM\s+events\b`)

// eventViews returns the materialized views the migrations create over the
// events table, in migration order; a view that a later migration creates
// anew (after dropping it) has that later SELECT, in its first place.
func eventViews() ([]eventView, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	var out []eventView
	gone := dropped(ms)
	for _, m := range ms {
		for _, stmt := range m.Statements {
			v := clusterViewRe.FindStringSubmatch(strings.TrimSpace(stmt))
			if v == nil || gone[v[1]] {
				continue
			}
			if f := clusterFromRe.FindStringSubmatch(v[3]); f == nil || f[1] != "events" {
				continue
			}
			ev := eventView{name: v[1], target: v[2], sel: v[3]}
			if i := slices.IndexFunc(out, func(o eventView) bool { return o.name == ev.name }); i >= 0 {
				out[i] = ev
				continue
			}
			out = append(out, ev)
		}
	}
	return out, nil
}

// CompletePartialInsert is for the retry of a failed InsertEvents of ids,
// whose ts are in [from, to]. ClickHouse writes the events table first and
// then pushes the block to each materialized view in turn, each a part of
// its own, so an insert that failed half-way (a full disk) may have stored
// the events and the rows of some views but not of the others. It returns
// the ids the events table holds (the caller must not insert them again:
// that would double them in events and in the views that have them) and
// writes, for those ids, the rows each view's target lacks, computed by the
// view's own SELECT over the stored events:
//
//   - a target with an event_id column (event_ids, events_by_subject,
//     shares) gets the rows of the ids it does not hold;
//   - actor_minute, actor_minute_exports, actor_hour and vendor_actor_hour
//     (aggregate states, no event id) get the events of an (actor, minute
//     or hour) whose sumMerge(events) falls short of the events table's
//     count (of the events the view keeps: vendor_hour's have an
//     actor_vendor, actor_minute_exports's are exports) by
//     exactly the count of the stored ids in that key; a key that matches
//     neither is left alone and listed in Unsure.
//
// A second call writes nothing more. It reads the days of [from, to] of
// events, so it is slower than ExistingEventIDs.
func (s *Store) CompletePartialInsert(ctx context.Context, ids []string, from, to time.Time) (PartialInsert, error) {
	out := PartialInsert{Written: map[string]int{}}
	stored, err := s.StoredEventIDs(ctx, ids, from, to)
	if err != nil {
		return out, err
	}
	out.Stored = stored
	if len(stored) == 0 {
		return out, nil
	}
	views, err := eventViews()
	if err != nil {
		return out, err
	}
	lo, hi := from.UTC().Truncate(time.Second), to.UTC().Truncate(time.Second).Add(time.Second)
	have := sortedKeys(stored)
	for _, v := range views {
		var n int
		switch r, ok := rollups[v.target]; {
		case ok:
			var unsure []string
			n, unsure, err = s.completeRollup(ctx, v, r, have, lo, hi)
			out.Unsure = append(out.Unsure, unsure...)
		default:
			n, err = s.completeByEventID(ctx, v, have, lo, hi)
		}
		if err != nil {
			return out, fmt.Errorf("completing view %s of a partial insert: %w", v.name, err)
		}
		if n > 0 {
			out.Written[v.target] = n
		}
	}
	return out, nil
}

// viewOver returns v's SELECT reading only the events of ids in [lo, hi),
// and its arguments.
func viewOver(v eventView, ids []string, lo, hi time.Time) (string, []any) {
	loc := fromEventsRe.FindStringIndex(v.sel)
	q := v.sel[:loc[0]] + "FROM (SELECT * FROM events WHERE ts >= ? AND ts < ? AND event_id IN ?)" + v.sel[loc[1]:]
	return q, []any{lo, hi, InList(ids)}
}

// viewColumns returns the names of the columns v's SELECT returns (by
// DESCRIBE: a SELECT would send aggregate states, which the driver does not
// decode).
func (s *Store) viewColumns(ctx context.Context, v eventView, ids []string, lo, hi time.Time) ([]string, error) {
	q, args := viewOver(v, ids, lo, hi)
	rows, err := s.conn.Query(ctx, "DESCRIBE TABLE ("+q+")", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	// DESCRIBE's columns (all strings) differ between versions; the
	// first is the name.
	vals := make([]string, len(rows.Columns()))
	dest := make([]any, len(vals))
	for i := range vals {
		dest[i] = &vals[i]
	}
	var cols []string
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		cols = append(cols, vals[0])
	}
	return cols, rows.Err()
}

// writeView inserts into v's target what v's SELECT makes of the events of
// ids in [lo, hi).
func (s *Store) writeView(ctx context.Context, v eventView, cols, ids []string, lo, hi time.Time) error {
	q, args := viewOver(v, ids, lo, hi)
	list := strings.Join(cols, ", ")
	target := v.target
	if s.cfg.Cluster != "" && !shardedTables[target] {
		// A Distributed table without a sharding key (event_ids) takes
		// no insert when the cluster has several shards (code 55). Its
		// rows are only read through the Distributed table, over every
		// shard, so the connected node's shard may hold them: its local
		// table, which ZooKeeper replicates to the shard's other
		// replicas.
		target += localSuffix
	}
	// target and cols come from the embedded migrations: no user text.
	return s.exec(ctx, "INSERT INTO "+target+" ("+list+") SELECT "+list+" FROM ("+q+")", args...)
}

// completeByEventID writes into v's target the rows of the ids (among
// have) that v selects and the target does not hold.
func (s *Store) completeByEventID(ctx context.Context, v eventView, have []string, lo, hi time.Time) (int, error) {
	cols, err := s.viewColumns(ctx, v, have, lo, hi)
	if err != nil {
		return 0, err
	}
	if !slices.Contains(cols, "event_id") || !slices.Contains(cols, "ts") {
		return 0, fmt.Errorf("view %s returns no event_id and ts: no way to tell which events its target %s holds", v.name, v.target)
	}
	q, args := viewOver(v, have, lo, hi)
	want, err := s.stringsOf(ctx, "event ids of view "+v.name, "SELECT DISTINCT event_id FROM ("+q+")", args...)
	if err != nil {
		return 0, err
	}
	if len(want) == 0 {
		return 0, nil
	}
	held, err := s.eventIDsIn(ctx, want, "event ids in "+v.target,
		"SELECT DISTINCT event_id FROM "+v.target+" WHERE ts >= ? AND ts < ? AND event_id IN batch_event_ids", lo, hi)
	if err != nil {
		return 0, err
	}
	var missing []string
	for _, id := range want {
		if !held[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return 0, nil
	}
	return len(missing), s.writeView(ctx, v, cols, missing, lo, hi)
}

// rollup is a materialized view target that aggregates events per time
// bucket, tenant and actor, with the events' count in events
// (sumState(toUInt64(1))).
type rollup struct {
	column string        // the bucket's column
	expr   string        // the bucket of an event, over events' ts
	step   time.Duration // the bucket's length
}

// rollups are the targets of that kind, by table.
var rollups = map[string]rollup{
	"actor_minute":         {column: "minute", expr: "toStartOfMinute(ts)", step: time.Minute},
	"actor_hour":           {column: "hour", expr: "toDateTime(intDiv(toUInt32(ts), 3600) * 3600)", step: time.Hour},
	"vendor_actor_hour":    {column: "hour", expr: "toDateTime(intDiv(toUInt32(ts), 3600) * 3600)", step: time.Hour},
	"actor_minute_exports": {column: "minute", expr: "toStartOfMinute(ts)", step: time.Minute},
}

// minuteKey is a rollup's key: a bucket (minute or hour), tenant and actor.
type minuteKey struct {
	minute        time.Time
	tenant, actor string
}

func (k minuteKey) String() string {
	return k.minute.UTC().Format(time.RFC3339) + " " + k.tenant + " " + k.actor
}

// completeRollup writes into v's target, the rollup r, the stored events
// (among have) of the keys that lack exactly them, and returns the keys it
// could not judge.
func (s *Store) completeRollup(ctx context.Context, v eventView, r rollup, have []string, lo, hi time.Time) (int, []string, error) {
	// The stored events' rows per key (the view counted rows).
	mine := map[minuteKey]uint64{}
	idsOf := map[minuteKey][]string{}
	{
		rows, err := s.eventRows(ctx, r.expr, viewCond(v), have, lo, hi)
		if err != nil {
			return 0, nil, err
		}
		for _, r := range rows {
			mine[r.key]++
			if !slices.Contains(idsOf[r.key], r.id) {
				idsOf[r.key] = append(idsOf[r.key], r.id)
			}
		}
	}
	if len(mine) == 0 {
		return 0, nil, nil
	}
	var actors []string
	for k := range mine {
		if !slices.Contains(actors, k.actor) {
			actors = append(actors, k.actor)
		}
	}
	mlo, mhi := lo.Truncate(r.step), hi.Truncate(r.step).Add(r.step)
	// r's fields and v.target come from the rollups map: no user text.
	all, err := s.minuteCounts(ctx, `SELECT `+r.expr+` AS m, tenant, actor_id, count()
FROM events WHERE ts >= ? AND ts < ? AND actor_id IN ?`+viewCond(v)+` GROUP BY m, tenant, actor_id`, mlo, mhi, InList(actors))
	if err != nil {
		return 0, nil, err
	}
	agg, err := s.minuteCounts(ctx, `SELECT `+r.column+`, tenant, actor_id, sumMerge(events)
FROM `+v.target+` WHERE `+r.column+` >= ? AND `+r.column+` < ? AND actor_id IN ? GROUP BY `+r.column+`, tenant, actor_id`, mlo, mhi, InList(actors))
	if err != nil {
		return 0, nil, err
	}
	var missing, unsure []string
	for k, n := range mine {
		switch {
		case agg[k] == all[k]:
		case agg[k]+n == all[k]:
			missing = append(missing, idsOf[k]...)
		default:
			unsure = append(unsure, fmt.Sprintf("%s %s: %s %d, events %d, this batch %d", v.target, k, v.target, agg[k], all[k], n))
		}
	}
	slices.Sort(unsure)
	if len(missing) == 0 {
		return 0, unsure, nil
	}
	slices.Sort(missing)
	cols, err := s.viewColumns(ctx, v, missing, lo, hi)
	if err != nil {
		return 0, nil, err
	}
	return len(missing), unsure, s.writeView(ctx, v, cols, missing, lo, hi)
}

// viewWhereRe matches the WHERE of a rollup view's SELECT (between FROM
// events and GROUP BY): the events it counts.
var viewWhereRe = regexp.MustCompile(`(?is)\bFROM\s+events\s+WHERE\s+(.*?)\s+GROUP\s+BY\b`)

// viewCond returns the WHERE of v's SELECT as a further condition over
// events (" AND (...)"), or "" when v counts every event (vendor_actor_hour
// counts only the events with an actor_vendor).
func viewCond(v eventView) string {
	m := viewWhereRe.FindStringSubmatch(v.sel)
	if m == nil {
		return ""
	}
	return " AND (" + m[1] + ")"
}

// eventRow is one events row's id and rollup key.
type eventRow struct {
	id  string
	key minuteKey
}

// eventRows returns the events rows of ids in [lo, hi) that meet cond (a
// rollup's cond), each keyed by bucket, an expression over ts (a rollup's).
func (s *Store) eventRows(ctx context.Context, bucket, cond string, ids []string, lo, hi time.Time) ([]eventRow, error) {
	rows, err := s.conn.Query(ctx, `SELECT event_id, `+bucket+`, tenant, actor_id
FROM events WHERE ts >= ? AND ts < ? AND event_id IN ?`+cond, lo, hi, InList(ids))
	if err != nil {
		return nil, fmt.Errorf("reading %d stored events: %w", len(ids), err)
	}
	defer rows.Close()
	var out []eventRow
	for rows.Next() {
		var r eventRow
		if err := rows.Scan(&r.id, &r.key.minute, &r.key.tenant, &r.key.actor); err != nil {
			return nil, err
		}
		r.key.minute = r.key.minute.UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// minuteCounts runs query, which returns (minute, tenant, actor, count).
func (s *Store) minuteCounts(ctx context.Context, query string, args ...any) (map[minuteKey]uint64, error) {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[minuteKey]uint64{}
	for rows.Next() {
		var k minuteKey
		var n uint64
		if err := rows.Scan(&k.minute, &k.tenant, &k.actor, &n); err != nil {
			return nil, err
		}
		k.minute = k.minute.UTC()
		out[k] = n
	}
	return out, rows.Err()
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
