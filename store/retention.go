package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// RetentionConfig says how long each class of table keeps its data. ClickHouse
// 18.16 has no TTL, so retention drops whole partitions on a schedule.
type RetentionConfig struct {
	// EventsDays covers raw events and everything derived from them
	// (event ids, the subject-ordered copy, per-minute aggregates, detection
	// checkpoints but the latest of each shard) (default 90).
	EventsDays int `yaml:"events_days"`
	// DeadLettersDays covers the dead-letter records and the event-rule
	// batch markers of ingest (ingest_batches) (default 30).
	DeadLettersDays int `yaml:"dead_letters_days"`
	// AlertsDays covers findings, alerts, their state changes, Slack
	// messages, risk scores and ended suppressions (default 730).
	AlertsDays int `yaml:"alerts_days"`
	// AuditDays covers the audit trail and detection's tuning audit
	// (default 730).
	AuditDays int `yaml:"audit_days"`
	// AuditSeparately leaves audit_log alone: its partitions are dropped by
	// an administrator with a ClickHouse user of their own, because the
	// service user has no right to drop them (docs/security.md).
	AuditSeparately bool `yaml:"audit_separately"`
	// Interval is how often retention runs in serve (default 1h).
	Interval time.Duration `yaml:"interval"`
	// Progress, when set, is called after each expired partition is
	// dropped with how many are done of how many. Not configuration: the
	// CLI sets it to show a progress bar.
	Progress func(done, total int) `yaml:"-"`
}

// WithDefaults fills zero fields.
func (c RetentionConfig) WithDefaults() RetentionConfig {
	if c.EventsDays == 0 {
		c.EventsDays = 90
	}
	if c.DeadLettersDays == 0 {
		c.DeadLettersDays = 30
	}
	if c.AlertsDays == 0 {
		c.AlertsDays = 730
	}
	if c.AuditDays == 0 {
		c.AuditDays = 730
	}
	if c.Interval == 0 {
		c.Interval = time.Hour
	}
	return c
}

// Validate names the first bad field.
func (c RetentionConfig) Validate() error {
	c = c.WithDefaults()
	for name, v := range map[string]int{"events_days": c.EventsDays, "dead_letters_days": c.DeadLettersDays,
		"alerts_days": c.AlertsDays, "audit_days": c.AuditDays} {
		if v < 1 {
			return fmt.Errorf("retention.%s: %d must be at least 1", name, v)
		}
	}
	if c.AlertsDays < c.EventsDays || c.AuditDays < c.EventsDays {
		return fmt.Errorf("retention.alerts_days and retention.audit_days must be at least retention.events_days (%d)", c.EventsDays)
	}
	if c.Interval < time.Minute {
		return fmt.Errorf("retention.interval: %s is shorter than 1m", c.Interval)
	}
	return nil
}

// tablePolicy is how one table's old rows go.
type tablePolicy struct {
	// class picks the age limit: events, dead_letters, alerts or audit.
	class string
	// rows is empty for a table whose whole partitions are dropped.
	// Otherwise the table has no time partition (or its rows of one thing
	// span partitions) and old rows are removed with ALTER TABLE ... DELETE
	// WHERE rows; every ? in rows is bound to the cutoff time.
	rows string
}

