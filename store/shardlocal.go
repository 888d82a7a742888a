package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Shard-local detection (docs/scaling.md, "Shard-local detection"). On a
// cluster, detection shards hash the storage sharding key (ShardKey
// ShardByTenantActor), so when the storage shards' total weight divides
// the number of detection shards, every actor of detection shard k is
// stored on one storage shard: the one the Distributed table sends a
// sharding key with key % total = k % total to. The detection queries of
// such a shard (WindowAggregates, RecentSubjects, SubjectBuckets,
// DestinationWindows) and the evidence query TopSubjects read that storage
// shard's <table>_local tables on its first replica that answers, in
// system.clusters order (as load_balancing = in_order picks it for a
// Distributed read), and on the next one when a replica is unreachable;
// every other detection shard, and every other query, goes through the
// Distributed tables of the connected node as before.

// layoutMaxAge is how long the cluster's layout read from system.clusters
// is used before it is read again.
const layoutMaxAge = time.Minute

// replicaDownFor is how long a replica that did not answer is tried after
// the shard's other replicas.
const replicaDownFor = 15 * time.Second

// clusterLayout is the cluster's storage shards as system.clusters lists
// them on the connected node.
type clusterLayout struct {
	weights  []uint64   // by shard, in shard_num order
	replicas [][]string // host:port of each shard's replicas, in replica_num order
	total    uint64     // the sum of the weights
	read     time.Time
}

// shardOfSlot returns the storage shard (0-based) to which a Distributed
// table sends a row whose sharding key modulo the total weight is slot:
// each shard takes a range of slots as wide as its weight, in order.
func (l *clusterLayout) shardOfSlot(slot uint64) int {
	for i, w := range l.weights {
		if slot < w {
			return i
		}
		slot -= w
	}
	return len(l.weights) - 1
}

// shardReads holds what shard-local reads share: the cluster's layout and
// a small pool per replica.
type shardReads struct {
	mu        sync.Mutex
	layout    *clusterLayout
	conns     map[string]driver.Conn
	downUntil map[string]time.Time
	warned    map[int]bool // detection shard counts already warned about
}

func (r *shardReads) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, c := range r.conns {
		errs = append(errs, c.Close())
	}
	r.conns = nil
	return errors.Join(errs...)
}

// clusterLayout returns the cluster's layout, read from system.clusters at
// most layoutMaxAge ago (the last one read, for another layoutMaxAge, when
// reading it again fails).
func (s *Store) clusterLayout(ctx context.Context) (*clusterLayout, error) {
	r := &s.shards
	r.mu.Lock()
	l := r.layout
	r.mu.Unlock()
	if l != nil && time.Since(l.read) < layoutMaxAge {
		return l, nil
	}
	fresh, err := s.readLayout(ctx)
	if err != nil {
		if l == nil {
			return nil, err
		}
		// Keep the last layout for another layoutMaxAge (one warning a
		// minute while the connected node is away, not one a query).
		s.log.Warn("reading the cluster's shards; using the last layout read", "err", err)
		kept := *l
		kept.read = time.Now()
		r.mu.Lock()
		r.layout = &kept
		r.mu.Unlock()
		return &kept, nil
	}
	r.mu.Lock()
	r.layout = fresh
	r.mu.Unlock()
	return fresh, nil
}

