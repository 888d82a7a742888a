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
		Title      string `json:"title"`
		Type       string `json:"type"`
		Datasource struct {
			Type string `json:"type"`
		} `json:"datasource"`
		Targets []struct {
			RawSQL string `json:"rawSql"`
			Format int    `json:"format"`
		} `json:"targets"`
	} `json:"panels"`
}

var timeFilter = regexp.MustCompile(`\$__timeFilter\((\w+)\)`)

// TestGrafanaPanelsRun executes every panel's SQL against the real
// ClickHouse, with data in every table the panels read.
func TestGrafanaPanelsRun(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := t.Context()
	if err := f.store.PutAlertChanges(ctx, []store.AlertChange{{AlertID: "al-crit", At: testNow.Add(-9 * time.Hour), Status: models.StatusAcknowledged,
		Previous: models.StatusOpen, By: "sam", Tenant: "retail", ActorID: "agent-17", Detector: "enumeration", Severity: models.SeverityCritical}}); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("grafana/*.json")
	if err != nil || len(files) != 3 {
		t.Fatalf("grafana dashboards: %v %v", files, err)
	}
	panels := 0
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
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				panels++
				t.Run(filepath.Base(file)+"/"+p.Title, func(t *testing.T) {
					if p.Datasource.Type != "grafana-clickhouse-datasource" {
						t.Fatalf("datasource type %q", p.Datasource.Type)
					}
					for _, tenant := range []string{"__all__", "retail"} {
						sql := grafanaRender(t, tg.RawSQL, testNow.Add(-14*24*time.Hour), testNow, time.Hour, map[string]string{"tenant": tenant})
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
						if tg.Format == 0 && (len(cols) == 0 || cols[0] != "time") {
							t.Errorf("time series panel's first column is %v, want time", cols)
						}
					}
				})
			}
		}
	}
	if panels < 12 {
		t.Fatalf("only %d panels", panels)
	}
}
