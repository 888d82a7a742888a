package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// RetentionConfig says how long each class of table keeps its data. ClickHouse
// 18.16 has no TTL, so retention drops whole partitions on a schedule.
type RetentionConfig struct {
	// EventsDays covers raw events and everything derived from them
	// (event ids, the subject-ordered copy, per-minute aggregates) (default 90).
	EventsDays int `yaml:"events_days"`
	// DeadLettersDays covers the dead-letter records (default 30).
	DeadLettersDays int `yaml:"dead_letters_days"`
	// AlertsDays covers findings, alerts, their state changes and risk
	// scores (default 730).
	AlertsDays int `yaml:"alerts_days"`
	// AuditDays covers the audit trail (default 730).
	AuditDays int `yaml:"audit_days"`
	// AuditSeparately leaves audit_log alone: its partitions are dropped by
	// an administrator with a ClickHouse user of their own, because the
	// service user has no right to drop them (docs/security.md).
	AuditSeparately bool `yaml:"audit_separately"`
	// Interval is how often retention runs in serve (default 1h).
	Interval time.Duration `yaml:"interval"`
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

// retentionClass maps each partitioned table to its class. A partitioned
// table not listed here is never dropped (and Retain reports it).
var retentionClass = map[string]string{
	"events":            "events",
	"event_ids":         "events",
	"events_by_subject": "events",
	"actor_minute":      "events",
	"actor_hour":        "events",
	"dead_letters":      "dead_letters",
	"findings":          "alerts",
	"alerts":            "alerts",
	"alert_events":      "alerts",
	"actor_risk":        "alerts",
	"audit_log":         "audit",
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
	// Unmanaged lists partitioned tables that have no retention class.
	Unmanaged []string `json:"unmanaged,omitempty"`
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
	rows, err := s.conn.Query(ctx, `SELECT table, partition, sum(rows) FROM system.parts
WHERE database = ? AND active GROUP BY table, partition`, s.cfg.Database)
	if err != nil {
		return res, fmt.Errorf("listing partitions: %w", err)
	}
	type part struct {
		table, partition string
		rows             uint64
	}
	var parts []part
	unmanaged := map[string]bool{}
	for rows.Next() {
		var p part
		if err := rows.Scan(&p.table, &p.partition, &p.rows); err != nil {
			rows.Close()
			return res, err
		}
		if _, ok := partitionEnd(p.partition); !ok {
			continue // not time-partitioned (e.g. tuple())
		}
		class, ok := retentionClass[p.table]
		if !ok {
			unmanaged[p.table] = true
			continue
		}
		if class == "audit" && cfg.AuditSeparately {
			continue
		}
		parts = append(parts, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, err
	}
	sort.Slice(parts, func(i, j int) bool {
		return parts[i].table < parts[j].table || (parts[i].table == parts[j].table && parts[i].partition < parts[j].partition)
	})
	for _, p := range parts {
		end, _ := partitionEnd(p.partition)
		if !end.Before(now.Add(-cfg.maxAge(retentionClass[p.table]))) {
			continue
		}
		if !identRe.MatchString(p.table) {
			return res, fmt.Errorf("table name %q is not a plain identifier", p.table)
		}
		// The partition id is all digits (checked by partitionEnd) and
		// the table a known identifier: neither is user text.
		if err := s.exec(ctx, "ALTER TABLE "+p.table+" DROP PARTITION "+p.partition); err != nil {
			return res, fmt.Errorf("dropping partition %s of %s: %w", p.partition, p.table, err)
		}
		res.Dropped = append(res.Dropped, DroppedPartition{Table: p.table, Partition: p.partition, Rows: p.rows})
		s.log.Info("retention dropped partition", "table", p.table, "partition", p.partition, "rows", p.rows)
	}
	for t := range unmanaged {
		res.Unmanaged = append(res.Unmanaged, t)
	}
	sort.Strings(res.Unmanaged)
	return res, nil
}