// retentionPolicy gives every table of the schema, except the exempt ones,
// its retention. TestEveryTableHasRetention reads the migrations and fails
// on a table that is in neither map, or on a name that is no table.
var retentionPolicy = map[string]tablePolicy{
	"events":               {class: "events"},
	"event_ids":            {class: "events"},
	"events_by_subject":    {class: "events"},
	"actor_minute":         {class: "events"},
	"actor_hour":           {class: "events"},
	"events_by_hour":       {class: "events"},
	"vendor_actor_hour":    {class: "events"},
	"actor_minute_exports": {class: "events"},
	"shares":               {class: "events"},
	// A checkpoint older than the events cannot be back-filled from; the
	// latest of each shard stays whatever its age.
	"detect_checkpoints": {class: "events", rows: "as_of < ? AND (shards, shard, as_of) NOT IN " +
		"(SELECT shards, shard, max(as_of) FROM detect_checkpoints GROUP BY shards, shard)"},
	"dead_letters": {class: "dead_letters"},
	// ingest's batch markers: a redelivery older than a month is not
	// expected (Kafka's retention is shorter).
	"ingest_batches": {class: "dead_letters"},
	"findings":       {class: "alerts"},
	"actor_risk":     {class: "alerts"},
	"alert_changes":  {class: "alerts"},
	// Alerts and their Slack messages are versioned rows read with argMax:
	// all versions of one go together, once its last version is older
	// than the cutoff (a time partition would split them).
	"alerts":         {class: "alerts", rows: "id IN (SELECT id FROM alerts GROUP BY id HAVING max(updated_at) < ? AND max(last_seen) < ?)"},
	"alert_messages": {class: "alerts", rows: "id IN (SELECT id FROM alert_messages GROUP BY id HAVING max(updated_at) < ?)"},
	// A suppression goes when it ended (expired) before the cutoff, or
	// was lifted and created before it; one that never expires and is in
	// force stays.
	"suppressions": {class: "alerts", rows: "id IN (SELECT id FROM suppressions GROUP BY id HAVING " +
		"(argMax(until, version) > toDateTime(0) AND argMax(until, version) < ?) OR (argMax(deleted, version) = 1 AND max(created_at) < ?))"},
	"audit_log":    {class: "audit"},
	"detect_audit": {class: "audit"},
}

// retentionExempt lists the tables retention never touches, with the reason.
var retentionExempt = map[string]string{
	"consents": "the current consent register, not history: ReplacingMergeTree keeps one row per (tenant, customer, purpose) " +
		"after merges, and a withdrawal must be enforced until the customer decides again, however old it is",
	"schema_migrations": "the schema's own version record: a few rows, one per migration",
}

// RetentionPolicy describes every table's retention for documentation and
// tests: "class" (partitions dropped), "class, rows" (ALTER DELETE) or
// "exempt: reason".
func RetentionPolicy() map[string]string {
	out := map[string]string{}
	for t, p := range retentionPolicy {
		out[t] = p.class
		if p.rows != "" {
			out[t] += ", rows"
		}
	}
	for t, why := range retentionExempt {
		out[t] = "exempt: " + why
	}
	return out
}

func (c RetentionConfig) maxAge(class string) time.Duration {
	c = c.WithDefaults()
	days := map[string]int{"events": c.EventsDays, "dead_letters": c.DeadLettersDays, "alerts": c.AlertsDays, "audit": c.AuditDays}[class]
	return time.Duration(days) * 24 * time.Hour
}

// DroppedPartition is one partition that retention removed.
type DroppedPartition struct {
	Table     string `json:"table"`
	Partition string `json:"partition"`
	Rows      uint64 `json:"rows"`
}

// RetentionResult says what a retention run did.
type RetentionResult struct {
	Dropped []DroppedPartition `json:"dropped"`
	// Deleted lists the row deletions (mutations) retention started.
	Deleted []DeletedRows `json:"deleted,omitempty"`
	// Unmanaged lists partitioned tables that have no retention class.
	Unmanaged []string `json:"unmanaged,omitempty"`
}

// DeletedRows is one ALTER TABLE ... DELETE that retention started: the
// rows of Table older than Before (by the table's policy). ClickHouse
// applies it in the background.
type DeletedRows struct {
	Table  string    `json:"table"`
	Before time.Time `json:"before"`
	Rows   uint64    `json:"rows"`
}

// partitionEnd returns the first instant after a partition of a
// toYYYYMMDD (8 digits) or toYYYYMM (6 digits) key; ok is false for any
// other partition form.
func partitionEnd(p string) (time.Time, bool) {
	if _, err := strconv.Atoi(p); err != nil {
		return time.Time{}, false
	}
	switch len(p) {
	case 8:
		d, err := time.Parse("20060102", p)
		return d.AddDate(0, 0, 1), err == nil
	case 6:
		d, err := time.Parse("200601", p)
		return d.AddDate(0, 1, 0), err == nil
	}
	return time.Time{}, false
}

