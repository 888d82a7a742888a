package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/cityhash102"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/chatwarden/chatwarden/models"
)

// ShardKey says what a detection shard hashes to pick its actors.
type ShardKey uint8

const (
	// ShardByActor hashes the actor id alone: cityHash64(actor_id), the
	// detection shards of one server.
	ShardByActor ShardKey = iota
	// ShardByTenantActor hashes the tenant and the actor id:
	// cityHash64(tenant, actor_id), the Distributed tables' sharding key
	// (ShardingKey). On a cluster whose storage shards' total weight
	// divides Count, a detection shard's actors are all stored on one
	// storage shard, and its queries read that shard's local tables
	// (docs/scaling.md, "Shard-local detection").
	ShardByTenantActor
)

// Shard selects the actors one detection instance owns: those whose hash
// (Key) modulo Count equals Index. Count 0 or 1 owns every actor.
type Shard struct {
	Index, Count int
	Key          ShardKey
}

// Owns reports whether the instance of shard sh evaluates the actor of
// tenant (as stored): the Go twin of the detection queries' predicate
// (cityHash64(actor_id) or cityHash64(tenant, actor_id), by Key) % Count =
// Index. ClickHouse's cityHash64 of a String is CityHash64 v1.0.2, which
// clickhouse-go's cityhash102 implements, and cityHash64 of several
// arguments combines their hashes with Hash128to64. Detection's streaming
// counts keep only the shard's actors with it.
func (sh Shard) Owns(tenant, actor string) bool {
	if sh.Count <= 1 {
		return true
	}
	return sh.hash(tenant, actor)%uint64(sh.Count) == uint64(sh.Index)
}

// hash is ClickHouse's value of the shard's hash for (tenant, actor).
func (sh Shard) hash(tenant, actor string) uint64 {
	if sh.Key == ShardByTenantActor {
		return shardingHash(tenant, actor)
	}
	return cityHash64(actor)
}

// shardingHash is ClickHouse's cityHash64(tenant, actor_id), the
// Distributed tables' sharding key (ShardingKey).
func shardingHash(tenant, actor string) uint64 {
	return hash128to64(cityHash64(tenant), cityHash64(actor))
}

func cityHash64(s string) uint64 {
	return cityhash102.CityHash64([]byte(s), uint32(len(s)))
}

// hash128to64 is CityHash v1.0.2's Hash128to64 of (low, high), with which
// ClickHouse's cityHash64 combines the hashes of its arguments.
func hash128to64(low, high uint64) uint64 {
	const mul = 0x9ddfea08eb382d69
	a := (low ^ high) * mul
	a ^= a >> 47
	b := (high ^ a) * mul
	b ^= b >> 47
	return b * mul
}

// predicate renders the shard predicate and its arguments ("" when
// unsharded).
func (sh Shard) predicate() (string, []any) {
	if sh.Count <= 1 {
		return "", nil
	}
	if sh.Key == ShardByTenantActor {
		return " AND cityHash64(tenant, actor_id) % ? = ?", []any{uint64(sh.Count), uint64(sh.Index)}
	}
	return " AND cityHash64(actor_id) % ? = ?", []any{uint64(sh.Count), uint64(sh.Index)}
}

// WindowActivity is one actor's activity in one detection window, merged from
// actor_minute.
type WindowActivity struct {
	WindowStart time.Time
	Tenant      string
	ActorID     string
	ActorType   string
	ActorRole   string
	ActorVendor string
	Events      uint64
	Records     uint64
	Bytes       uint64
	// Exports and ExportRecords count the export and share actions and
	// their records; ExportOnly and ExportOnlyRecords the export actions
	// alone (a share sends a case to a named destination, an export takes
	// data out).
	Exports           uint64
	ExportRecords     uint64
	ExportOnly        uint64
	ExportOnlyRecords uint64
	Denied            uint64
	Subjects          uint64
	Stores            []string
	ResourceTypes     []string
	Categories        []string
	Countries         []string
}

// WindowAggregatesSQL is the query behind WindowAggregates, kept exported so
// that findings can quote the exact query that reproduces their evidence.
const WindowAggregatesSQL = `SELECT toDateTime(intDiv(toUInt32(minute), %d) * %d) AS window_start, tenant, actor_id,
anyLastMerge(actor_type_any), anyLastMerge(actor_role_any), anyLastMerge(actor_vendor_any),
sumMerge(events), sumMerge(records_sum), sumMerge(bytes_sum), sumMerge(exports),
sumMerge(export_records), sumMerge(denied), uniqExactIfMerge(subjects),
arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), groupUniqArrayMerge(stores))),
arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), groupUniqArrayMerge(resource_types))),
arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), groupUniqArrayArrayMerge(categories))),
arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), groupUniqArrayIfMerge(countries)))
FROM actor_minute
WHERE minute >= ? AND minute < ?%s
GROUP BY window_start, tenant, actor_id
ORDER BY window_start, tenant, actor_id`

