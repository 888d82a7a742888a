package store

import (
	"context"
	"fmt"
	"time"
)

// LoadSyntheticEvents fills events (and through the materialized views
// event_ids, events_by_subject and actor_minute) with n generated events
// spread over [from, to), directly inside ClickHouse (INSERT ... SELECT from
// numbers()), in chunks, calling progress after each. It is for the query
// benchmark: actors, customers, stores, actions, purposes and data categories
// follow skewed but fixed distributions (actors number n/5000 at most 2000,
// customers 500,000).
func (s *Store) LoadSyntheticEvents(ctx context.Context, n uint64, from, to time.Time, progress func(done uint64)) error {
	const chunk = 1_000_000
	span := uint64(to.Sub(from).Seconds())
	if span == 0 || n == 0 {
		return fmt.Errorf("synthetic events: need n > 0 and from < to")
	}
	actors := min(uint64(2000), max(uint64(10), n/5000))
	for start := uint64(0); start < n; start += chunk {
		m := min(uint64(chunk), n-start)
		// The actor is squared-uniform (a few busy actors, a long tail);
		// everything else hashes the row number.
		err := s.exec(ctx, `INSERT INTO events (event_id, ts, tenant, actor_id, actor_type, actor_role, actor_vendor, action,
store, resource_type, resource_id, subject_id, records, bytes, fields, purpose, conversation_id,
conversation_subject_id, tool, result, client_ip, client_country, client_user_agent, ingested_at)
SELECT
    concat('bench-', toString(n)) AS event_id,
    toDateTime(? + intDiv(n * ?, ?)) AS ts,
    'default' AS tenant,
    concat('actor-', toString(toUInt64(pow(cityHash64(n, 1) % 1000000 / 1000000.0, 2) * ?))) AS actor_id,
    ['human', 'human', 'bot', 'bot', 'bot', 'service', 'vendor'][cityHash64(actor_id) % 7 + 1] AS actor_type,
    ['support', 'billing', 'fraud', 'returns'][cityHash64(actor_id, 2) % 4 + 1] AS actor_role,
    if(actor_type = 'vendor', 'acme-bpo', '') AS actor_vendor,
    ['read', 'read', 'read', 'read', 'search', 'list', 'update', 'export'][cityHash64(n, 2) % 8 + 1] AS action,
    ['crm', 'crm', 'orders', 'transcripts', 'payments', 'tickets', 'vector_index'][cityHash64(n, 3) % 7 + 1] AS store,
    'record' AS resource_type,
    concat('p1', lower(hex(MD5(toString(cityHash64(n, 4) % 5000000))))) AS resource_id,
    concat('p1', lower(hex(MD5(toString(cityHash64(n, 5) % 500000))))) AS subject_id,
    toUInt64(if(action = 'export', 50 + cityHash64(n, 6) % 500, 1)) AS records,
    toUInt64(200 + cityHash64(n, 7) % 4000) AS bytes,
    [['email', 'name'], ['order_history'], ['transcript_text'], ['payment'], ['address', 'phone'], ['email'], ['dob', 'name']][cityHash64(n, 8) % 7 + 1] AS fields,
    ['support', 'support', 'support', 'billing', 'fraud', 'marketing', 'analytics', 'training'][cityHash64(n, 9) % 8 + 1] AS purpose,
    concat('conv-', toString(cityHash64(n, 10) % 2000000)) AS conversation_id,
    subject_id AS conversation_subject_id,
    'lookup' AS tool,
    if(cityHash64(n, 11) % 50 = 0, 'denied', 'allowed') AS result,
    '10.0.0.1' AS client_ip,
    ['DE', 'DE', 'FR', 'US', 'PH'][cityHash64(actor_id, 3) % 5 + 1] AS client_country,
    'bench' AS client_user_agent,
    now() AS ingested_at
FROM (SELECT number + ? AS n FROM numbers(?))`, uint64(from.Unix()), span, n, actors, start, m)
		if err != nil {
			return fmt.Errorf("loading synthetic events %d..%d: %w", start, start+m, err)
		}
		if progress != nil {
			progress(start + m)
		}
	}
	return nil
}

// SampleActors returns up to n actor ids with events in [from, to).
func (s *Store) SampleActors(ctx context.Context, from, to time.Time, n int) ([]string, error) {
	return s.stringsOf(ctx, "sampling actor ids", `SELECT DISTINCT actor_id FROM actor_minute WHERE minute >= ? AND minute < ? LIMIT ?`, from.UTC(), to.UTC(), uint64(n))
}

// SampleSubjects returns up to n customer pseudonyms with events in [from, to).
func (s *Store) SampleSubjects(ctx context.Context, from, to time.Time, n int) ([]string, error) {
	return s.stringsOf(ctx, "sampling subject ids", `SELECT DISTINCT subject_id FROM events_by_subject WHERE ts >= ? AND ts < ? LIMIT ?`, from.UTC(), to.UTC(), uint64(n))
}

// TableDiskBytes returns the bytes on disk of the active parts of each
// table of the store's database (system.parts), for the query benchmark's
// bytes per event. On a cluster it sees the parts of the node it asks
// only (its local tables).
func (s *Store) TableDiskBytes(ctx context.Context) (map[string]uint64, error) {
	return s.countsOf(ctx, "reading table sizes", `SELECT table, sum(bytes_on_disk) FROM system.parts WHERE database = ? AND active GROUP BY table`, s.cfg.Database)
}