// Retain drops every partition whose whole time span is older than its
// table's retention at now. It is idempotent. Each drop is recorded in the
// audit trail by the caller from the returned result.
func (s *Store) Retain(ctx context.Context, cfg RetentionConfig, now time.Time) (RetentionResult, error) {
	var res RetentionResult
	all, err := s.partitions(ctx)
	if err != nil {
		return res, err
	}
	var parts []part
	unmanaged := map[string]bool{}
	for _, p := range all {
		if _, ok := partitionEnd(p.partition); !ok {
			continue // not time-partitioned (e.g. tuple())
		}
		pol, ok := retentionPolicy[p.table]
		if !ok {
			if _, exempt := retentionExempt[p.table]; !exempt {
				unmanaged[p.table] = true
			}
			continue
		}
		if pol.rows != "" || p.table == "audit_log" && cfg.AuditSeparately {
			continue
		}
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool {
		return parts[i].table < parts[j].table || (parts[i].table == parts[j].table && parts[i].partition < parts[j].partition)
	})
	expired := parts[:0]
	for _, p := range parts {
		if end, _ := partitionEnd(p.partition); end.Before(now.Add(-cfg.maxAge(retentionPolicy[p.table].class))) {
			expired = append(expired, p)
		}
	}
	for i, p := range expired {
		if !identRe.MatchString(p.table) {
			return res, fmt.Errorf("table name %q is not a plain identifier", p.table)
		}
		// The partition id is all digits (checked by partitionEnd) and
		// the table a known identifier: neither is user text.
		stmt, perShard := dropPartitionSQL(s.cfg.Cluster, s.cfg.Database, p.table, p.partition)
		if perShard {
			err = s.oncePerShard(ctx, p.table+localSuffix, stmt)
		} else {
			err = s.exec(ctx, stmt)
		}
		if err != nil {
			return res, fmt.Errorf("dropping partition %s of %s: %w", p.partition, p.table, err)
		}
		if !perShard && s.cfg.Cluster != "" {
			s.syncReplica(ctx, p.table)
		}
		res.Dropped = append(res.Dropped, DroppedPartition{Table: p.table, Partition: p.partition, Rows: p.rows})
		s.log.Info("retention dropped partition", "table", p.table, "partition", p.partition, "rows", p.rows)
		if cfg.Progress != nil {
			cfg.Progress(i+1, len(expired))
		}
	}
	if err := s.retainRows(ctx, cfg, now, &res); err != nil {
		return res, err
	}
	for t := range unmanaged {
		res.Unmanaged = append(res.Unmanaged, t)
	}
	sort.Strings(res.Unmanaged)
	return res, nil
}

// part is the rows of one partition of a table, by the table's name in the
// schema (events, not events_local).
type part struct {
	table, partition string
	rows             uint64
}