// WindowAggregatesRawSQL is WindowAggregatesSQL for windows shorter than
// a minute, or not a whole number of minutes: the same columns, computed from
// raw events (the per-minute aggregates are too coarse).
const WindowAggregatesRawSQL = `SELECT toDateTime(intDiv(toUInt32(ts), %d) * %d) AS window_start, tenant, actor_id,
anyLast(actor_type), anyLast(actor_role), anyLast(actor_vendor),
count(), sum(records), sum(bytes), countIf(action IN ('export', 'share')),
sumIf(records, action IN ('export', 'share')), countIf(result = 'denied'), uniqExactIf(subject_id, subject_id != ''),
arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), groupUniqArray(store))),
arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), groupUniqArray(resource_type))),
arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), groupUniqArrayArray(fields))),
arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), groupUniqArrayIf(client_country, client_country != ''))),
countIf(action = 'export'), sumIf(records, action = 'export')
FROM events
WHERE ts >= ? AND ts < ?%s
GROUP BY window_start, tenant, actor_id
ORDER BY window_start, tenant, actor_id`

// WindowAggregatesRowsSQL is WindowAggregatesSQL for one-minute windows
// on one server (its %[1]s is the shard predicate): a window is then one
// key of actor_minute, and nearly every key is a single row (a minute is
// in two rows only while an INSERT that split it is not yet merged).
// Each row is finalized as it is: merging its one state in a GROUP BY
// cost about 2.5 times the CPU (a day, 22k rows: 61-77 ms against 133-203
// ms, most of it building the four sets' hash tables again), and a
// single-state set keeps its items' order. The keys that come in several
// rows (adjacent: the rows are ordered by key) are then read again merged,
// by WindowAggregatesSQL restricted to them (splitKeysPredicate).
const WindowAggregatesRowsSQL = `SELECT minute AS window_start, tenant, actor_id,
finalizeAggregation(actor_type_any), finalizeAggregation(actor_role_any), finalizeAggregation(actor_vendor_any),
finalizeAggregation(events), finalizeAggregation(records_sum), finalizeAggregation(bytes_sum), finalizeAggregation(exports),
finalizeAggregation(export_records), finalizeAggregation(denied), finalizeAggregation(subjects),
arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), finalizeAggregation(stores))),
arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), finalizeAggregation(resource_types))),
arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), finalizeAggregation(categories))),
arrayStringConcat(arrayMap(x -> concat(toString(length(x)), ':', x), finalizeAggregation(countries)))
FROM actor_minute
WHERE minute >= ? AND minute < ?%[1]s
ORDER BY window_start, tenant, actor_id`

// splitKeysPredicate restricts WindowAggregatesSQL to the keys in its
// array argument, each written as splitKey writes it.
const splitKeysPredicate = `
AND has(?, concat(toString(length(tenant)), ':', tenant, actor_id, ':', toString(toUInt32(minute))))`

// splitKey is a window's key as splitKeysPredicate compares it: the
// tenant after its length (so that no tenant and actor pair reads as
// another), the actor, and the minute after the last colon.
func splitKey(a *WindowActivity) string {
	return fmt.Sprintf("%d:%s%s:%d", len(a.Tenant), a.Tenant, a.ActorID, a.WindowStart.Unix())
}

// WindowExportsSQL reads the export actions alone (ExportOnly,
// ExportOnlyRecords) of windows of whole minutes from actor_minute_exports,
// next to WindowAggregatesSQL.
const WindowExportsSQL = `SELECT toDateTime(intDiv(toUInt32(minute), %d) * %d) AS window_start, tenant, actor_id,
sumMerge(events), sumMerge(records_sum)
FROM actor_minute_exports
WHERE minute >= ? AND minute < ?%s
GROUP BY window_start, tenant, actor_id`

