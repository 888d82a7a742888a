package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/chatwarden/chatwarden/models"
)

const insertEventsColumns = `(event_id, ts, tenant, actor_id, actor_type, actor_role,
actor_vendor, action, store, resource_type, resource_id, subject_id, records, bytes, fields,
purpose, conversation_id, conversation_subject_id, tool, result, client_ip, client_country,
client_user_agent, destination, ingested_at)`

// InsertEvents writes events in one native-protocol batch, column by column.
// The materialized views fill event_ids, events_by_subject, actor_minute and
// shares in the same INSERT. Callers pass events whose customer ids are already
// pseudonymized, and drop duplicates first (see ExistingEventIDs).
//
// The rows are a function of evs and ingestedAt alone, so a retry of the
// same batch sends the same blocks: on a cluster (Config.Cluster) the
// insert goes through the Distributed table, synchronously, and each
// shard's ReplicatedMergeTree drops a block it already holds, so a retried
// batch whose first attempt's answer was lost is stored once.
//
// A shard with no replica reachable (a whole shard down) would stall every
// batch, since each holds events of every shard: on a cluster, an insert
// that fails for that reason is sent again at once with the Distributed
// table's asynchronous insert (insert_distributed_sync = 0). The initiator
// then writes the live shards' blocks and queues the dead shard's block in
// the Distributed table's folder on its own disk, and sends it when the
// shard is back (docs/scaling.md, "A whole shard down"): ingest goes on for
// the other shards, and nothing is lost while the initiator's disk lasts.
func (s *Store) InsertEvents(ctx context.Context, evs []models.Event, ingestedAt time.Time) error {
	return s.InsertEventBatches(ctx, []EventBatch{{Events: evs, IngestedAt: ingestedAt}})
}

// ShardUnreachable reports whether err is ClickHouse's answer that a
// shard of the cluster has no replica the initiator could reach (279,
// all connection tries failed), as when a whole shard is down.
func ShardUnreachable(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && ex.Code == 279
}

// insertBlockRows is the most rows InsertEvents sends in one block of its
// INSERT: a larger batch goes as several blocks of the same INSERT (native
// protocol Data packets, driver.Batch.Flush), so the client holds the
// columns of one block at a time while the server still makes one INSERT
// of them (docs/scaling.md, "Ingest: one INSERT, many blocks").
const insertBlockRows = 20_000

// insertEvents writes evs into table (events, or on a cluster a node's
// events_local) in one INSERT, blockRows rows per block (insertBlockRows
// when 0).
func (s *Store) insertEvents(ctx context.Context, table string, evs []models.Event, ingestedAt time.Time) error {
	return s.insertEventsBlocks(ctx, table, evs, ingestedAt, insertBlockRows)
}

// insertEventsBlocks is insertEvents with blockRows rows per block.
func (s *Store) insertEventsBlocks(ctx context.Context, table string, evs []models.Event, ingestedAt time.Time, blockRows int) error {
	return s.insertEventBatches(ctx, table, []EventBatch{{Events: evs, IngestedAt: ingestedAt}}, blockRows)
}

// EventBatch is events stored with one ingested_at.
type EventBatch struct {
	Events     []models.Event
	IngestedAt time.Time
}

// InsertEventBatches writes several batches of events, each with its own
// ingested_at, as one INSERT (blocks of at most insertBlockRows rows, never
// two batches in one block): the rows InsertEvents would store for each
// batch, in one set of parts instead of one per batch. The eval replay
// stores several of its chunks at once with it. On a cluster, a shard with
// no replica reachable is handled as in InsertEvents.
func (s *Store) InsertEventBatches(ctx context.Context, bs []EventBatch) error {
	err := s.insertEventBatches(ctx, "events", bs, insertBlockRows)
	if err == nil || s.cfg.Cluster == "" || !ShardUnreachable(err) {
		return err
	}
	n := 0
	for _, b := range bs {
		n += len(b.Events)
	}
	s.log.Warn("a shard has no replica reachable: inserting through the Distributed table's queue (asynchronous) until it is back",
		"events", n, "batches", len(bs), "err", err)
	qctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 0}))
	if qerr := s.insertEventBatches(qctx, "events", bs, insertBlockRows); qerr != nil {
		return fmt.Errorf("queueing the insert for an unreachable shard: %w (the synchronous insert: %w)", qerr, err)
	}
	return nil
}

