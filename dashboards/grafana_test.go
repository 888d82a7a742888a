package dashboards

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

type grafanaDashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Refresh    string `json:"refresh"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      string `json:"query"`
			IncludeAll bool   `json:"includeAll"`
			AllValue   string `json:"allValue"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title       string `json:"title"`
		Type        string `json:"type"`
		FieldConfig struct {
			Defaults struct {
				Unit string `json:"unit"`
			} `json:"defaults"`
		} `json:"fieldConfig"`
		Datasource struct {
			Type string `json:"type"`
		} `json:"datasource"`
		Targets []struct {
			RawSQL string `json:"rawSql"`
			// Format is the ClickHouse plugin's 0 (time series) or 1
			// (table); Prometheus targets say "table" or "time_series".
			Format any `json:"format"`
		} `json:"targets"`
	} `json:"panels"`
}

var timeFilter = regexp.MustCompile(`\$__timeFilter\((\w+)\)`)

// TestGrafanaPanelsRun executes every panel's SQL against the real
// ClickHouse, with data in every table the panels read.
func TestGrafanaPanelsRun(t *testing.T) {
	t.Parallel() // a database of its own
	f := newFixture(t, Config{})
	ctx := t.Context()
	if err := f.store.PutAlertChanges(ctx, []store.AlertChange{{AlertID: "al-crit", At: testNow.Add(-9 * time.Hour), Status: models.StatusAcknowledged,
		Previous: models.StatusOpen, By: "sam", Tenant: "retail", ActorID: "agent-17", Detector: "enumeration", Severity: models.SeverityCritical}}); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("grafana/*.json")
	if err != nil || len(files) != 4 {
		t.Fatalf("grafana dashboards: %v %v", files, err)
	}
	panels, clickhouseBoards := 0, 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var d grafanaDashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
			t.Fatalf("%s: no uid, title or panels", file)
		}
		if d.Panels[0].Datasource.Type == "prometheus" {
			continue // chatwarden-self.json: deploy/prometheus's TestSelfMonitoringDashboard
		}
		clickhouseBoards++
		if d.UID == "chatwarden-weekly" && d.Refresh != "" {
			t.Errorf("%s: auto-refresh %q on a weekly board", file, d.Refresh)
		}
		for _, p := range d.Panels {
			if p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s: panel %q has no unit", file, p.Title)
			}
			for _, tg := range p.Targets {
				panels++
				t.Run(filepath.Base(file)+"/"+p.Title, func(t *testing.T) {
					if p.Datasource.Type != "grafana-clickhouse-datasource" {
						t.Fatalf("datasource type %q", p.Datasource.Type)
					}
					// Time series bucket by Grafana's interval (or by day or
					// week), never one point per minute or hour over the range.
					if tg.Format == float64(0) && (strings.Contains(tg.RawSQL, "toStartOfMinute(") || strings.Contains(tg.RawSQL, "toStartOfHour(")) {
						t.Errorf("fixed per-minute or per-hour buckets; use $__interval_s:\n%s", tg.RawSQL)
					}
					for _, c := range []struct {
						tenant   string
						interval time.Duration
					}{{"__all__", time.Minute}, {"retail", time.Minute}, {"__all__", 6 * time.Hour}, {"retail", 6 * time.Hour}} {
						tenant := c.tenant
						sql := grafanaRender(t, tg.RawSQL, testNow.Add(-14*24*time.Hour), testNow, c.interval, map[string]string{"tenant": tenant})
						if strings.Contains(sql, "$") {
							t.Fatalf("unexpanded macro in:\n%s", sql)
						}
						cols, n, err := f.store.ProbeQuery(ctx, sql)
						if err != nil {
							t.Fatalf("tenant %q: %v\n%s", tenant, err, sql)
						}
						if n == 0 && !strings.Contains(p.Title, "risky") && !strings.Contains(p.Title, "Consent") {
							t.Errorf("tenant %q: no rows from a panel whose tables have data:\n%s", tenant, sql)
						}
						if tg.Format == float64(0) && (len(cols) == 0 || cols[0] != "time") {
							t.Errorf("time series panel's first column is %v, want time", cols)
						}
					}
				})
			}
		}
	}
	if clickhouseBoards != 3 {
		t.Errorf("%d ClickHouse dashboards, want 3", clickhouseBoards)
	}
	if panels < 12 {
		t.Fatalf("only %d panels", panels)
	}
}