// WindowAggregates returns every actor's activity per window of length
// window (a whole number of seconds dividing an hour; windows aligned to
// the Unix epoch) for [from, to), restricted to shard, ordered by window
// then actor. A window of whole minutes reads actor_minute only, never raw
// events; a shorter one (10s, 15s, 30s ...) reads the events of [from, to)
// (one day's partition per cycle).
func (s *Store) WindowAggregates(ctx context.Context, from, to time.Time, window time.Duration, shard Shard) ([]WindowActivity, error) {
	w := int64(window / time.Second)
	if w < 1 || window%time.Second != 0 {
		return nil, fmt.Errorf("reading window aggregates: window %s is not a whole number of seconds", window)
	}
	pred, pargs := shard.predicate()
	// w is an integer we formatted, not user text; the times and shard are bound.
	raw := w%60 != 0
	if raw {
		if err := s.rawEvents(fmt.Sprintf("reading window aggregates of %s windows", window)); err != nil {
			return nil, err
		}
	}
	q := fmt.Sprintf(WindowAggregatesSQL, w, w, pred)
	args := append([]any{from.UTC(), to.UTC()}, pargs...)
	rowsOnly := false
	switch {
	case raw:
		q = fmt.Sprintf(WindowAggregatesRawSQL, w, w, pred)
	case w == 60 && s.cfg.Cluster == "":
		// One server: on a cluster a shard's rows are read on one of its
		// replicas (detectRead), and mergeSplitKeys reads s.conn.
		q, rowsOnly = fmt.Sprintf(WindowAggregatesRowsSQL, pred), true
	}
	out := make([]WindowActivity, 0, min(s.windowRows.Load()*9/8, maxWindowRowsHint))
	err := s.detectRead(ctx, shard, q, args, func() { out = out[:0] }, scanWindowRows(&out, raw))
	if err == nil && rowsOnly {
		out, err = s.mergeSplitKeys(ctx, out, from, to)
	}
	if err == nil && !raw && len(out) > 0 {
		err = s.windowExports(ctx, out, fmt.Sprintf(WindowExportsSQL, w, w, pred), args, shard)
	}
	if err == nil {
		s.windowRows.Store(int64(len(out)))
	}
	if err != nil {
		return nil, fmt.Errorf("reading window aggregates %s..%s: %w", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), err)
	}
	return out, nil
}

// scanWindowRows scans the rows of a window aggregates query into *out.
// One row's destinations are scanned into again and again: the four sets
// arrive as strings (see decodeSet).
func scanWindowRows(out *[]WindowActivity, raw bool) func(driver.Rows) error {
	return func(rows driver.Rows) error {
		var a WindowActivity
		var sets [4]string
		dst := []any{&a.WindowStart, &a.Tenant, &a.ActorID, &a.ActorType, &a.ActorRole, &a.ActorVendor,
			&a.Events, &a.Records, &a.Bytes, &a.Exports, &a.ExportRecords, &a.Denied, &a.Subjects,
			&sets[0], &sets[1], &sets[2], &sets[3]}
		if raw {
			dst = append(dst, &a.ExportOnly, &a.ExportOnlyRecords)
		}
		for rows.Next() {
			if err := rows.Scan(dst...); err != nil {
				return fmt.Errorf("scanning window aggregates: %w", err)
			}
			a.WindowStart = a.WindowStart.UTC()
			var err error
			for i, set := range []*[]string{&a.Stores, &a.ResourceTypes, &a.Categories, &a.Countries} {
				if *set, err = decodeSet(sets[i]); err != nil {
					return fmt.Errorf("scanning window aggregates: column %d: %w", 14+i, err)
				}
			}
			*out = append(*out, a)
		}
		return nil
	}
}

// mergeSplitKeys replaces each run of rows of one key in out (ordered by
// key: the rows of WindowAggregatesRowsSQL) by the key's merged row from
// WindowAggregatesSQL restricted to the split keys (splitKeysPredicate).
// A run's key is read merged as it is now: rows stored since the first
// read count, as they would in a later cycle.
func (s *Store) mergeSplitKeys(ctx context.Context, out []WindowActivity, from, to time.Time) ([]WindowActivity, error) {
	same := func(a, b *WindowActivity) bool {
		return a.WindowStart.Equal(b.WindowStart) && a.Tenant == b.Tenant && a.ActorID == b.ActorID
	}
	var keys []string
	for i := 1; i < len(out); i++ {
		if same(&out[i-1], &out[i]) && (len(keys) == 0 || keys[len(keys)-1] != splitKey(&out[i])) {
			keys = append(keys, splitKey(&out[i]))
		}
	}
	if len(keys) == 0 {
		return out, nil
	}
	var merged []WindowActivity
	if err := queryRows(ctx, s.conn, fmt.Sprintf(WindowAggregatesSQL, 60, 60, splitKeysPredicate), []any{from.UTC(), to.UTC(), keys}, scanWindowRows(&merged, false)); err != nil {
		return nil, fmt.Errorf("merging %d windows in several rows: %w", len(keys), err)
	}
	byKey := make(map[string]*WindowActivity, len(merged))
	for i := range merged {
		byKey[splitKey(&merged[i])] = &merged[i]
	}
	kept := out[:0] // written no faster than read
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && same(&out[i], &out[j]) {
			j++
		}
		if j-i == 1 {
			kept = append(kept, out[i])
		} else if m, ok := byKey[splitKey(&out[i])]; ok {
			kept = append(kept, *m)
		} else {
			return nil, fmt.Errorf("merging window %s of %s: no merged row", out[i].WindowStart.Format(time.RFC3339), out[i].ActorID)
		}
		i = j
	}
	return kept, nil
}