// insertEventBatches writes bs into table in one INSERT, at most blockRows
// rows per block (insertBlockRows when 0).
func (s *Store) insertEventBatches(ctx context.Context, table string, bs []EventBatch, blockRows int) error {
	n := 0
	for _, b := range bs {
		n += len(b.Events)
	}
	if n == 0 {
		return nil
	}
	if blockRows <= 0 {
		blockRows = insertBlockRows
	}
	// table is a constant of this package: no user text.
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+table+" "+insertEventsColumns)
	if err != nil {
		return fmt.Errorf("preparing insert of %d events: %w", n, err)
	}
	sent := 0
	for _, b := range bs {
		evs := b.Events
		at := b.IngestedAt.UTC().Truncate(time.Second)
		for lo := 0; lo < len(evs); lo += blockRows {
			hi := min(lo+blockRows, len(evs))
			if err := appendEventColumns(batch, evs[lo:hi], at); err != nil {
				_ = batch.Abort()
				return fmt.Errorf("appending events %d-%d of %d: %w", sent+lo, sent+hi, n, err)
			}
			if sent+hi < n {
				// The block goes to the server now; the INSERT goes on.
				if err := batch.Flush(); err != nil {
					_ = batch.Abort()
					return fmt.Errorf("inserting %d events (block at %d): %w", n, sent+lo, err)
				}
			}
		}
		sent += len(evs)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d events: %w", n, err)
	}
	return nil
}

// appendEventColumns appends evs to batch, column by column.
func appendEventColumns(batch driver.Batch, evs []models.Event, at time.Time) error {
	n := len(evs)
	var (
		ids, tenants, actors, atypes, roles, vendors, actions, stores, rtypes, rids, subjects = mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n)
		purposes, convs, convSubjects, tools, results, ips, countries, agents, dests          = mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n)
		ts, ingested                                                                          = make([]time.Time, n), make([]time.Time, n)
		records, bytes                                                                        = make([]uint64, n), make([]uint64, n)
		fields                                                                                = make([][]string, n)
	)
	for i := range evs {
		e := &evs[i]
		ids[i], ts[i], tenants[i] = e.EventID, e.TS.UTC(), e.Tenant
		actors[i], atypes[i], roles[i], vendors[i] = e.Actor.ID, string(e.Actor.Type), e.Actor.Role, e.Actor.Vendor
		actions[i], stores[i], rtypes[i], rids[i] = string(e.Action), e.Store, e.Resource.Type, e.Resource.ID
		subjects[i], records[i], bytes[i] = e.SubjectID, e.Records, e.Bytes
		fields[i] = e.Fields
		if fields[i] == nil {
			fields[i] = []string{}
		}
		purposes[i], convs[i], convSubjects[i], tools[i] = e.Purpose, e.Conversation.ID, e.Conversation.SubjectID, e.Tool
		results[i], ips[i], countries[i], agents[i] = string(e.Result), e.Client.IP, e.Client.Country, e.Client.UserAgent
		dests[i] = e.Destination
		ingested[i] = at
	}
	cols := []any{ids, ts, tenants, actors, atypes, roles, vendors, actions, stores, rtypes, rids,
		subjects, records, bytes, fields, purposes, convs, convSubjects, tools, results, ips,
		countries, agents, dests, ingested}
	for i, c := range cols {
		if err := batch.Column(i).Append(c); err != nil {
			return fmt.Errorf("column %d: %w", i, err)
		}
	}
	return nil
}

func mk(n int) []string { return make([]string, n) }

// eventIDsExternal is the external table ExistingEventIDs sends its ids in.
const eventIDsExternal = "batch_event_ids"

// ExternalTables lists the external (client-sent) tables that store queries
// read, with their columns, so that the SQL conformance check can stand them
// in when it replays those queries on another ClickHouse.
var ExternalTables = map[string]string{eventIDsExternal: "event_id String"}

// ExistingEventIDs returns which of ids are already stored, so that a
// redelivered event is not inserted twice. The lookup reads event_ids, which
// is ordered by event id. The ids travel as an external table (native
// protocol "external data") rather than as an IN literal: parsing a literal
// of 10,000 strings costs ClickHouse 18.16 about 20 times more than the
// lookup itself.
//
// On a cluster with a whole shard down (ShardUnreachable) it answers from
// the shards that are up (skip_unavailable_shards): an id stored on the
// dead shard is not found, so ingest goes on for the other shards. The
// price: an event Kafka redelivers during such an outage, whose first copy
// reached the dead shard, is stored twice (docs/scaling.md).
func (s *Store) ExistingEventIDs(ctx context.Context, ids []string) (map[string]bool, error) {
	const q = "SELECT DISTINCT event_id FROM event_ids WHERE event_id IN batch_event_ids"
	found, err := s.eventIDsIn(ctx, ids, "event ids", q)
	if err == nil || s.cfg.Cluster == "" || !ShardUnreachable(err) {
		return found, err
	}
	s.log.Warn("a shard has no replica reachable: looking event ids up on the shards that are up", "ids", len(ids), "err", err)
	return s.eventIDsIn(clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"skip_unavailable_shards": 1})), ids, "event ids", q)
}

