package store_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestEveryTableHasRetention reads the migrations: every table they create
// is in a retention class or exempt with a reason, every name retention
// knows is a table, and a table whose partitions are dropped has a
// partition key (else nothing would ever expire).
func TestEveryTableHasRetention(t *testing.T) {
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	createRe := regexp.MustCompile(`(?i)^CREATE TABLE IF NOT EXISTS (\w+)`)
	ddl := map[string]string{}
	for _, stmt := range append([]string{store.SchemaMigrationsDDL}, func() (ss []string) {
		for _, m := range ms {
			ss = append(ss, m.Statements...)
		}
		return ss
	}()...) {
		if m := createRe.FindStringSubmatch(strings.TrimSpace(stmt)); m != nil {
			ddl[m[1]] = stmt
		}
	}
	gone, err := store.Dropped()
	if err != nil {
		t.Fatal(err)
	}
	for tbl := range gone {
		delete(ddl, tbl) // a later migration drops it
	}
	if len(ddl) < 10 {
		t.Fatalf("found only %d tables in the migrations: %v", len(ddl), ddl)
	}
	policy := store.RetentionPolicy()
	for tbl, stmt := range ddl {
		p, ok := policy[tbl]
		switch {
		case !ok:
			t.Errorf("table %s is in no retention class and not exempt (store/retention.go)", tbl)
		case strings.HasPrefix(p, "exempt: "):
			if len(strings.TrimPrefix(p, "exempt: ")) < 20 {
				t.Errorf("table %s is exempt without a reason: %q", tbl, p)
			}
		case !strings.HasSuffix(p, ", rows") && !strings.Contains(strings.ToUpper(stmt), "PARTITION BY"):
			t.Errorf("table %s has class %s (partitions dropped) but no partition key", tbl, p)
		}
	}
	for tbl := range policy {
		if _, ok := ddl[tbl]; !ok {
			t.Errorf("retention names %s, which no migration creates", tbl)
		}
	}
}

