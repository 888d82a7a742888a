package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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
	return s.insertEventBatches(ctx, table, []EventBatch{{Events: evs, IngestedAt: ingestedAt}}, blockRows, 0)
}

// EventBatch is events stored with one ingested_at.
type EventBatch struct {
	Events     []models.Event
	IngestedAt time.Time
}

// InsertEventBatches writes several batches of events, each with its own
// ingested_at, as one INSERT (blocks of at most insertBlockRows rows, never
// two batches in one block; each batch's rows grouped by actor, see
// actorOrder): the rows InsertEvents would store for each batch, in one
// set of parts instead of one per batch. The eval replay
// stores several of its chunks at once with it. On a cluster, a shard with
// no replica reachable is handled as in InsertEvents.
func (s *Store) InsertEventBatches(ctx context.Context, bs []EventBatch) error {
	err := s.insertEventBatches(ctx, "events", bs, insertBlockRows, 0)
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
	if qerr := s.insertEventBatches(qctx, "events", bs, insertBlockRows, 0); qerr != nil {
		return fmt.Errorf("queueing the insert for an unreachable shard: %w (the synchronous insert: %w)", qerr, err)
	}
	return nil
}

// insertSplitRows is the fewest rows an insert of events must have to be
// sent as insertStreams INSERTs at once, each on a connection of its own.
// ClickHouse runs an INSERT (the events table and then every materialized
// view, in turn) on one thread: one INSERT at a time leaves the other cores
// idle while a backlog is drained (docs/scaling.md, "Ingest hot path (issue
// 12, session 9)"). A caught-up consumer's batches (ingest.batch_size,
// 20,000 by default) stay one INSERT.
const insertSplitRows = 2 * insertBlockRows

// insertStreams is how many INSERTs an insert of at least insertSplitRows
// rows is split into.
const insertStreams = 2

// insertEventBatches writes bs into table, at most blockRows rows per block
// (insertBlockRows when 0): as one INSERT, or, for at least splitRows rows
// (insertSplitRows when 0), as insertStreams INSERTs at once (splitEvents).
// When one of those fails, the other may have stored its rows: the caller's
// retry must treat the insert as a failed one that may have stored some
// rows, as it must for any failed INSERT (ClickHouse writes a part per
// partition and table in turn; see CompletePartialInsert).
func (s *Store) insertEventBatches(ctx context.Context, table string, bs []EventBatch, blockRows, splitRows int) error {
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
	if splitRows <= 0 {
		splitRows = insertSplitRows
	}
	if n < splitRows {
		return s.insertEventRows(ctx, table, bs, actorOrder(bs, nil), blockRows)
	}
	groups := splitEvents(bs)
	for g := range groups {
		groups[g] = actorOrder(bs, groups[g])
	}
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for g := range groups {
		wg.Go(func() { errs[g] = s.insertEventRows(ctx, table, bs, groups[g], blockRows) })
	}
	wg.Wait()
	for g, err := range errs {
		if err != nil {
			// The first failure, as a single INSERT's (IsRetryable and
			// ShardUnreachable read it); the other's is logged.
			for h, other := range errs {
				if h != g && other != nil {
					s.log.Warn("the other INSERT of a split insert of events failed too", "err", other)
				}
			}
			return err
		}
	}
	return nil
}

