package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// grafanaTestDB is the one database besides chatwarden that the stack's
// Grafana user may read (scripts/stack.sh, write_clickhouse_users): 18.16
// lists allowed databases by name, so the test cannot use a random one.
const grafanaTestDB = "chatwarden_grafana_test"

// grafanaLogin is the read-only user scripts/stack.sh creates for Grafana.
func grafanaLogin() (user, password string) {
	user, password = os.Getenv("CHATWARDEN_CH_GRAFANA_USER"), os.Getenv("CHATWARDEN_CH_GRAFANA_PASSWORD")
	if user == "" {
		user = "grafana"
	}
	if password == "" {
		password = "grafana-readonly"
	}
	return user, password
}

// The payloads a Grafana viewer can type into (or put in the URL of) the
// tenant variable. Each is a tenant name nobody has: rendered safely, a panel
// must run and show nothing.
var injectionPayloads = []string{
	`x' OR 1=1 --`,
	`x' = 'x' OR 1=1) --`,
	`\' OR 1=1) --`, // defeats ${tenant:singlequote}: its \' meets ClickHouse's \\
	`x' = 'y') GROUP BY store UNION ALL SELECT name AS store, count() AS events FROM system.tables --`,
	`' UNION ALL SELECT actor_id FROM events WHERE tenant = 'secret-tenant' --`,
	"x'\nOR 1=1 --",
	`x'; DROP TABLE events; --`,
}

// secretMarkers identify the other tenant's rows: any of them in a panel's
// output for another tenant, or for a payload, is a leak.
var secretMarkers = []string{"secret-tenant", "secret-actor"}

// lockGrafanaDB serialises the test across processes on this machine (two
// engineers' `go test` runs share the stack and the fixed database).
func lockGrafanaDB(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "chatwarden-"+grafanaTestDB+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}

// grafanaInjectionData fills s with two tenants: retail (the viewer's) and
// secret-tenant, whose rows must never show through another tenant's panels.
func grafanaInjectionData(t *testing.T, s *store.Store) {
	t.Helper()
	ctx := t.Context()
	base := testNow.Add(-10 * time.Hour).Truncate(time.Hour)
	var evs []models.Event
	for i := range 30 {
		for _, who := range []struct{ tenant, actor, vendor string }{{"retail", "agent-17", ""}, {"secret-tenant", "secret-actor", "secret-vendor"}} {
			typ := models.ActorHuman
			if who.vendor != "" {
				typ = models.ActorVendor
			}
			evs = append(evs, models.Event{EventID: fmt.Sprintf("%s-%d", who.tenant, i), TS: base.Add(time.Duration(i) * time.Minute), Tenant: who.tenant,
				Actor: models.Actor{ID: who.actor, Type: typ, Role: "support", Vendor: who.vendor}, Action: models.ActionExport, Store: "payments",
				Resource: models.Resource{Type: "payment_method"}, SubjectID: fmt.Sprintf("subj-%d", i), Records: 3, Fields: []string{"payment"},
				Purpose: "support", Result: models.ResultDenied})
		}
	}
	if err := s.InsertEvents(ctx, evs, testNow); err != nil {
		t.Fatal(err)
	}
	var alerts []store.AlertRow
	var changes []store.AlertChange
	var findings []store.StoredFinding
	var risks []store.ActorRisk
	for _, who := range []struct{ tenant, actor string }{{"retail", "agent-17"}, {"secret-tenant", "secret-actor"}} {
		id := "al-" + who.actor
		f := models.Finding{Detector: "consent_withdrawn", Tenant: who.tenant, ActorID: who.actor, WindowStart: base, WindowEnd: base.Add(time.Minute),
			DetectedAt: base.Add(time.Minute), Severity: models.SeverityHigh, Summary: who.actor + " read withdrawn data"}
		alerts = append(alerts, store.AlertRow{Version: 1, Alert: models.Alert{ID: id, Fingerprint: "fp-" + who.actor, Detector: f.Detector, Tenant: who.tenant,
			ActorID: who.actor, Severity: models.SeverityHigh, Status: models.StatusOpen, FirstSeen: base, LastSeen: base.Add(time.Minute), Findings: 1,
			UpdatedAt: base, Latest: f}})
		changes = append(changes, store.AlertChange{AlertID: id, At: base.Add(20 * time.Minute), Status: models.StatusAcknowledged, Previous: models.StatusOpen,
			By: "sam", Tenant: who.tenant, ActorID: who.actor, Detector: f.Detector, Severity: models.SeverityHigh})
		findings = append(findings, store.StoredFinding{Finding: f})
		risks = append(risks, store.ActorRisk{TS: base.Add(time.Hour), Tenant: who.tenant, ActorID: who.actor, ActorType: "human", Score: 7,
			Findings: 1, TopDetector: f.Detector, MaxSeverity: models.SeverityHigh})
	}
	if err := s.PutAlerts(ctx, alerts); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAlertChanges(ctx, changes); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertFindings(ctx, findings); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertActorRisk(ctx, risks); err != nil {
		t.Fatal(err)
	}
}