// InsertConsents writes consent events to the consent register.
func (s *Store) InsertConsents(ctx context.Context, cs []models.Consent, ingestedAt time.Time) error {
	if len(cs) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO consents (tenant, subject_id, purpose, granted, ts, event_id, ingested_at)")
	if err != nil {
		return fmt.Errorf("preparing insert of %d consents: %w", len(cs), err)
	}
	for _, c := range cs {
		var g uint8
		if c.Granted {
			g = 1
		}
		if err := batch.Append(c.Tenant, c.SubjectID, c.Purpose, g, c.TS.UTC(), c.EventID, ingestedAt.UTC()); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("appending consent: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d consents: %w", len(cs), err)
	}
	return nil
}

// ConsentState is the latest consent decision for one (tenant, subject, purpose).
type ConsentState struct {
	Tenant    string
	SubjectID string
	Purpose   string
	Granted   bool
	TS        time.Time
}

// ConsentsFor returns the latest consent decision per purpose for the given
// pseudonymized subjects.
func (s *Store) ConsentsFor(ctx context.Context, tenant string, subjects []string) ([]ConsentState, error) {
	if len(subjects) == 0 {
		return nil, nil
	}
	rows, err := s.conn.Query(ctx, `SELECT subject_id, purpose, argMax(granted, ts), max(ts)
FROM consents WHERE tenant = ? AND subject_id IN ?
GROUP BY subject_id, purpose`, tenant, InList(subjects))
	if err != nil {
		return nil, fmt.Errorf("reading consents of %d subjects: %w", len(subjects), err)
	}
	defer rows.Close()
	var out []ConsentState
	for rows.Next() {
		c := ConsentState{Tenant: tenant}
		var g uint8
		if err := rows.Scan(&c.SubjectID, &c.Purpose, &g, &c.TS); err != nil {
			return nil, err
		}
		c.Granted = g == 1
		out = append(out, c)
	}
	return out, rows.Err()
}

// AllConsents returns the latest consent decision of every (tenant, subject,
// purpose): what detection loads into memory at start-up.
func (s *Store) AllConsents(ctx context.Context) ([]ConsentState, error) {
	rows, err := s.conn.Query(ctx, `SELECT tenant, subject_id, purpose, argMax(granted, ts), max(ts)
FROM consents GROUP BY tenant, subject_id, purpose`)
	if err != nil {
		return nil, fmt.Errorf("reading consent register: %w", err)
	}
	defer rows.Close()
	var out []ConsentState
	for rows.Next() {
		var c ConsentState
		var g uint8
		if err := rows.Scan(&c.Tenant, &c.SubjectID, &c.Purpose, &g, &c.TS); err != nil {
			return nil, err
		}
		c.Granted = g == 1
		out = append(out, c)
	}
	return out, rows.Err()
}

// StoredEventIDs returns which of ids are in the events table itself, whose
// ts is in [from, to]. It is for the retry of a failed insert: ClickHouse
// writes the events table before it pushes the rows to the materialized
// views (event_ids among them), so an insert that failed in a view (a full
// disk) may have stored rows that ExistingEventIDs does not see. It reads
// the days of [from, to] of events, so it is slower than ExistingEventIDs.
func (s *Store) StoredEventIDs(ctx context.Context, ids []string, from, to time.Time) (map[string]bool, error) {
	return s.eventIDsIn(ctx, ids, "event ids in events",
		"SELECT DISTINCT event_id FROM events WHERE ts >= ? AND ts <= ? AND event_id IN batch_event_ids",
		from.UTC().Truncate(time.Second), to.UTC().Truncate(time.Second).Add(time.Second))
}

// eventIDsIn runs query, which reads event ids from the external table
// batch_event_ids holding ids, and returns the ids it found; what names the
// look-up in errors.
func (s *Store) eventIDsIn(ctx context.Context, ids []string, what, query string, args ...any) (map[string]bool, error) {
	found := map[string]bool{}
	if len(ids) == 0 {
		return found, nil
	}
	tbl, err := ext.NewTable(eventIDsExternal, ext.Column("event_id", "String"))
	if err != nil {
		return nil, fmt.Errorf("building event id table: %w", err)
	}
	for _, id := range ids {
		if err := tbl.Append(id); err != nil {
			return nil, fmt.Errorf("building event id table: %w", err)
		}
	}
	// The external table is added to ctx's query options (settings kept).
	rows, err := s.conn.Query(clickhouse.Context(ctx, clickhouse.WithExternalTable(tbl)), query, args...)
	if err != nil {
		return nil, fmt.Errorf("looking up %d %s: %w", len(ids), what, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		found[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up %d %s: %w", len(ids), what, err)
	}
	return found, nil
}
