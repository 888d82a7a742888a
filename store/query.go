package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/chatwarden/chatwarden/models"
)

// tenantIn returns " AND <column> IN ?" and its argument for a tenant
// scope, or nothing for every tenant (tenants empty). column is a constant
// of the caller's, never user text.
func tenantIn(column string, tenants []string) (string, []any) {
	if len(tenants) == 0 {
		return "", nil
	}
	return " AND " + column + " IN ?", []any{InList(tenants)}
}

// HistoryFilter selects access events for an investigation. Empty fields
// match anything. SubjectIDs are pseudonyms (every key version of one
// customer); when set, the query reads events_by_subject, which is ordered by
// customer. From and To bound ts (To exclusive); both are required.
type HistoryFilter struct {
	Tenant string
	// Tenants, when not empty, is the set of tenants the asker may see:
	// rows of any other tenant never match (dashboards.User.Tenants).
	Tenants        []string
	ActorID        string
	SubjectIDs     []string
	Store          string
	Action         string
	ConversationID string
	Purpose        string
	From, To       time.Time
	// Limit bounds the rows returned (default 1000, at most 100000).
	Limit int
}

// Default and largest history page.
const (
	DefaultHistoryLimit = 1000
	MaxHistoryLimit     = 100000
)

func (f HistoryFilter) limit() int {
	switch {
	case f.Limit <= 0:
		return DefaultHistoryLimit
	case f.Limit > MaxHistoryLimit:
		return MaxHistoryLimit
	}
	return f.Limit
}

// BySubject reports whether the filter looks a customer up (and so reads
// events_by_subject).
func (f HistoryFilter) BySubject() bool { return len(f.SubjectIDs) > 0 }

// Validate reports a filter that cannot run.
func (f HistoryFilter) Validate() error {
	if f.From.IsZero() || f.To.IsZero() || !f.From.Before(f.To) {
		return fmt.Errorf("history filter: need from < to (got %s .. %s)", f.From.Format(time.RFC3339), f.To.Format(time.RFC3339))
	}
	return nil
}