func (s *Store) readLayout(ctx context.Context) (*clusterLayout, error) {
	rows, err := s.conn.Query(ctx, "SELECT shard_num, shard_weight, host_address, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", s.cfg.Cluster)
	if err != nil {
		return nil, fmt.Errorf("reading the shards of cluster %s: %w", s.cfg.Cluster, err)
	}
	defer rows.Close()
	l := &clusterLayout{read: time.Now()}
	last := uint32(0)
	for rows.Next() {
		var (
			shard, weight uint32
			host          string
			port          uint16
		)
		if err := rows.Scan(&shard, &weight, &host, &port); err != nil {
			return nil, fmt.Errorf("scanning the shards of cluster %s: %w", s.cfg.Cluster, err)
		}
		if shard != last || len(l.replicas) == 0 {
			l.replicas = append(l.replicas, nil)
			l.weights = append(l.weights, uint64(weight))
			l.total += uint64(weight)
			last = shard
		}
		i := len(l.replicas) - 1
		l.replicas[i] = append(l.replicas[i], net.JoinHostPort(host, strconv.Itoa(int(port))))
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(l.replicas) == 0 || l.total == 0 {
		return nil, fmt.Errorf("cluster %s: system.clusters lists no shard with a weight", s.cfg.Cluster)
	}
	return l, nil
}

// LocalShard returns the storage shard (0-based, system.clusters order)
// that stores every actor of detection shard sh, and true, when sh's
// detection queries read that shard's local tables: on a cluster, with sh
// hashing the sharding key (ShardByTenantActor) and the storage shards'
// total weight dividing sh.Count. Otherwise they read the Distributed
// tables (false).
func (s *Store) LocalShard(ctx context.Context, sh Shard) (int, bool, error) {
	shard, _, ok, err := s.localShard(ctx, sh)
	return shard, ok, err
}

func (s *Store) localShard(ctx context.Context, sh Shard) (int, *clusterLayout, bool, error) {
	if s.cfg.Cluster == "" || sh.Key != ShardByTenantActor || sh.Count <= 1 {
		return 0, nil, false, nil
	}
	l, err := s.clusterLayout(ctx)
	if err != nil {
		return 0, nil, false, err
	}
	if uint64(sh.Count)%l.total != 0 {
		r := &s.shards
		r.mu.Lock()
		warn := !r.warned[sh.Count]
		r.warned[sh.Count] = true
		r.mu.Unlock()
		if warn {
			s.log.Warn("detection shards do not map onto storage shards: their queries read every storage shard through the Distributed tables; set detect.shards to a multiple of the storage shards' total weight",
				"detect_shards", sh.Count, "storage_weight", l.total)
		}
		return 0, nil, false, nil
	}
	return l.shardOfSlot(uint64(sh.Index) % l.total), l, true, nil
}

// detectRead runs q, written over the Distributed tables, for detection
// shard sh: on its storage shard's local tables (readLocal) when it maps
// onto one, otherwise as it is on the connected node. scan reads the rows;
// reset, called before each attempt, forgets what a failed one scanned.
func (s *Store) detectRead(ctx context.Context, sh Shard, q string, args []any, reset func(), scan func(driver.Rows) error) error {
	shard, l, ok, err := s.localShard(ctx, sh)
	if err != nil {
		return err
	}
	if ok {
		return s.readLocal(ctx, l, shard, q, args, reset, scan)
	}
	reset()
	return queryRows(ctx, s.conn, q, args, scan)
}

// readLocal runs q with its sharded tables replaced by their local tables
// on a replica of storage shard shard: the first that answers, in
// system.clusters order, with a replica that failed in the last
// replicaDownFor tried last. A replica that cannot be reached (no
// connection, a broken one, no answer within the query timeout) is
// logged and the next one tried from the start; an error the server
// answers (a ClickHouse exception) is returned as it is.
func (s *Store) readLocal(ctx context.Context, l *clusterLayout, shard int, q string, args []any, reset func(), scan func(driver.Rows) error) error {
	lq := localSQL(q)
	var errs []error
	for _, addr := range s.replicaOrder(l.replicas[shard]) {
		conn, err := s.replicaConn(addr)
		if err == nil {
			reset()
			err = queryRows(ctx, conn, lq, args, scan)
			if err == nil {
				s.markReplica(addr, false)
				return nil
			}
		}
		if ctx.Err() != nil || !replicaUnreachable(err) {
			return err
		}
		s.markReplica(addr, true)
		s.log.Warn("reading a storage shard: replica unreachable, trying the next", "shard", shard+1, "replica", addr, "err", err)
		errs = append(errs, fmt.Errorf("replica %s: %w", addr, err))
	}
	return fmt.Errorf("no replica of storage shard %d answered: %w", shard+1, errors.Join(errs...))
}

// queryRows runs q on conn and hands the rows to scan.
func queryRows(ctx context.Context, conn driver.Conn, q string, args []any, scan func(driver.Rows) error) error {
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if err := scan(rows); err != nil {
		return err
	}
	return rows.Err()
}

// replicaUnreachable reports whether err says the replica did not answer
// (any error but an exception the server sent, or the caller's context
// ending).
func replicaUnreachable(err error) bool {
	var ex *clickhouse.Exception
	return !errors.As(err, &ex) && !errors.Is(err, context.Canceled)
}

// replicaOrder returns addrs with the replicas that failed in the last
// replicaDownFor moved to the end.
func (s *Store) replicaOrder(addrs []string) []string {
	r := &s.shards
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	out := make([]string, 0, len(addrs))
	var down []string
	for _, a := range addrs {
		if now.Before(r.downUntil[a]) {
			down = append(down, a)
			continue
		}
		out = append(out, a)
	}
	return append(out, down...)
}

func (s *Store) markReplica(addr string, down bool) {
	r := &s.shards
	r.mu.Lock()
	defer r.mu.Unlock()
	if down {
		r.downUntil[addr] = time.Now().Add(replicaDownFor)
		return
	}
	delete(r.downUntil, addr)
}

// replicaConn returns the pool of the replica at addr, opened at first use.
func (s *Store) replicaConn(addr string) (driver.Conn, error) {
	r := &s.shards
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.conns[addr]; ok {
		return c, nil
	}
	if r.conns == nil {
		return nil, errors.New("the store is closed")
	}
	c, err := s.replica(addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to replica %s: %w", addr, err)
	}
	r.conns[addr] = c
	return c, nil
}

// localSQL returns q with every sharded table it reads (FROM t) replaced
// by the table's local table.
func localSQL(q string) string {
	return clusterFromRe.ReplaceAllStringFunc(q, func(from string) string {
		t := clusterFromRe.FindStringSubmatch(from)[1]
		if _, ok := shardedTables[t]; !ok {
			return from
		}
		return "FROM " + t + localSuffix
	})
}

// ShardKey is what detection shards hash on this store: the storage
// sharding key (ShardByTenantActor) on a cluster, the actor id
// (ShardByActor) on one server, as before clusters existed (so a single
// server's shards and checkpoints stay as they were).
func (s *Store) ShardKey() ShardKey {
	if s.cfg.Cluster != "" {
		return ShardByTenantActor
	}
	return ShardByActor
}

// ShardLocalSQL returns the queries of shard-local reads as they run on a
// storage shard's replica (their sharded tables replaced by the local
// ones), for one-minute windows, 30-second windows (raw events) and the
// tenant-and-actor shard predicate, with their ? placeholders: for the
// check that current ClickHouse parses them (store/modern).
func ShardLocalSQL() []string {
	pred, _ := Shard{Index: 1, Count: 4, Key: ShardByTenantActor}.predicate()
	qs := []string{
		fmt.Sprintf(WindowAggregatesSQL, 60, 60, pred),
		fmt.Sprintf(WindowAggregatesRawSQL, 30, 30, pred),
		fmt.Sprintf(RecentSubjectsSQL, pred),
		fmt.Sprintf(SubjectBucketsSQL, 60, pred),
		fmt.Sprintf(DestinationWindowsSQL, 60, 60, pred),
		TopSubjectsSQL,
		SubjectsOutsideConversationSQL,
		SubjectsReadSQL,
	}
	for i, q := range qs {
		qs[i] = localSQL(q)
	}
	return qs
}