// splitEvents divides the rows of bs into insertStreams groups of about the
// same size: group g holds, for batch i, the rows bs[i].Events[j] for j in
// groups[g][i]. Events and every view's table are partitioned by day
// (toYYYYMMDD), and each INSERT writes a part per day it has rows of, so
// whole UTC days go to one group when the days can be shared out with
// neither group under a quarter of the rows (a backlog that spans days);
// otherwise (a batch of one busy day) the rows are halved in order.
func splitEvents(bs []EventBatch) [][][]int32 {
	n := 0
	perDay := map[int64]int{}
	for _, b := range bs {
		n += len(b.Events)
		for j := range b.Events {
			perDay[day(&b.Events[j])]++
		}
	}
	days := make([]int64, 0, len(perDay))
	for d := range perDay {
		days = append(days, d)
	}
	// Largest first, each to the smaller group; ties by day, so that the
	// same rows are always split the same way.
	slices.SortFunc(days, func(a, b int64) int {
		if c := cmp.Compare(perDay[b], perDay[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	groupOf := make(map[int64]int, len(days))
	var sizes [insertStreams]int
	for _, d := range days {
		g := 0
		for h := range sizes {
			if sizes[h] < sizes[g] {
				g = h
			}
		}
		groupOf[d] = g
		sizes[g] += perDay[d]
	}
	byDay := slices.Min(sizes[:]) >= n/4
	groups := make([][][]int32, insertStreams)
	for g := range groups {
		groups[g] = make([][]int32, len(bs))
	}
	k := 0 // rows before this one, over every batch
	for i, b := range bs {
		for j := range b.Events {
			g := k * insertStreams / n
			if byDay {
				g = groupOf[day(&b.Events[j])]
			}
			groups[g][i] = append(groups[g][i], int32(j))
			k++
		}
	}
	return groups
}

// actorKey is the head of events' sort key (tenant, actor_id, ts): the
// rows actorOrder keeps together.
type actorKey struct{ tenant, actor string }

// actorOrder returns, for each batch bs[i], its rows (rows[i], or all of
// them when rows is nil) grouped by tenant and actor id in ascending order
// (bytewise, as ClickHouse orders String), each actor's rows in the order
// they had: a stable sort on (tenant, actor_id). What is stored does not
// change: events sorts each part by (tenant, actor_id, ts) with a stable
// sort, and every view's groups and sort keys hold one actor's rows in the
// order they had (events_by_subject and shares order rows of different
// actors with the same customer or destination and second differently
// within a part, which no query's ORDER BY leaves open). What changes is
// ClickHouse's work (issue 12, docs/scaling.md "INSERT CPU: events and its
// views"): each actor's rows arrive together, so the views' aggregations
// and sorts run over runs of one actor instead of rows scattered over a
// hash table, and a batch in time order is already in events' order, which
// ClickHouse then does not sort (BenchmarkInsertViewsCPU with
// BENCH_VIEWS_ORDER=1: 4–13% less ClickHouse CPU per INSERT with every
// view, about a quarter less for the events table alone). The order is a
// function of bs and rows alone, so a retried batch sends the same blocks.
func actorOrder(bs []EventBatch, rows [][]int32) [][]int32 {
	out := make([][]int32, len(bs))
	groupOf := map[actorKey]int32{}
	var (
		keys   []actorKey
		counts []int32
		group  []int32
	)
	for i, b := range bs {
		n := len(b.Events)
		if rows != nil {
			n = len(rows[i])
		}
		row := func(k int) int32 {
			if rows != nil {
				return rows[i][k]
			}
			return int32(k)
		}
		clear(groupOf)
		keys, counts, group = keys[:0], counts[:0], resize(group, n)
		for k := range n {
			e := &b.Events[row(k)]
			key := actorKey{e.Tenant, e.Actor.ID}
			g, ok := groupOf[key]
			if !ok {
				g = int32(len(keys))
				groupOf[key] = g
				keys = append(keys, key)
				counts = append(counts, 0)
			}
			group[k] = g
			counts[g]++
		}
		order := make([]int32, len(keys))
		for g := range order {
			order[g] = int32(g)
		}
		slices.SortFunc(order, func(a, b int32) int {
			if c := cmp.Compare(keys[a].tenant, keys[b].tenant); c != 0 {
				return c
			}
			return cmp.Compare(keys[a].actor, keys[b].actor)
		})
		next := make([]int32, len(keys)) // where group g's next row goes
		at := int32(0)
		for _, g := range order {
			next[g] = at
			at += counts[g]
		}
		res := make([]int32, n)
		for k := range n {
			g := group[k]
			res[next[g]] = row(k)
			next[g]++
		}
		out[i] = res
	}
	return out
}

// day is the UTC day of e: the partition of its rows when the server's
// time zone is UTC (another zone makes splitEvents' groups share a
// partition or two, which costs parts, not rows).
func day(e *models.Event) int64 {
	return e.TS.Unix() / 86400
}

// insertEventRows writes the rows of bs into table in one INSERT, at most
// blockRows rows per block (never two batches in one block): every row, or
// with rows, batch i's rows bs[i].Events[j] for j in rows[i].
func (s *Store) insertEventRows(ctx context.Context, table string, bs []EventBatch, rows [][]int32, blockRows int) error {
	n := 0
	for i, b := range bs {
		if rows != nil {
			n += len(rows[i])
		} else {
			n += len(b.Events)
		}
	}
	if n == 0 {
		return nil
	}
	// table is a constant of this package: no user text.
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+table+" "+insertEventsColumns)
	if err != nil {
		return fmt.Errorf("preparing insert of %d events: %w", n, err)
	}
	var cols eventColumns
	sent := 0
	for i, b := range bs {
		var idx []int32
		m := len(b.Events)
		if rows != nil {
			idx, m = rows[i], len(rows[i])
		}
		at := b.IngestedAt.UTC().Truncate(time.Second)
		for lo := 0; lo < m; lo += blockRows {
			hi := min(lo+blockRows, m)
			if idx != nil {
				cols.fill(b.Events, idx[lo:hi], 0, 0, at)
			} else {
				cols.fill(b.Events, nil, lo, hi, at)
			}
			if err := cols.append(batch); err != nil {
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
		sent += m
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d events: %w", n, err)
	}
	return nil
}

// eventColumns holds one block's column values, reused from block to block
// of an INSERT (the driver copies them into its own buffers on Append).
type eventColumns struct {
	ids, tenants, actors, atypes, roles, vendors, actions, stores, rtypes, rids, subjects []string
	purposes, convs, convSubjects, tools, results, ips, countries, agents, dests          []string
	ts, ingested                                                                          []time.Time
	records, bytes                                                                        []uint64
	fields                                                                                [][]string
}

// fill sets the columns to the rows evs[j] for j in idx, or, with idx nil,
// evs[lo:hi], each with ingested_at at.
func (c *eventColumns) fill(evs []models.Event, idx []int32, lo, hi int, at time.Time) {
	n := hi - lo
	if idx != nil {
		n = len(idx)
	}
	for _, col := range []*[]string{&c.ids, &c.tenants, &c.actors, &c.atypes, &c.roles, &c.vendors, &c.actions,
		&c.stores, &c.rtypes, &c.rids, &c.subjects, &c.purposes, &c.convs, &c.convSubjects, &c.tools, &c.results,
		&c.ips, &c.countries, &c.agents, &c.dests} {
		*col = resize(*col, n)
	}
	c.ts, c.ingested = resize(c.ts, n), resize(c.ingested, n)
	c.records, c.bytes = resize(c.records, n), resize(c.bytes, n)
	c.fields = resize(c.fields, n)
	for i := range n {
		var e *models.Event
		if idx != nil {
			e = &evs[idx[i]]
		} else {
			e = &evs[lo+i]
		}
		c.ids[i], c.ts[i], c.tenants[i] = e.EventID, e.TS.UTC(), e.Tenant
		c.actors[i], c.atypes[i], c.roles[i], c.vendors[i] = e.Actor.ID, string(e.Actor.Type), e.Actor.Role, e.Actor.Vendor
		c.actions[i], c.stores[i], c.rtypes[i], c.rids[i] = string(e.Action), e.Store, e.Resource.Type, e.Resource.ID
		c.subjects[i], c.records[i], c.bytes[i] = e.SubjectID, e.Records, e.Bytes
		c.fields[i] = e.Fields
		if c.fields[i] == nil {
			c.fields[i] = []string{}
		}
		c.purposes[i], c.convs[i], c.convSubjects[i], c.tools[i] = e.Purpose, e.Conversation.ID, e.Conversation.SubjectID, e.Tool
		c.results[i], c.ips[i], c.countries[i], c.agents[i] = string(e.Result), e.Client.IP, e.Client.Country, e.Client.UserAgent
		c.dests[i] = e.Destination
		c.ingested[i] = at
	}
}

// append appends the columns to batch, in insertEventsColumns' order.
func (c *eventColumns) append(batch driver.Batch) error {
	cols := []any{c.ids, c.ts, c.tenants, c.actors, c.atypes, c.roles, c.vendors, c.actions, c.stores, c.rtypes, c.rids,
		c.subjects, c.records, c.bytes, c.fields, c.purposes, c.convs, c.convSubjects, c.tools, c.results, c.ips,
		c.countries, c.agents, c.dests, c.ingested}
	for i, col := range cols {
		if err := batch.Column(i).Append(col); err != nil {
			return fmt.Errorf("column %d: %w", i, err)
		}
	}
	return nil
}

// resize returns s with length n, reusing its array when it is large
// enough.
func resize[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

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