// maxWindowRowsHint bounds the capacity WindowAggregates gives its result
// from the previous read's size.
const maxWindowRowsHint = 1 << 20

// decodeSet decodes one set of WindowAggregatesSQL: the array its
// aggregate returns, as the concatenation of its items, each preceded by
// its length in bytes (decimal) and a colon. It returns the items in the
// array's order as substrings of s, in a slice of their number (never nil:
// an empty set is an empty slice, as scanning the array gave). Scanning
// the arrays themselves cost clickhouse-go a reflected value per item.
func decodeSet(s string) ([]string, error) {
	n := 0
	for i := 0; i < len(s); n++ {
		l, j, err := setItemLen(s, i)
		if err != nil {
			return nil, err
		}
		i = j + l
	}
	out := make([]string, n)
	for k, i := 0, 0; k < n; k++ {
		l, j, _ := setItemLen(s, i)
		out[k] = s[j : j+l]
		i = j + l
	}
	return out, nil
}

// setItemLen reads the length prefix of the item of s starting at i: the
// item's length and where it starts.
func setItemLen(s string, i int) (l, start int, err error) {
	j := i
	for ; j < len(s) && s[j] >= '0' && s[j] <= '9'; j++ {
		if l > len(s) {
			return 0, 0, fmt.Errorf("set %q: item length at byte %d out of range", s, i)
		}
		l = l*10 + int(s[j]-'0')
	}
	if j == i || j >= len(s) || s[j] != ':' {
		return 0, 0, fmt.Errorf("set %q: no item length at byte %d", s, i)
	}
	if l > len(s)-j-1 {
		return 0, 0, fmt.Errorf("set %q: item at byte %d longer than the set", s, i)
	}
	return l, j + 1, nil
}

// windowExports fills ExportOnly and ExportOnlyRecords of rows (one
// WindowAggregates read, ordered by window then actor) from q, a
// WindowExportsSQL over the same minutes and shard.
func (s *Store) windowExports(ctx context.Context, rows []WindowActivity, q string, args []any, shard Shard) error {
	type key struct {
		w             int64
		tenant, actor string
	}
	at := make(map[key]int)
	for i := range rows {
		if rows[i].Exports > 0 { // an export is one of the window's exports and shares
			at[key{rows[i].WindowStart.Unix(), rows[i].Tenant, rows[i].ActorID}] = i
		}
	}
	if len(at) == 0 {
		return nil
	}
	return s.detectRead(ctx, shard, q, args, func() {
		for _, i := range at {
			rows[i].ExportOnly, rows[i].ExportOnlyRecords = 0, 0
		}
	}, func(r driver.Rows) error {
		for r.Next() {
			var k key
			var ws time.Time
			var n, rec uint64
			if err := r.Scan(&ws, &k.tenant, &k.actor, &n, &rec); err != nil {
				return fmt.Errorf("scanning window exports: %w", err)
			}
			k.w = ws.Unix()
			if i, ok := at[k]; ok {
				rows[i].ExportOnly, rows[i].ExportOnlyRecords = n, rec
			}
		}
		return nil
	})
}

// ActorCount is a count per actor.
type ActorCount struct {
	Tenant  string
	ActorID string
	Count   uint64
}

// SubjectCounts is the number of distinct customers an actor touched in
// the last hour and in the day so far.
type SubjectCounts struct {
	Tenant  string
	ActorID string
	Hour    uint64
	Day     uint64
}

// RecentSubjectsSQL is the query behind RecentSubjects.
const RecentSubjectsSQL = `SELECT tenant, actor_id,
uniqExactIfMergeIf(subjects, minute >= ?) AS hour_n, uniqExactIfMergeIf(subjects, minute >= ?) AS day_n
FROM actor_minute WHERE minute >= ? AND minute < ?%s
GROUP BY tenant, actor_id HAVING hour_n > 0 OR day_n > 0`