// where returns the WHERE clause and its arguments. The clause is assembled
// from constant fragments only; every value is bound with "?".
func (f HistoryFilter) where() (string, []any) {
	conds := []string{"ts >= ?", "ts < ?"}
	args := []any{f.From.UTC(), ceilSecond(f.To)}
	add := func(cond string, v any) {
		conds = append(conds, cond)
		args = append(args, v)
	}
	if f.Tenant != "" {
		add("tenant = ?", f.Tenant)
	}
	if len(f.Tenants) > 0 {
		add("tenant IN ?", InList(f.Tenants))
	}
	if f.ActorID != "" {
		add("actor_id = ?", f.ActorID)
	}
	if len(f.SubjectIDs) > 0 {
		add("subject_id IN ?", InList(f.SubjectIDs))
	}
	if f.Store != "" {
		add("store = ?", f.Store)
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if f.ConversationID != "" {
		add("conversation_id = ?", f.ConversationID)
	}
	if f.Purpose != "" {
		add("purpose = ?", f.Purpose)
	}
	return strings.Join(conds, " AND "), args
}

func (f HistoryFilter) table() string {
	if f.BySubject() {
		return "events_by_subject"
	}
	return "events"
}

// History returns the events matching f, newest first, and whether more
// matched than the limit. Events read by customer lack the columns that
// events_by_subject does not keep (resource id, bytes, client ip and agent,
// destination: SharesOf has a customer's shares).
func (s *Store) History(ctx context.Context, f HistoryFilter) ([]models.Event, bool, error) {
	if err := f.Validate(); err != nil {
		return nil, false, err
	}
	where, args := f.where()
	cols := "event_id, ts, tenant, actor_id, actor_type, actor_role, actor_vendor, action, store, resource_type, resource_id, subject_id, records, bytes, fields, purpose, conversation_id, conversation_subject_id, tool, result, client_ip, client_country, client_user_agent, destination"
	if f.BySubject() {
		cols = "event_id, ts, tenant, actor_id, actor_type, actor_role, actor_vendor, action, store, resource_type, '', subject_id, records, toUInt64(0), fields, purpose, conversation_id, conversation_subject_id, tool, result, '', client_country, '', ''"
	}
	lim := f.limit()
	q := "SELECT " + cols + " FROM " + f.table() + " WHERE " + where + " ORDER BY ts DESC, event_id LIMIT ?"
	rows, err := s.conn.Query(ctx, q, append(args, uint64(lim+1))...)
	if err != nil {
		return nil, false, fmt.Errorf("querying history: %w", err)
	}
	defer rows.Close()
	var out []models.Event
	for rows.Next() {
		var e models.Event
		var atype, action, result string
		if err := rows.Scan(&e.EventID, &e.TS, &e.Tenant, &e.Actor.ID, &atype, &e.Actor.Role, &e.Actor.Vendor,
			&action, &e.Store, &e.Resource.Type, &e.Resource.ID, &e.SubjectID, &e.Records, &e.Bytes, &e.Fields,
			&e.Purpose, &e.Conversation.ID, &e.Conversation.SubjectID, &e.Tool, &result, &e.Client.IP,
			&e.Client.Country, &e.Client.UserAgent, &e.Destination); err != nil {
			return nil, false, fmt.Errorf("reading history row: %w", err)
		}
		e.Actor.Type, e.Action, e.Result = models.ActorType(atype), models.Action(action), models.Result(result)
		e.TS = e.TS.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("reading history: %w", err)
	}
	more := len(out) > lim
	if more {
		out = out[:lim]
	}
	return out, more, nil
}

// Count is a named number.
type Count struct {
	Name  string `json:"name"`
	Count uint64 `json:"count"`
}

// Exposure is the blast radius of a set of accesses: how many customers,
// records, data categories and stores they touched.
type Exposure struct {
	Events   uint64    `json:"events"`
	Subjects uint64    `json:"subjects"`
	Records  uint64    `json:"records"`
	Actors   uint64    `json:"actors"`
	Exports  uint64    `json:"exports"`
	Denied   uint64    `json:"denied"`
	First    time.Time `json:"first,omitempty"`
	Last     time.Time `json:"last,omitempty"`
	// Categories counts the distinct customers per data category, most first.
	Categories []Count `json:"categories"`
	// Stores counts the events per store, most first.
	Stores []Count `json:"stores"`
	// Countries counts the events per client country, most first.
	Countries []Count `json:"countries,omitempty"`
}

// SensitiveSubjects returns the largest distinct-customer count over the
// sensitive categories: a lower bound of the customers whose sensitive data
// was exposed.
func (x Exposure) SensitiveSubjects() uint64 {
	var n uint64
	for _, c := range x.Categories {
		if models.SensitiveCategories[c.Name] && c.Count > n {
			n = c.Count
		}
	}
	return n
}

// Exposure computes the blast radius of the events matching f (f.Limit is
// ignored).
func (s *Store) Exposure(ctx context.Context, f HistoryFilter) (Exposure, error) {
	if err := f.Validate(); err != nil {
		return Exposure{}, err
	}
	where, args := f.where()
	return s.exposure(ctx, f.table(), where, args)
}

// exposureSQL computes a blast radius in one pass over the matching rows
// (the filter, a per-row set lookup for alert windows, is the expensive
// part, so it runs once). The innermost query filters; the middle one
// groups the matching events by store, country and list of data
// categories (a few hundred groups), with the exact states of their
// distinct customers and actors; the outer one fans those groups out to
// the rows the caller reads, one per kind and name: the total, each store,
// each country and each category of the group's list, and merges the
// states where the caller reads them (customers for the total and the
// categories, actors for the total). So each event is hashed into one
// customer set, and only the groups, not the events, are fanned out (an
// earlier version fanned each event out to one row per category before
// grouping: at 780k matching events, 640 ms of CPU where this takes 345,
// the same figures). The customer sets hold cityHash64 of the pseudonyms,
// as vendor_actor_hour's do (migration 0017): a set of UInt64 where a set
// of strings holds 128-bit hashes of them, at 100M events about 15% less
// CPU for the weekly report's flagged exposure (docs/scaling.md, "The
// weekly report at 100M"); two customers of one exposure count once when
// their pseudonyms share a 64-bit hash, about n^2 / 2^65 for n customers.
// %s is the table and %s the WHERE clause (constant fragments; values are
// bound).
const exposureSQL = `SELECT k.1 AS kind, k.2 AS name, sum(n), sum(rec), sum(exps), sum(den),
uniqExactIfMergeIf(subj, kind IN ('total', 'category')), uniqExactMergeIf(act, kind = 'total'), min(first_ts), max(last_ts)
FROM (
    SELECT store, client_country, fields, count() AS n, sum(records) AS rec,
    countIf(action IN ('export', 'share')) AS exps, countIf(result = 'denied') AS den,
    uniqExactIfState(cityHash64(subject_id), subject_id != '') AS subj, uniqExactState(actor_id) AS act,
    min(ts) AS first_ts, max(ts) AS last_ts
    FROM (SELECT store, client_country, fields, records, action, result, subject_id, actor_id, ts FROM %s WHERE %s)
    GROUP BY store, client_country, fields
)
ARRAY JOIN arrayConcat([('total', ''), ('store', store), ('country', client_country)], arrayMap(f -> ('category', f), fields)) AS k
GROUP BY kind, name`

func (s *Store) exposure(ctx context.Context, table, where string, args []any) (Exposure, error) {
	rows, err := s.conn.Query(ctx, fmt.Sprintf(exposureSQL, table, where), args...)
	if err != nil {
		return Exposure{}, fmt.Errorf("computing exposure: %w", err)
	}
	defer rows.Close()
	var x Exposure
	stores, countries := map[string]uint64{}, map[string]uint64{}
	x.Categories = []Count{}
	for rows.Next() {
		var kind, name string
		var n, rec, exps, den, subj, act uint64
		var first, last time.Time
		if err := rows.Scan(&kind, &name, &n, &rec, &exps, &den, &subj, &act, &first, &last); err != nil {
			return Exposure{}, fmt.Errorf("reading exposure: %w", err)
		}
		switch kind {
		case "total":
			x.Events, x.Records, x.Exports, x.Denied, x.Subjects, x.Actors = n, rec, exps, den, subj, act
			x.First, x.Last = first.UTC(), last.UTC()
		case "store":
			stores[name] += n
		case "country":
			countries[name] += n
		case "category":
			x.Categories = append(x.Categories, Count{Name: name, Count: subj})
		}
	}
	if err := rows.Err(); err != nil {
		return Exposure{}, fmt.Errorf("reading exposure: %w", err)
	}
	if x.Events == 0 {
		return Exposure{Categories: []Count{}, Stores: []Count{}}, nil
	}
	sort.Slice(x.Categories, func(i, j int) bool {
		a, b := x.Categories[i], x.Categories[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Name < b.Name
	})
	x.Stores, x.Countries = sortedCounts(stores, 0), sortedCounts(countries, 20)
	return x, nil
}

// sortedCounts turns a map into counts sorted by count (then name),
// without the empty name; limit > 0 keeps the first limit.
func sortedCounts(m map[string]uint64, limit int) []Count {
	out := []Count{}
	for n, c := range m {
		if n != "" {
			out = append(out, Count{Name: n, Count: c})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Name < out[j].Name
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

func (s *Store) counts(ctx context.Context, q string, args []any) ([]Count, error) {
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Count{}
	for rows.Next() {
		var c Count
		if err := rows.Scan(&c.Name, &c.Count); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ActorWindow is one actor's time window, e.g. the span of an alert.
type ActorWindow struct {
	Tenant   string
	ActorID  string
	From, To time.Time
}

// MaxExposureWindows bounds how many windows one ExposureOfWindows call
// reads; callers pass the most severe first.
const MaxExposureWindows = 300

// ExposureOfWindows computes the blast radius of the union of several actors'
// windows (the accesses that alerts flagged). Only the first
// MaxExposureWindows windows are read.
func (s *Store) ExposureOfWindows(ctx context.Context, ws []ActorWindow) (Exposure, error) {
	if len(ws) == 0 {
		return Exposure{Categories: []Count{}, Stores: []Count{}}, nil
	}
	if len(ws) > MaxExposureWindows {
		ws = ws[:MaxExposureWindows]
	}
	if !s.noRollups {
		if where, args, ok := hourWindowsWhere(ws); ok {
			hd, err := s.hourDays(ctx)
			if err != nil {
				return Exposure{}, fmt.Errorf("computing exposure: %w", err)
			}
			if hd {
				return s.exposure(ctx, "events_by_hour", where, args)
			}
		}
	}
	where, args := windowsWhere(ws)
	return s.exposure(ctx, "events", where, args)
}

// hourWindowsWhere renders, when windowsWhere widens the windows ws to
// whole hours (too many minutes, few enough hours), the same filter over
// events_by_hour: its primary key (hour, tenant, actor_id) selects the
// granules of the flagged hours of each actor. The hours are UTC hours,
// which are the server's when its days start on whole UTC hours
// (hourDays); the caller checks that.
func hourWindowsWhere(ws []ActorWindow) (string, []any, bool) {
	if _, ok := exposureSlots(ws, time.Minute); ok {
		return "", nil, false
	}
	slots, ok := exposureSlots(ws, time.Hour)
	if !ok {
		return "", nil, false
	}
	lo, hi := ws[0].From, ws[0].To
	for _, w := range ws {
		lo, hi = minTime(lo, w.From), maxTime(hi, w.To)
	}
	keys := make([]any, len(slots))
	for i, sl := range slots {
		v := sl.(clickhouse.GroupSet).Value // tenant, actor, hour (Unix seconds)
		keys[i] = clickhouse.GroupSet{Value: []any{time.Unix(int64(v[2].(uint32)), 0).UTC(), v[0], v[1]}}
	}
	return `hour >= ? AND hour < ? AND (hour, tenant, actor_id) IN ?`,
		[]any{lo.Truncate(time.Hour).UTC(), hi.Truncate(time.Hour).Add(time.Hour).UTC(), clickhouse.GroupSet{Value: keys}}, true
}

// windowsWhere renders the filter of the events in the windows ws
// (non-empty): a prefilter on the actors and the overall span uses the
// primary key; then each event's (tenant, actor, minute) is looked up in the
// set of flagged minutes, a hash lookup per row. Windows are widened to whole
// minutes, or to whole hours or days when the minutes would be more than
// maxExposureSlots; beyond that too, only the prefilter stays (an upper
// bound of the exposure).
// (One OR term per window, or a lambda over the windows, makes 18.16
// evaluate hundreds of conditions per row; one UNION ALL branch per window
// still reads a granule per window and part.)
func windowsWhere(ws []ActorWindow) (string, []any) {
	seenT, seenA := map[string]bool{}, map[string]bool{}
	var tenants, actors []string
	lo, hi := ws[0].From, ws[0].To
	for _, w := range ws {
		if !seenT[w.Tenant] {
			seenT[w.Tenant] = true
			tenants = append(tenants, w.Tenant)
		}
		if !seenA[w.ActorID] {
			seenA[w.ActorID] = true
			actors = append(actors, w.ActorID)
		}
		lo, hi = minTime(lo, w.From), maxTime(hi, w.To)
	}
	for _, g := range []struct {
		step time.Duration
		slot string // the slot of an event: a constant fragment
	}{{time.Minute, "toUInt32(toStartOfMinute(ts))"}, {time.Hour, "toUInt32(toStartOfHour(ts))"},
		{24 * time.Hour, "toUInt32(intDiv(toUInt32(ts), 86400) * 86400)"}} { // the UTC day, whatever the server's time zone
		slots, ok := exposureSlots(ws, g.step)
		if !ok {
			continue
		}
		slo, shi := lo.Truncate(g.step), hi.Truncate(g.step).Add(g.step)
		where := `tenant IN ? AND actor_id IN ? AND ts >= ? AND ts < ?
AND (tenant, actor_id, ` + g.slot + `) IN ?`
		return where, []any{InList(tenants), InList(actors), slo.UTC(), shi.UTC(), clickhouse.GroupSet{Value: slots}}
	}
	lo, hi = lo.Truncate(24*time.Hour), hi.Truncate(24*time.Hour).Add(24*time.Hour)
	return `tenant IN ? AND actor_id IN ? AND ts >= ? AND ts < ?`, []any{InList(tenants), InList(actors), lo.UTC(), hi.UTC()}
}

// exposureSlots returns the distinct (tenant, actor, start of step) of the
// windows ws, or false when they are more than maxExposureSlots.
func exposureSlots(ws []ActorWindow, step time.Duration) ([]any, bool) {
	type slot struct {
		tenant, actor string
		t             int64
	}
	seen := map[slot]bool{}
	var slots []any
	for _, w := range ws {
		for t := w.From.UTC().Truncate(step); t.Before(w.To); t = t.Add(step) {
			k := slot{w.Tenant, w.ActorID, t.Unix()}
			if seen[k] {
				continue
			}
			if len(slots) == maxExposureSlots {
				return nil, false
			}
			seen[k] = true
			slots = append(slots, clickhouse.GroupSet{Value: []any{w.Tenant, w.ActorID, uint32(t.Unix())}})
		}
	}
	return slots, true
}

// maxExposureSlots bounds the slots of ExposureOfWindows. They are
// literals in the query: ClickHouse refuses a query of more than
// max_ast_elements (50,000) nodes or max_query_size (256 KiB) bytes, about
// 5 nodes and 40 bytes a slot, and its query log keeps the first 100,000
// characters, which the SQL conformance check replays. A weekly report
// with 300 one-hour alert windows had 18,000 minute slots: "AST is too big.
// Maximum: 50000".
const maxExposureSlots = 2000

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Point is one bucket of an actor's activity series.
type Point struct {
	T        time.Time `json:"t"`
	Events   uint64    `json:"events"`
	Records  uint64    `json:"records"`
	Subjects uint64    `json:"subjects"`
	Exports  uint64    `json:"exports"`
	Denied   uint64    `json:"denied"`
}

// ActorSeries returns an actor's activity per bucket (time.Minute or
// time.Hour; anything longer is per day) in [from, to) from actor_minute.
// Buckets without activity are absent. An empty tenant matches any.
func (s *Store) ActorSeries(ctx context.Context, tenant, actor string, from, to time.Time, bucket time.Duration) ([]Point, error) {
	trunc := "minute"
	switch {
	case bucket >= 24*time.Hour:
		trunc = "toStartOfDay(minute)"
	case bucket >= time.Hour:
		trunc = "toStartOfHour(minute)"
	}
	q := `SELECT ` + trunc + ` AS b, sumMerge(events), sumMerge(records_sum), uniqExactIfMerge(subjects),
sumMerge(exports), sumMerge(denied)
FROM actor_minute WHERE minute >= ? AND minute < ? AND actor_id = ?`
	args := []any{from.UTC(), to.UTC(), actor}
	if tenant != "" {
		q += " AND tenant = ?"
		args = append(args, tenant)
	}
	q += " GROUP BY b ORDER BY b"
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("querying series of actor: %w", err)
	}
	defer rows.Close()
	var out []Point
	for rows.Next() {
		var p Point
		if err := rows.Scan(&p.T, &p.Events, &p.Records, &p.Subjects, &p.Exports, &p.Denied); err != nil {
			return nil, fmt.Errorf("reading actor series: %w", err)
		}
		p.T = p.T.UTC()
		out = append(out, p)
	}
	return out, rows.Err()
}

// SubjectAccess is one line of a data-subject access report: who accessed a
// customer's data, under which purpose and conversation, how often and when.
type SubjectAccess struct {
	Tenant         string   `json:"tenant"`
	ActorID        string   `json:"actor_id"`
	ActorType      string   `json:"actor_type"`
	ActorRole      string   `json:"actor_role,omitempty"`
	ActorVendor    string   `json:"actor_vendor,omitempty"`
	Purpose        string   `json:"purpose"`
	ConversationID string   `json:"conversation_id,omitempty"`
	Stores         []string `json:"stores"`
	Actions        []string `json:"actions"`
	Categories     []string `json:"categories"`
	Events         uint64   `json:"events"`
	Records        uint64   `json:"records"`
	Denied         uint64   `json:"denied"`
	// Outbound counts the shares and exports that were not refused,
	// whether or not they named a destination.
	Outbound uint64    `json:"outbound"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
}

// MaxSubjectAccessLines bounds the lines of one data-subject report.
const MaxSubjectAccessLines = 5000

// SubjectAccesses returns who accessed the customers given by their
// pseudonyms in [from, to), one line per (tenant, actor, purpose,
// conversation), most recent first, and whether lines were cut at
// MaxSubjectAccessLines.
func (s *Store) SubjectAccesses(ctx context.Context, tenants, subjectIDs []string, from, to time.Time) ([]SubjectAccess, bool, error) {
	if len(subjectIDs) == 0 {
		return nil, false, fmt.Errorf("data-subject report: no subject id")
	}
	where, args := "", []any{InList(subjectIDs)}
	if len(tenants) > 0 {
		where, args = "tenant IN ? AND ", []any{InList(tenants), InList(subjectIDs)}
	}
	// The customer's pseudonyms (every key version) select the primary-key
	// ranges of events_by_subject (ordered by tenant, subject, ts; with the
	// tenant unknown, only granules at a tenant boundary are read in vain).
	// PREWHERE reads the wide columns only of the rows of the customer, not
	// of every row of those granules (about 5x fewer bytes).
	rows, err := s.conn.Query(ctx, `SELECT tenant, actor_id, any(actor_type), any(actor_role), any(actor_vendor),
purpose, conversation_id, groupUniqArray(store), groupUniqArray(action), groupUniqArrayArray(fields),
count(), sum(records), countIf(result = 'denied'), countIf(action IN ('share', 'export') AND result != 'denied'),
min(ts) AS first_ts, max(ts) AS last_ts
FROM events_by_subject
PREWHERE `+where+`subject_id IN ?
WHERE ts >= ? AND ts < ?
GROUP BY tenant, actor_id, purpose, conversation_id
ORDER BY last_ts DESC, actor_id
LIMIT ?`, append(args, from.UTC(), ceilSecond(to), uint64(MaxSubjectAccessLines+1))...)
	if err != nil {
		return nil, false, fmt.Errorf("querying data-subject accesses: %w", err)
	}
	defer rows.Close()
	var out []SubjectAccess
	for rows.Next() {
		var a SubjectAccess
		if err := rows.Scan(&a.Tenant, &a.ActorID, &a.ActorType, &a.ActorRole, &a.ActorVendor, &a.Purpose,
			&a.ConversationID, &a.Stores, &a.Actions, &a.Categories, &a.Events, &a.Records, &a.Denied,
			&a.Outbound, &a.First, &a.Last); err != nil {
			return nil, false, fmt.Errorf("reading data-subject access: %w", err)
		}
		sort.Strings(a.Stores)
		sort.Strings(a.Actions)
		sort.Strings(a.Categories)
		a.First, a.Last = a.First.UTC(), a.Last.UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("reading data-subject accesses: %w", err)
	}
	more := len(out) > MaxSubjectAccessLines
	if more {
		out = out[:MaxSubjectAccessLines]
	}
	return out, more, nil
}

// DayVolume is one day's access volume.
type DayVolume struct {
	Day     time.Time `json:"day"`
	Events  uint64    `json:"events"`
	Records uint64    `json:"records"`
	Exports uint64    `json:"exports"`
	Denied  uint64    `json:"denied"`
	Actors  uint64    `json:"actors"`
}

// DailyVolume returns the access volume per day in [from, to); tenants,
// when not empty, counts only those tenants. When from and to are whole
// UTC hours and the server's days start on whole UTC hours it reads the
// hourly rollup actor_hour (a week: at most 168 rows per actor), else
// actor_minute; both give the same figures.
func (s *Store) DailyVolume(ctx context.Context, tenants []string, from, to time.Time) ([]DayVolume, error) {
	cond, args := tenantIn("tenant", tenants)
	table, bucket := "actor_minute", "minute"
	if !s.noRollups && wholeHours(from, to) {
		hd, err := s.hourDays(ctx)
		if err != nil {
			return nil, fmt.Errorf("querying daily volume: %w", err)
		}
		if hd {
			table, bucket = "actor_hour", "hour"
		}
	}
	// table and bucket are one of two constant pairs; values are bound.
	rows, err := s.conn.Query(ctx, `SELECT toStartOfDay(`+bucket+`) AS d, sumMerge(events), sumMerge(records_sum),
sumMerge(exports), sumMerge(denied), uniqExact(actor_id)
FROM `+table+` WHERE `+bucket+` >= ? AND `+bucket+` < ?`+cond+`
GROUP BY d ORDER BY d`, append([]any{from.UTC(), to.UTC()}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("querying daily volume: %w", err)
	}
	defer rows.Close()
	var out []DayVolume
	for rows.Next() {
		var d DayVolume
		if err := rows.Scan(&d.Day, &d.Events, &d.Records, &d.Exports, &d.Denied, &d.Actors); err != nil {
			return nil, fmt.Errorf("reading daily volume: %w", err)
		}
		d.Day = d.Day.UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}

// ActorInfo is what the store knows of an actor over a period.
type ActorInfo struct {
	Tenant   string `json:"tenant"`
	ActorID  string `json:"actor_id"`
	Type     string `json:"type"`
	Role     string `json:"role,omitempty"`
	Vendor   string `json:"vendor,omitempty"`
	Events   uint64 `json:"events"`
	Records  uint64 `json:"records"`
	Subjects uint64 `json:"subjects"`
}

// MaxVendorActors bounds the actors VendorActivity returns.
const MaxVendorActors = 200

// VendorActivity returns the activity of the vendor actors (the events
// with an actor_vendor) in [from, to), most records first (then by actor
// id and tenant), at most MaxVendorActors of them; tenants, when not
// empty, keeps only those tenants. When from and to are whole UTC hours it
// reads the hourly rollup of vendor events vendor_actor_hour (a week at 10M
// events: tens of thousands of rows, where actor_hour has every actor's
// hundreds of thousands), else events; both give the same figures (an
// actor whose type, role or vendor changed within the range shows one of
// its values either way; vendor_actor_hour counts an actor's customers by
// 64-bit hashes of their pseudonyms, which two customers of one actor
// share with a probability of about n^2 / 2^65 for n customers).
func (s *Store) VendorActivity(ctx context.Context, tenants []string, from, to time.Time) ([]ActorInfo, error) {
	cond, args := tenantIn("tenant", tenants)
	limit := uint64(MaxVendorActors)
	// From events, the vendor column filters first, so only vendor rows
	// are aggregated (actor_minute would merge every actor's states).
	q := `SELECT tenant, actor_id, any(actor_type), any(actor_role), any(actor_vendor),
count(), sum(records) AS r, uniqExactIf(subject_id, subject_id != '')
FROM events WHERE ts >= ? AND ts < ? AND actor_vendor != ''` + cond + `
GROUP BY tenant, actor_id
ORDER BY r DESC, actor_id, tenant LIMIT ?`
	qargs := append(append([]any{from.UTC(), to.UTC()}, args...), limit)
	if !s.noRollups && wholeHours(from, to) {
		return s.vendorActivityHourly(ctx, cond, args, from, to)
	}
	rows, err := s.conn.Query(ctx, q, qargs...)
	if err != nil {
		return nil, fmt.Errorf("querying vendor activity: %w", err)
	}
	defer rows.Close()
	var out []ActorInfo
	for rows.Next() {
		var a ActorInfo
		if err := rows.Scan(&a.Tenant, &a.ActorID, &a.Type, &a.Role, &a.Vendor, &a.Events, &a.Records, &a.Subjects); err != nil {
			return nil, fmt.Errorf("reading vendor activity: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// vendorSetQueries is how many queries merge the vendor actors' customer
// sets side by side (vendorActivityHourly): each merges its own actors'
// sets on its own core, where one query merges every actor's on one (its
// aggregation does not spread over threads: a week's rows are a few
// hundred granules of one key range, and the threads' partial sets of an
// actor would be merged once more).
const vendorSetQueries = 2

// vendorActivityHourly is VendorActivity over vendor_actor_hour (from and
// to whole UTC hours; cond and args its tenant filter). Merging the
// customer sets is nearly all of the work (one hash insert per distinct
// actor and customer of each hour, twice: reading the state, merging it;
// the sets hold 64-bit hashes, migration 0017), so the actors are ranked
// by records without them first, and only the actors kept (at 10M events,
// 81% of the vendor events are the first 200 actors') have their sets
// merged: the same rows as merging every actor's and keeping the first.
// The kept actors, in key order (tenant, actor_id), are cut into
// vendorSetQueries ranges of about equal records, one query each, running
// side by side: vendor_actor_hour is ordered by that key (migration 0018),
// so each query reads only its own range's granules and each set is read
// once in all.
func (s *Store) vendorActivityHourly(ctx context.Context, cond string, args []any, from, to time.Time) ([]ActorInfo, error) {
	span := append([]any{from.UTC(), to.UTC()}, args...)
	rows, err := s.conn.Query(ctx, `SELECT tenant, actor_id, anyLastMerge(vendor_type), anyLastMerge(vendor_role), anyLastMerge(vendor_name),
sumMerge(events), sumMerge(records_sum) AS r
FROM vendor_actor_hour WHERE hour >= ? AND hour < ?`+cond+`
GROUP BY tenant, actor_id
ORDER BY r DESC, actor_id, tenant LIMIT ?`, append(slices.Clone(span), uint64(MaxVendorActors))...)
	if err != nil {
		return nil, fmt.Errorf("querying vendor activity: %w", err)
	}
	var out []ActorInfo
	for rows.Next() {
		var a ActorInfo
		if err := rows.Scan(&a.Tenant, &a.ActorID, &a.Type, &a.Role, &a.Vendor, &a.Events, &a.Records); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading vendor activity: %w", err)
		}
		out = append(out, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading vendor activity: %w", err)
	}
	type key struct{ tenant, actor string }
	at := make(map[key]int, len(out))
	for i, a := range out {
		at[key{a.Tenant, a.ActorID}] = i
	}
	sets := make([][]any, vendorSetQueries)
	for q, r := range vendorSetRanges(out, vendorSetQueries) {
		for _, i := range r {
			sets[q] = append(sets[q], clickhouse.GroupSet{Value: []any{out[i].Tenant, out[i].ActorID}})
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs = make([]error, vendorSetQueries)
		seen int
	)
	for q, set := range sets {
		if len(set) == 0 {
			continue
		}
		wg.Go(func() {
			rows, err := s.conn.Query(ctx, `SELECT tenant, actor_id, uniqExactIfMerge(customers)
FROM vendor_actor_hour WHERE hour >= ? AND hour < ?`+cond+` AND (tenant, actor_id) IN ?
GROUP BY tenant, actor_id`, append(slices.Clone(span), clickhouse.GroupSet{Value: set})...)
			if err != nil {
				errs[q] = fmt.Errorf("querying vendor activity's customers: %w", err)
				return
			}
			defer rows.Close()
			for rows.Next() {
				var k key
				var n uint64
				if err := rows.Scan(&k.tenant, &k.actor, &n); err != nil {
					errs[q] = fmt.Errorf("reading vendor activity's customers: %w", err)
					return
				}
				i, ok := at[k]
				if !ok {
					errs[q] = fmt.Errorf("reading vendor activity's customers: actor %s of tenant %s was not asked for", k.actor, k.tenant)
					return
				}
				mu.Lock()
				out[i].Subjects = n
				seen++
				mu.Unlock()
			}
			if err := rows.Err(); err != nil {
				errs[q] = fmt.Errorf("reading vendor activity's customers: %w", err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if seen != len(out) {
		return nil, fmt.Errorf("reading vendor activity's customers: %d of %d actors answered", seen, len(out))
	}
	return out, nil
}

// wholeHours reports whether from and to are both whole UTC hours: the
// bounds actor_hour can answer exactly.
func wholeHours(from, to time.Time) bool {
	return from.Unix()%3600 == 0 && to.Unix()%3600 == 0 && from.Nanosecond() == 0 && to.Nanosecond() == 0
}

// ProbeQuery runs a read-only query text as is and returns its column names
// and row count. It exists for tests that check SQL shipped outside this
// package (the Grafana dashboards' panels); never pass it user input.
func (s *Store) ProbeQuery(ctx context.Context, sql string) ([]string, int, error) {
	rows, err := s.conn.Query(ctx, sql)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	cols := rows.Columns()
	n := 0
	for rows.Next() {
		n++
	}
	return cols, n, rows.Err()
}

// vendorSetRanges cuts the actors as (indexes into as), in the order of
// their key (tenant, actor_id), into at most n ranges of about equal
// records: a range ends once it holds its share (the records not yet
// placed over the ranges not yet filled). Records stand for the customers
// whose sets the range's query merges. No range is empty unless as has
// fewer than n actors.
func vendorSetRanges(as []ActorInfo, n int) [][]int {
	order := make([]int, len(as))
	var left uint64
	for i := range as {
		order[i] = i
		left += as[i].Records
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := strings.Compare(as[a].Tenant, as[b].Tenant); c != 0 {
			return c
		}
		return strings.Compare(as[a].ActorID, as[b].ActorID)
	})
	var out [][]int
	for len(order) > 0 {
		rest := min(n-len(out), len(order)) // ranges still to fill, this one included
		if rest == 1 {
			out = append(out, order)
			break
		}
		share := left / uint64(rest)
		var got uint64
		k := 0
		// Leave at least one actor for each range after this one.
		for k < len(order)-(rest-1) && (k == 0 || got+as[order[k]].Records/2 < share) {
			got += as[order[k]].Records
			k++
		}
		out = append(out, order[:k:k])
		order, left = order[k:], left-got
	}
	return out
}

// ceilSecond rounds an exclusive upper bound up to a whole second: events are
// stored with second precision, so "ts < 12:00:00.4" must include the events
// of 12:00:00 (a look-up "until now" would otherwise miss the current second).
func ceilSecond(t time.Time) time.Time {
	t = t.UTC()
	if c := t.Truncate(time.Second); !c.Equal(t) {
		return c.Add(time.Second)
	}
	return t
}