// partitions lists the active partitions of the database's tables. On a
// cluster it reads this node's copy of the tables that every node
// replicates, and the sharded tables' local tables on one replica of each
// shard (the cluster table function), summing a partition's rows over the
// shards.
func (s *Store) partitions(ctx context.Context) ([]part, error) {
	queries := partitionsSQL(s.cfg.Cluster)
	var out []part
	for _, query := range queries {
		rows, err := s.conn.Query(ctx, query, s.cfg.Database)
		if err != nil {
			return nil, fmt.Errorf("listing partitions: %w", err)
		}
		for rows.Next() {
			var p part
			if err := rows.Scan(&p.table, &p.partition, &p.rows); err != nil {
				rows.Close()
				return nil, err
			}
			if base, ok := strings.CutSuffix(p.table, localSuffix); ok && s.cfg.Cluster != "" {
				if _, sharded := shardedTables[base]; sharded {
					p.table = base
				}
			}
			out = append(out, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("listing partitions: %w", err)
		}
	}
	return out, nil
}

// partitionsSQL returns the queries that list the active partitions of a
// database (bound to its name) on one server (cluster "") or on a cluster.
func partitionsSQL(cluster string) []string {
	const q = `SELECT table, partition, sum(rows) FROM %s WHERE database = ? AND active%s GROUP BY table, partition`
	if cluster == "" {
		return []string{fmt.Sprintf(q, "system.parts", "")}
	}
	locals := make([]string, 0, len(shardedTables))
	for t := range shardedTables {
		locals = append(locals, "'"+t+localSuffix+"'")
	}
	sort.Strings(locals)
	list := " (" + strings.Join(locals, ", ") + ")"
	// The cluster name is an identifier (Config.Validate) and the table
	// names constants: no user text.
	return []string{
		fmt.Sprintf(q, "system.parts", " AND table NOT IN"+list),
		fmt.Sprintf(q, "cluster('"+cluster+"', system, parts)", " AND table IN"+list),
	}
}

// dropPartitionSQL returns the statement that drops one partition of table
// (its name in the schema) and whether it runs once on each shard. On a
// cluster a sharded table's partition goes from its local table on one
// replica of each shard, without ON CLUSTER (oncePerShard: 18.16's
// DDLWorker can run an ALTER ON CLUSTER of a replicated table on both
// replicas of a shard and then stop); each shard's other replicas follow
// through ZooKeeper. A table that every node replicates drops it
// everywhere by itself.
func dropPartitionSQL(cluster, db, table, partition string) (stmt string, perShard bool) {
	if _, sharded := shardedTables[table]; sharded && cluster != "" {
		return "ALTER TABLE " + db + "." + table + localSuffix + " DROP PARTITION " + partition, true
	}
	return "ALTER TABLE " + table + " DROP PARTITION " + partition, false
}

// syncWait bounds how long retention waits for this node's replica to apply
// a partition drop (syncReplica).
const syncWait = 30 * time.Second

// syncReplica waits, at most syncWait, until this node's replica of table (a
// table every node replicates) has applied its replication queue. 18.16
// sends a replicated table's DROP PARTITION to the shard's leader replica,
// which waits only for itself: without this, this node could still serve
// the dropped rows (and list the partition to the next retention run) for
// as long as its queue lags. A replica that does not catch up in time is
// logged, not an error: the drop is in ZooKeeper and it follows.
func (s *Store) syncReplica(ctx context.Context, table string) {
	ctx, cancel := context.WithTimeout(ctx, syncWait)
	defer cancel()
	if err := s.exec(ctx, "SYSTEM SYNC REPLICA "+s.cfg.Database+"."+table); err != nil {
		s.log.Warn("retention: this node's replica has not applied the drop yet", "table", table, "err", err)
	}
}

// ClusterMaintenanceSQL returns, for the SQL conformance check, the
// statements that only a cluster runs besides its migrations (retention's
// partition listing and a sharded partition's drop), for cluster and db.
func ClusterMaintenanceSQL(cluster, db string) []string {
	drop, _ := dropPartitionSQL(cluster, db, "events", "20260101")
	return append(partitionsSQL(cluster), drop)
}

// retainRows starts an ALTER TABLE ... DELETE on every row-policy table that
// has rows past its cutoff, unless a mutation of that table is still
// running (the next run catches up).
func (s *Store) retainRows(ctx context.Context, cfg RetentionConfig, now time.Time, res *RetentionResult) error {
	tables := make([]string, 0, len(retentionPolicy))
	for t, p := range retentionPolicy {
		if p.rows != "" {
			tables = append(tables, t)
		}
	}
	sort.Strings(tables)
	for _, t := range tables {
		p := retentionPolicy[t]
		cutoff := now.Add(-cfg.maxAge(p.class)).UTC().Truncate(time.Second)
		args := make([]any, strings.Count(p.rows, "?"))
		for i := range args {
			args[i] = cutoff
		}
		var n uint64
		if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+t+" WHERE "+p.rows, args...).Scan(&n); err != nil {
			return fmt.Errorf("counting expired rows of %s: %w", t, err)
		}
		if n == 0 {
			continue
		}
		var pending uint64
		if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND table = ? AND is_done = 0",
			s.cfg.Database, t).Scan(&pending); err != nil {
			return fmt.Errorf("reading the mutations of %s: %w", t, err)
		}
		if pending > 0 {
			continue
		}
		// t is a key of retentionPolicy and rows a constant of it: no user
		// text reaches the statement; the cutoff is bound.
		if err := s.exec(ctx, "ALTER TABLE "+t+" DELETE WHERE "+p.rows, args...); err != nil {
			return fmt.Errorf("deleting expired rows of %s: %w", t, err)
		}
		res.Deleted = append(res.Deleted, DeletedRows{Table: t, Before: cutoff, Rows: n})
		s.log.Info("retention deleting rows", "table", t, "before", cutoff, "rows", n)
	}
	return nil
}