// TestRetentionCoversAlertTables: the alert tables, detection's audit and
// checkpoints and ended suppressions expire; what is still alive or in
// force stays.
func TestRetentionCoversAlertTables(t *testing.T) {
	t.Parallel() // a database of its own
	cfg := storetest.Config(t)
	s := storetest.Open(t, cfg)
	ctx := t.Context()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	old, fresh := now.AddDate(0, 0, -400), now.AddDate(0, 0, -5)
	alert := func(id string, first, last time.Time, v uint64) store.AlertRow {
		return store.AlertRow{Version: v, Alert: models.Alert{ID: id, Fingerprint: id, Detector: "volume", Tenant: "t", ActorID: "a",
			Severity: models.SeverityHigh, Status: models.StatusOpen, FirstSeen: first, LastSeen: last, UpdatedAt: last}}
	}
	// "old" lived and ended 400 days ago; "long" opened 400 days ago and
	// is still updated: none of its versions may go.
	if err := s.PutAlerts(ctx, []store.AlertRow{alert("old", old, old, 1), alert("old", old, old.Add(time.Hour), 2),
		alert("long", old, old, 1), alert("long", old, fresh, 2)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAlertChanges(ctx, []store.AlertChange{{AlertID: "old", At: old, Status: models.StatusOpen},
		{AlertID: "long", At: fresh, Status: models.StatusAcknowledged}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAlertMessages(ctx, []store.AlertMessage{{ID: "m-old", Version: 1, Kind: "group", CreatedAt: old, UpdatedAt: old},
		{ID: "m-fresh", Version: 1, Kind: "group", CreatedAt: old, UpdatedAt: fresh}}); err != nil {
		t.Fatal(err)
	}
	for _, sp := range []models.Suppression{
		{ID: "expired", Kind: models.SuppressSilence, CreatedAt: old, Until: old.AddDate(0, 0, 1), Author: "x", Reason: "r"},
		{ID: "forever", Kind: models.SuppressAllow, CreatedAt: old, Author: "x", Reason: "r"},
		{ID: "current", Kind: models.SuppressSilence, CreatedAt: fresh, Until: now.AddDate(0, 0, 1), Author: "x", Reason: "r"},
	} {
		if err := s.PutSuppression(ctx, sp, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.InsertDetectAudit(ctx, old, "config", "x", "volume", "threshold 3"); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertDetectAudit(ctx, fresh, "config", "x", "volume", "threshold 4"); err != nil {
		t.Fatal(err)
	}
	one := store.Shard{Index: 0, Count: 1}
	for _, c := range []store.Checkpoint{{Shard: one, AsOf: old}, {Shard: one, AsOf: old.Add(time.Hour)}, {Shard: store.Shard{Index: 1, Count: 2}, AsOf: old}, {Shard: one, AsOf: fresh}} {
		c.CreatedAt = c.AsOf
		if err := s.PutCheckpoint(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	rc := store.RetentionConfig{EventsDays: 30, DeadLettersDays: 30, AlertsDays: 365, AuditDays: 365}
	res, err := s.Retain(ctx, rc, now)
	if err != nil {
		t.Fatal(err)
	}
	storetest.WaitMutations(t, cfg)
	count := func(q string, args ...any) uint64 { return storetest.Count(t, cfg, q, args...) }
	for _, c := range []struct {
		what string
		got  uint64
		want uint64
	}{
		{"versions of the ended alert", count("SELECT count() FROM alerts WHERE id = 'old'"), 0},
		{"versions of the alert still alive", count("SELECT count() FROM alerts WHERE id = 'long'"), 2},
		{"old alert changes", count("SELECT count() FROM alert_changes WHERE alert_id = 'old'"), 0},
		{"fresh alert changes", count("SELECT count() FROM alert_changes WHERE alert_id = 'long'"), 1},
		{"old Slack message", count("SELECT count() FROM alert_messages WHERE id = 'm-old'"), 0},
		{"updated Slack message", count("SELECT count() FROM alert_messages WHERE id = 'm-fresh'"), 1},
		{"long-expired silence", count("SELECT count() FROM suppressions WHERE id = 'expired'"), 0},
		{"allow-list entry without expiry", count("SELECT count() FROM suppressions WHERE id = 'forever'"), 1},
		{"current silence", count("SELECT count() FROM suppressions WHERE id = 'current'"), 1},
		{"old detect audit", count("SELECT count() FROM detect_audit WHERE ts < ?", now.AddDate(0, 0, -365)), 0},
		{"fresh detect audit", count("SELECT count() FROM detect_audit"), 1},
		{"checkpoints of shard 0/1 (the latest stays)", count("SELECT count() FROM detect_checkpoints WHERE shards = 1"), 1},
		{"old but latest checkpoint of shard 1/2", count("SELECT count() FROM detect_checkpoints WHERE shards = 2"), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d rows after retention, want %d", c.what, c.got, c.want)
		}
	}
	deleted := map[string]uint64{}
	for _, d := range res.Deleted {
		deleted[d.Table] = d.Rows
	}
	if deleted["alerts"] != 2 || deleted["alert_messages"] != 1 || deleted["suppressions"] != 1 || deleted["detect_checkpoints"] != 2 {
		t.Errorf("reported deletions %+v", res.Deleted)
	}
	if len(res.Unmanaged) != 0 {
		t.Errorf("unmanaged tables: %v", res.Unmanaged)
	}
	again, err := s.Retain(ctx, rc, now)
	if err != nil || len(again.Deleted) != 0 || len(again.Dropped) != 0 {
		t.Fatalf("second run: %+v, %v; want nothing (idempotent)", again, err)
	}

	t.Run("audit_separately leaves audit_log to the administrator", func(t *testing.T) {
		if err := s.InsertAudit(ctx, store.AuditEntry{TS: old, User: "ana", Action: "history"}); err != nil {
			t.Fatal(err)
		}
		sep := rc
		sep.AuditSeparately = true
		res, err := s.Retain(ctx, sep, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range res.Dropped {
			if d.Table == "audit_log" {
				t.Fatalf("dropped %+v with audit_separately", d)
			}
		}
		if n := count("SELECT count() FROM audit_log WHERE ts < ?", now.AddDate(0, 0, -365)); n != 1 {
			t.Fatalf("old audit rows after retention with audit_separately: %d", n)
		}
	})
}