// leakCheck renders sql (a panel's, or a deliberately vulnerable one) with
// tenant set to each payload and runs it as Grafana's read-only user. It
// returns what went wrong: a payload that changed the query's syntax (an
// error), or any row at all (no tenant is named like a payload, so every row
// is a leak).
func leakCheck(ctx context.Context, t *testing.T, p *store.Probe, sql string) []string {
	t.Helper()
	var problems []string
	for _, payload := range injectionPayloads {
		q := grafanaRender(t, sql, testNow.Add(-14*24*time.Hour), testNow, time.Hour, map[string]string{"tenant": payload})
		_, rows, err := p.Query(ctx, q)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("payload %q changed the query: %v", payload, err))
		case len(rows) > 0:
			problems = append(problems, fmt.Sprintf("payload %q returned %d rows, e.g. %v", payload, len(rows), rows[0]))
		}
	}
	return problems
}

// TestGrafanaInjection renders every panel of the shipped Grafana dashboards
// as Grafana would, with SQL-injection payloads in the tenant variable, and
// runs it against the real ClickHouse as the read-only user the stack creates
// for Grafana: nothing leaks, the filter still separates tenants, and the
// user cannot write, drop or read another database (docs/security.md,
// "Grafana").
func TestGrafanaInjection(t *testing.T) {
	t.Parallel() // a database of its own
	lockGrafanaDB(t)
	ctx := t.Context()
	addr := storetest.Addr()
	if s, err := store.Open(ctx, store.Config{Addr: addr, Database: grafanaTestDB}, nil); err != nil {
		t.Fatalf("clickhouse at %s is required (start it with `make stack`): %v", addr, err)
	} else {
		// A run that was killed leaves its rows; start clean.
		if err := s.DropDatabase(ctx); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	s := storetest.Open(t, store.Config{Addr: addr, Database: grafanaTestDB, LogQueries: true})
	grafanaInjectionData(t, s)

	user, password := grafanaLogin()
	p, err := store.OpenProbe(ctx, store.Config{Addr: addr, Database: grafanaTestDB, User: user, Password: password})
	if err != nil {
		t.Fatalf("the Grafana read-only user %q cannot log in (run scripts/stack.sh up, which creates it): %v", user, err)
	}
	t.Cleanup(func() { p.Close() })

	t.Run("the check catches a vulnerable panel", func(t *testing.T) {
		// The panels as they shipped before: the textbox value pasted
		// into a string literal. And Grafana's singlequote format,
		// which a backslash defeats on ClickHouse.
		for _, tc := range []struct{ sql, leaks string }{
			{"SELECT store, count() AS events\nFROM events\nWHERE $__timeFilter(ts) AND ('${tenant}' = '' OR tenant = '${tenant}')\nGROUP BY store ORDER BY events DESC",
				"x' = 'x' OR 1=1) --"},
			{"SELECT store, count() AS events\nFROM events\nWHERE $__timeFilter(ts) AND ('${tenant}' = '' OR tenant = '${tenant}')\nGROUP BY store ORDER BY events DESC",
				"x' = 'y') GROUP BY store UNION ALL SELECT name AS store, count() AS events FROM system.tables --"},
			{"SELECT store, count() AS events\nFROM events\nWHERE $__timeFilter(ts) AND (tenant = ${tenant:singlequote} OR ${tenant:singlequote} = '')\nGROUP BY store ORDER BY events DESC",
				`\' OR 1=1) --`},
		} {
			want := fmt.Sprintf("payload %q returned", tc.leaks)
			if problems := strings.Join(leakCheck(ctx, t, p, tc.sql), "\n"); !strings.Contains(problems, want) {
				t.Errorf("leakCheck did not report %s for\n%s\ngot:\n%s", want, tc.sql, problems)
			}
		}
	})

	files, err := filepath.Glob("grafana/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("grafana dashboards: %v %v", files, err)
	}
	panelsWithRows := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var d grafanaDashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, v := range d.Templating.List {
			if v.Name != "tenant" {
				continue
			}
			t.Run(filepath.Base(file)+"/tenant variable", func(t *testing.T) {
				if v.Type != "query" || !v.IncludeAll || v.AllValue != "__all__" {
					t.Fatalf("tenant variable: type %q includeAll %v allValue %q, want a query variable with includeAll and allValue __all__", v.Type, v.IncludeAll, v.AllValue)
				}
				q := grafanaRender(t, v.Query, testNow.Add(-14*24*time.Hour), testNow, time.Hour, nil)
				_, rows, err := p.Query(ctx, q)
				if err != nil {
					t.Fatalf("%v\n%s", err, q)
				}
				if fmt.Sprint(rows) != "[[retail] [secret-tenant]]" {
					t.Errorf("tenant options %v, want retail and secret-tenant", rows)
				}
			})
		}
		for _, panel := range d.Panels {
			for _, tg := range panel.Targets {
				if !strings.Contains(tg.RawSQL, "tenant") {
					continue
				}
				t.Run(filepath.Base(file)+"/"+panel.Title, func(t *testing.T) {
					for _, problem := range leakCheck(ctx, t, p, tg.RawSQL) {
						t.Error(problem)
					}
					q := grafanaRender(t, tg.RawSQL, testNow.Add(-14*24*time.Hour), testNow, time.Hour, map[string]string{"tenant": "retail"})
					_, rows, err := p.Query(ctx, q)
					if err != nil {
						t.Fatalf("tenant retail: %v\n%s", err, q)
					}
					if len(rows) > 0 {
						panelsWithRows++
					}
					for _, row := range rows {
						for _, cell := range row {
							for _, m := range secretMarkers {
								if strings.Contains(cell, m) {
									t.Errorf("tenant retail shows the other tenant's %q: %v", m, row)
								}
							}
						}
					}
				})
			}
		}
	}
	if panelsWithRows < 10 {
		t.Errorf("only %d panels showed rows for tenant retail: the leak checks above prove little on empty tables", panelsWithRows)
	}

	t.Run("read-only user", func(t *testing.T) {
		for _, stmt := range []string{
			"INSERT INTO events (event_id, tenant) VALUES ('forged', 'retail')",
			"DROP TABLE audit_log",
			"ALTER TABLE audit_log DROP PARTITION 202611",
			"CREATE TABLE grafana_made (x UInt8) ENGINE = Memory",
			"SET readonly = 0",
		} {
			if err := p.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "readonly") {
				t.Errorf("%s: %v, want refused in readonly mode", stmt, err)
			}
		}
		other := storetest.New(t)
		if _, _, err := p.Query(ctx, "SELECT count() FROM "+other.Database()+".events"); err == nil || !strings.Contains(err.Error(), "Access denied") {
			t.Errorf("reading another database: %v, want access denied", err)
		}
		_, rows, err := p.Query(ctx, "SELECT count() FROM events")
		if err != nil || fmt.Sprint(rows) != "[[60]]" {
			t.Errorf("events after the attempted writes: %v %v, want 60", rows, err)
		}
	})
}
