package detect

import (
	"fmt"
	"strings"
	"time"
)

// The queries quoted in evidence carry literal values so that a person can
// paste them into clickhouse-client. They are for display only: the engine
// never runs them (its own queries are bound in store).

// literalEscaper escapes a string literal's backslashes and quotes
// (immutable; a Replacer is safe for concurrent use).
var literalEscaper = strings.NewReplacer(`\`, `\\`, `'`, `\'`)

// lit renders s as a ClickHouse string literal.
func lit(s string) string {
	return "'" + literalEscaper.Replace(s) + "'"
}

// litTime renders t as a ClickHouse DateTime literal (UTC).
func litTime(t time.Time) string {
	return "toDateTime('" + t.UTC().Format("2006-01-02 15:04:05") + "', 'UTC')"
}

// litList renders ss as a tuple of string literals for IN.
func litList(ss []string) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = lit(s)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// windowQuery is the actor_minute query behind a window detector's evidence:
// the actor's per-window aggregates from `from` to `to` (from raw events for
// a window that is not whole minutes).
func windowQuery(tenant, actor string, from, to time.Time, window time.Duration) string {
	w := int64(window / time.Second)
	if w%60 != 0 { // shorter than the per-minute aggregates: raw events
		return fmt.Sprintf(`SELECT toDateTime(intDiv(toUInt32(ts), %d) * %d) AS window_start,
count() AS events, sum(records) AS records, uniqExactIf(subject_id, subject_id != '') AS subjects,
countIf(result = 'denied') AS denied, groupUniqArray(store) AS stores, groupUniqArray(resource_type) AS resource_types,
groupUniqArrayArray(fields) AS categories, groupUniqArrayIf(client_country, client_country != '') AS countries
FROM events
WHERE tenant = %s AND actor_id = %s AND ts >= %s AND ts < %s
GROUP BY window_start ORDER BY window_start`, w, w, lit(tenant), lit(actor), litTime(from), litTime(to))
	}
	return fmt.Sprintf(`SELECT toDateTime(intDiv(toUInt32(minute), %d) * %d) AS window_start,
sumMerge(events) AS events, sumMerge(records_sum) AS records, uniqExactIfMerge(subjects) AS subjects,
sumMerge(denied) AS denied, groupUniqArrayMerge(stores) AS stores, groupUniqArrayMerge(resource_types) AS resource_types,
groupUniqArrayArrayMerge(categories) AS categories, groupUniqArrayIfMerge(countries) AS countries
FROM actor_minute
WHERE tenant = %s AND actor_id = %s AND minute >= %s AND minute < %s
GROUP BY window_start ORDER BY window_start`, w, w, lit(tenant), lit(actor), litTime(from), litTime(to))
}

// eventsQuery is the raw-events query behind an event rule's evidence.
func eventsQuery(tenant, actor string, from, to time.Time, cond string) string {
	q := fmt.Sprintf(`SELECT ts, event_id, action, store, resource_type, subject_id, records, fields, purpose,
conversation_id, conversation_subject_id, tool, result, client_country
FROM events
WHERE tenant = %s AND actor_id = %s AND ts >= %s AND ts <= %s`, lit(tenant), lit(actor), litTime(from), litTime(to))
	if cond != "" {
		q += "\n  AND " + cond
	}
	return q + "\nORDER BY ts"
}