// RecentSubjects returns, per actor of shard, the distinct customers in the
// minutes [hourFrom, to) and [dayFrom, to), from actor_minute in one pass.
func (s *Store) RecentSubjects(ctx context.Context, hourFrom, dayFrom, to time.Time, shard Shard) ([]SubjectCounts, error) {
	pred, pargs := shard.predicate()
	from := hourFrom
	if dayFrom.Before(from) {
		from = dayFrom
	}
	args := append([]any{hourFrom.UTC(), dayFrom.UTC(), from.UTC(), to.UTC()}, pargs...)
	var out []SubjectCounts
	err := s.detectRead(ctx, shard, fmt.Sprintf(RecentSubjectsSQL, pred), args, func() { out = out[:0] }, func(rows driver.Rows) error {
		for rows.Next() {
			var c SubjectCounts
			if err := rows.Scan(&c.Tenant, &c.ActorID, &c.Hour, &c.Day); err != nil {
				return fmt.Errorf("scanning distinct customers: %w", err)
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading distinct customers per actor: %w", err)
	}
	return out, nil
}

// SubjectBuckets is one customer an actor touched, with the buckets (their
// start, Unix seconds) in which the actor touched it.
type SubjectBuckets struct {
	Tenant    string
	ActorID   string
	SubjectID string
	Buckets   []uint32
	// ReadBuckets are those of Buckets in which the actor read the
	// customer (an event whose result is not denied), as SubjectsRead
	// counts it; OutsideBuckets those of ReadBuckets in which such a read
	// was outside the customer's own conversation (conversation_subject_id
	// is another customer's or empty), as SubjectsOutsideConversation
	// counts it.
	ReadBuckets    []uint32
	OutsideBuckets []uint32
}

// SubjectBucketsSQL is the query behind SubjectBuckets (%[1]d the bucket
// in seconds, %[2]s the shard predicate). Its conditions are
// SubjectsReadSQL's and SubjectsOutsideConversationSQL's.
const SubjectBucketsSQL = `SELECT tenant, actor_id, subject_id, groupUniqArray(intDiv(toUInt32(ts), %[1]d) * %[1]d),
groupUniqArrayIf(intDiv(toUInt32(ts), %[1]d) * %[1]d, result != 'denied'),
groupUniqArrayIf(intDiv(toUInt32(ts), %[1]d) * %[1]d, subject_id != conversation_subject_id AND result != 'denied')
FROM events WHERE ts >= ? AND ts < ? AND subject_id != ''%[2]s
GROUP BY tenant, actor_id, subject_id`

// SubjectBuckets returns, for every (actor, customer) of shard in [from,
// to), the buckets of length bucket (a whole number of seconds; aligned to
// the Unix epoch) in which the actor touched the customer. From these the
// distinct customers of any range of whole buckets follow exactly, as
// RecentSubjects counts them (the same rows: events that name a customer),
// so a caller that needs those counts for many consecutive times (a replay
// evaluating days of windows) reads each event once instead of once per
// time; so do SubjectsRead's and SubjectsOutsideConversation's counts, from
// ReadBuckets and OutsideBuckets. The buckets of a row are in no particular
// order.
func (s *Store) SubjectBuckets(ctx context.Context, from, to time.Time, bucket time.Duration, shard Shard) ([]SubjectBuckets, error) {
	b := int64(bucket / time.Second)
	if b < 1 || bucket%time.Second != 0 {
		return nil, fmt.Errorf("reading subject buckets: bucket %s is not a whole number of seconds", bucket)
	}
	if err := s.rawEvents("reading subject buckets"); err != nil {
		return nil, err
	}
	pred, pargs := shard.predicate()
	// b is an integer we formatted, not user text; the times and shard are bound.
	args := append([]any{from.UTC(), to.UTC()}, pargs...)
	var out []SubjectBuckets
	err := s.detectRead(ctx, shard, fmt.Sprintf(SubjectBucketsSQL, b, pred), args, func() { out = out[:0] }, func(rows driver.Rows) error {
		for rows.Next() {
			var r SubjectBuckets
			if err := rows.Scan(&r.Tenant, &r.ActorID, &r.SubjectID, &r.Buckets, &r.ReadBuckets, &r.OutsideBuckets); err != nil {
				return fmt.Errorf("scanning subject buckets: %w", err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading subject buckets %s..%s: %w", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), err)
	}
	return out, nil
}

// TopSubjectsSQL is the query behind TopSubjects.
const TopSubjectsSQL = `SELECT subject_id, count() AS n FROM events
WHERE tenant = ? AND actor_id = ? AND ts >= ? AND ts < ? AND subject_id != ''
GROUP BY subject_id ORDER BY n DESC, subject_id LIMIT ?`

// TopSubjects returns the pseudonymized customers an actor touched most in
// [from, to). It reads raw events by their primary key (tenant, actor_id, ts)
// and is meant for the evidence of a finding, not for every cycle. On a
// cluster it reads the local events of the storage shard that holds the
// actor, on a replica that answers (shardlocal.go).
func (s *Store) TopSubjects(ctx context.Context, tenant, actor string, from, to time.Time, n int) ([]string, error) {
	if err := s.rawEvents("reading top subjects"); err != nil {
		return nil, err
	}
	args := []any{tenant, actor, from.UTC(), to.UTC(), uint64(n)}
	var out []string
	reset := func() { out = out[:0] }
	scan := func(rows driver.Rows) error {
		for rows.Next() {
			var id string
			var c uint64
			if err := rows.Scan(&id, &c); err != nil {
				return err
			}
			out = append(out, id)
		}
		return nil
	}
	var err error
	if s.cfg.Cluster == "" {
		err = queryRows(ctx, s.conn, TopSubjectsSQL, args, scan)
	} else {
		var l *clusterLayout
		if l, err = s.clusterLayout(ctx); err == nil {
			err = s.readLocal(ctx, l, l.shardOfSlot(shardingHash(tenant, actor)%l.total), TopSubjectsSQL, args, reset, scan)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading top subjects: %w", err)
	}
	return out, nil
}

// SubjectsOutsideConversationSQL is the query behind
// SubjectsOutsideConversation.
const SubjectsOutsideConversationSQL = `SELECT uniqExactIf(subject_id, subject_id != '' AND subject_id != conversation_subject_id AND result != 'denied')
FROM events WHERE tenant = ? AND actor_id = ? AND ts >= ? AND ts < ?`

// SubjectsReadSQL is the query behind SubjectsRead.
const SubjectsReadSQL = `SELECT uniqExactIf(subject_id, subject_id != '' AND result != 'denied')
FROM events WHERE tenant = ? AND actor_id = ? AND ts >= ? AND ts < ?`

// SubjectsOutsideConversation returns the distinct customers an actor read
// in [from, to) other than the customer of the conversation the read
// belonged to; reads outside any conversation count, refused (denied)
// reads do not: no data of the customer was read. Both ids are the same
// keyed pseudonym, so they compare as the raw ids would. It reads raw
// events by their primary key (tenant, actor_id, ts): it is meant for one
// actor at a time, when its count of all customers is already unusual. On
// a cluster it reads, as TopSubjects, the local events of the storage
// shard that holds the actor.
func (s *Store) SubjectsOutsideConversation(ctx context.Context, tenant, actor string, from, to time.Time) (uint64, error) {
	n, err := s.subjectCount(ctx, SubjectsOutsideConversationSQL, tenant, actor, from, to)
	if err != nil {
		return 0, fmt.Errorf("reading customers outside their conversations of %s: %w", actor, err)
	}
	return n, nil
}

// SubjectsRead returns the distinct customers whose data an actor read in
// [from, to): a customer whose every access was refused (result denied)
// does not count. actor_minute's subjects count every customer touched,
// refused or not (a denied burst's evidence); this reads raw events by
// their primary key, for one actor at a time, when its count of all
// customers is already unusual. On a cluster it reads, as TopSubjects,
// the local events of the storage shard that holds the actor.
func (s *Store) SubjectsRead(ctx context.Context, tenant, actor string, from, to time.Time) (uint64, error) {
	n, err := s.subjectCount(ctx, SubjectsReadSQL, tenant, actor, from, to)
	if err != nil {
		return 0, fmt.Errorf("reading the customers %s read: %w", actor, err)
	}
	return n, nil
}

// subjectCount runs q, a count over one actor's raw events in [from, to)
// (placeholders tenant, actor, from, to), on the server or, on a cluster,
// on the storage shard that holds the actor.
func (s *Store) subjectCount(ctx context.Context, q, tenant, actor string, from, to time.Time) (uint64, error) {
	if err := s.rawEvents("counting customers"); err != nil {
		return 0, err
	}
	args := []any{tenant, actor, from.UTC(), to.UTC()}
	var n uint64
	reset := func() { n = 0 }
	scan := func(rows driver.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&n); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if s.cfg.Cluster == "" {
		err = queryRows(ctx, s.conn, q, args, scan)
	} else {
		var l *clusterLayout
		if l, err = s.clusterLayout(ctx); err == nil {
			err = s.readLocal(ctx, l, l.shardOfSlot(shardingHash(tenant, actor)%l.total), q, args, reset, scan)
		}
	}
	return n, err
}

// StoredFinding is a finding as kept in the findings table.
type StoredFinding struct {
	models.Finding
	// SuppressedBy is the id of the suppression that muted the finding, or
	// "" when it was sent on to alerting.
	SuppressedBy string
}

const insertFindings = `INSERT INTO findings (detected_at, window_start, window_end, tenant, actor_id,
actor_type, actor_role, actor_vendor, detector, fingerprint, severity, severity_level, score,
probability, summary, evidence, suppressed, suppression_id)`

// InsertFindings appends findings to the findings table.
func (s *Store) InsertFindings(ctx context.Context, fs []StoredFinding) error {
	if len(fs) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, insertFindings)
	if err != nil {
		return fmt.Errorf("preparing insert of %d findings: %w", len(fs), err)
	}
	for i := range fs {
		f := &fs[i]
		ev, err := json.Marshal(f.Evidence)
		if err != nil {
			_ = batch.Abort()
			return fmt.Errorf("encoding evidence of finding %s: %w", f.Detector, err)
		}
		var sup uint8
		if f.SuppressedBy != "" {
			sup = 1
		}
		if err := batch.Append(f.DetectedAt.UTC(), f.WindowStart.UTC(), f.WindowEnd.UTC(), f.Tenant, f.ActorID,
			string(f.ActorType), f.ActorRole, f.ActorVendor, f.Detector, f.Fingerprint(), f.Severity.String(),
			uint8(f.Severity), f.Score, f.Probability, f.Summary, string(ev), sup, f.SuppressedBy); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("appending finding: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d findings: %w", len(fs), err)
	}
	return nil
}

// FindingFilter selects findings. Zero fields match anything; From/To bound
// detected_at ([From, To)); Limit 0 means 1000.
type FindingFilter struct {
	From, To          time.Time
	Tenant, ActorID   string
	Detector          string
	IncludeSuppressed bool
	Limit             int
}

// FindingKey names a window finding within its window: what detection
// raises at most once per window.
type FindingKey struct {
	Detector, Tenant, ActorID string
}

// WindowFindings returns the keys of the findings stored (suppressed or
// not) for the windows ending at end, which detection stores with
// detected_at = end: what a restarted engine asks before it raises findings
// for a window that late events re-open.
func (s *Store) WindowFindings(ctx context.Context, end time.Time) ([]FindingKey, error) {
	end = end.UTC()
	rows, err := s.conn.Query(ctx, `SELECT DISTINCT detector, tenant, actor_id FROM findings
WHERE detected_at = ? AND window_end = ?`, end, end)
	if err != nil {
		return nil, fmt.Errorf("reading the findings of the window ending at %s: %w", end.Format(time.RFC3339), err)
	}
	defer rows.Close()
	var out []FindingKey
	for rows.Next() {
		var k FindingKey
		if err := rows.Scan(&k.Detector, &k.Tenant, &k.ActorID); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// Findings returns findings matching f, newest first.
func (s *Store) Findings(ctx context.Context, f FindingFilter) ([]StoredFinding, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	if f.To.IsZero() {
		f.To = time.Unix(1<<32-1, 0)
	}
	q := `SELECT detected_at, window_start, window_end, tenant, actor_id, actor_type, actor_role,
actor_vendor, detector, severity, score, probability, summary, evidence, suppression_id
FROM findings WHERE detected_at >= ? AND detected_at < ?
AND (? = '' OR tenant = ?) AND (? = '' OR actor_id = ?) AND (? = '' OR detector = ?) AND (? = 1 OR suppressed = 0)
ORDER BY detected_at DESC LIMIT ?`
	var inc uint8
	if f.IncludeSuppressed {
		inc = 1
	}
	rows, err := s.conn.Query(ctx, q, f.From.UTC(), f.To.UTC(), f.Tenant, f.Tenant, f.ActorID, f.ActorID,
		f.Detector, f.Detector, inc, uint64(f.Limit))
	if err != nil {
		return nil, fmt.Errorf("reading findings: %w", err)
	}
	defer rows.Close()
	var out []StoredFinding
	for rows.Next() {
		var sf StoredFinding
		var atype, sev, ev string
		if err := rows.Scan(&sf.DetectedAt, &sf.WindowStart, &sf.WindowEnd, &sf.Tenant, &sf.ActorID, &atype,
			&sf.ActorRole, &sf.ActorVendor, &sf.Detector, &sev, &sf.Score, &sf.Probability, &sf.Summary, &ev,
			&sf.SuppressedBy); err != nil {
			return nil, fmt.Errorf("scanning finding: %w", err)
		}
		sf.ActorType = models.ActorType(atype)
		if v, err := models.ParseSeverity(sev); err == nil {
			sf.Severity = v
		}
		if err := json.Unmarshal([]byte(ev), &sf.Evidence); err != nil {
			return nil, fmt.Errorf("decoding evidence of finding %s: %w", sf.Detector, err)
		}
		out = append(out, sf)
	}
	return out, rows.Err()
}

// ActorRisk is an actor's risk score at a time.
type ActorRisk struct {
	TS          time.Time
	Tenant      string
	ActorID     string
	ActorType   string
	ActorRole   string
	Score       float64
	Findings    uint32
	TopDetector string
	MaxSeverity models.Severity
}

// InsertActorRisk appends risk scores.
func (s *Store) InsertActorRisk(ctx context.Context, rs []ActorRisk) error {
	if len(rs) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO actor_risk (ts, tenant, actor_id, actor_type,
actor_role, score, findings, top_detector, max_severity)`)
	if err != nil {
		return fmt.Errorf("preparing insert of %d risk scores: %w", len(rs), err)
	}
	for _, r := range rs {
		if err := batch.Append(r.TS.UTC(), r.Tenant, r.ActorID, r.ActorType, r.ActorRole, r.Score,
			r.Findings, r.TopDetector, r.MaxSeverity.String()); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("appending risk score: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d risk scores: %w", len(rs), err)
	}
	return nil
}

// TopRiskyActors returns the n actors with the highest risk score recorded
// in [from, to), each with its highest score in the range and the detector
// and severity recorded with it, highest first; tenants, when not empty,
// keeps only actors of those tenants.
func (s *Store) TopRiskyActors(ctx context.Context, tenants []string, from, to time.Time, n int) ([]ActorRisk, error) {
	cond, targs := tenantIn("tenant", tenants)
	args := append(append([]any{from.UTC(), to.UTC()}, targs...), uint64(n))
	rows, err := s.conn.Query(ctx, `SELECT tenant, actor_id, max(score) AS top, argMax(ts, score),
argMax(actor_type, score), argMax(actor_role, score), argMax(findings, score),
argMax(top_detector, score), argMax(max_severity, score)
FROM actor_risk WHERE ts >= ? AND ts < ?`+cond+`
GROUP BY tenant, actor_id ORDER BY top DESC, tenant, actor_id LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading top risky actors: %w", err)
	}
	defer rows.Close()
	var out []ActorRisk
	for rows.Next() {
		var r ActorRisk
		var sev string
		if err := rows.Scan(&r.Tenant, &r.ActorID, &r.Score, &r.TS, &r.ActorType, &r.ActorRole, &r.Findings,
			&r.TopDetector, &sev); err != nil {
			return nil, fmt.Errorf("scanning risk score: %w", err)
		}
		r.MaxSeverity, _ = models.ParseSeverity(sev)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Checkpoint is a saved copy of one shard's detector baselines.
type Checkpoint struct {
	Shard     Shard
	AsOf      time.Time
	CreatedAt time.Time
	Format    uint16
	Actors    uint32
	State     []byte
}

// PutCheckpoint stores a checkpoint.
func (s *Store) PutCheckpoint(ctx context.Context, c Checkpoint) error {
	err := s.insertRow(ctx, `INSERT INTO detect_checkpoints (shards, shard, as_of, created_at, format, actors, state)`,
		uint16(c.Shard.Count), uint16(c.Shard.Index), c.AsOf.UTC(), c.CreatedAt.UTC(), c.Format, c.Actors, string(c.State))
	if err != nil {
		return fmt.Errorf("writing detection checkpoint: %w", err)
	}
	return nil
}

// LatestCheckpoint returns the newest checkpoint of shard; ok is false when
// there is none.
func (s *Store) LatestCheckpoint(ctx context.Context, shard Shard) (c Checkpoint, ok bool, err error) {
	rows, err := s.conn.Query(ctx, `SELECT as_of, created_at, format, actors, state FROM detect_checkpoints
WHERE shards = ? AND shard = ? ORDER BY as_of DESC, created_at DESC LIMIT 1`, uint16(shard.Count), uint16(shard.Index))
	if err != nil {
		return c, false, fmt.Errorf("reading detection checkpoint: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return c, false, rows.Err()
	}
	var st string
	if err := rows.Scan(&c.AsOf, &c.CreatedAt, &c.Format, &c.Actors, &st); err != nil {
		return c, false, fmt.Errorf("scanning detection checkpoint: %w", err)
	}
	c.Shard, c.State = shard, []byte(st)
	return c, true, nil
}

// InsertDetectAudit records a tuning change: kind ("config", "suppression"),
// who made it, what it concerns and the details.
func (s *Store) InsertDetectAudit(ctx context.Context, ts time.Time, kind, author, subject, detail string) error {
	if err := s.insertRow(ctx, `INSERT INTO detect_audit (ts, kind, author, subject, detail)`,
		ts.UTC(), kind, author, subject, detail); err != nil {
		return fmt.Errorf("writing detection audit row: %w", err)
	}
	return nil
}

// LatestDetectAudit returns the detail of the newest audit row of kind and
// subject ("" when there is none).
func (s *Store) LatestDetectAudit(ctx context.Context, kind, subject string) (string, error) {
	rows, err := s.conn.Query(ctx, `SELECT detail FROM detect_audit WHERE kind = ? AND subject = ?
ORDER BY ts DESC LIMIT 1`, kind, subject)
	if err != nil {
		return "", fmt.Errorf("reading detection audit: %w", err)
	}
	defer rows.Close()
	var d string
	if rows.Next() {
		if err := rows.Scan(&d); err != nil {
			return "", err
		}
	}
	return d, rows.Err()
}
