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
	UID    string `json:"uid"`
	Title  string `json:"title"`
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

// expandMacros substitutes the grafana-clickhouse-datasource macros and the
// dashboards' variables with concrete values, as Grafana would.
func expandMacros(sql string, from, to time.Time, tenant string) string {
	f := "toDateTime(" + from.Format("'2006-01-02 15:04:05'") + ")"
	t := "toDateTime(" + to.Format("'2006-01-02 15:04:05'") + ")"
	sql = timeFilter.ReplaceAllString(sql, "$1 >= "+f+" AND $1 <= "+t)
	return strings.NewReplacer("$__fromTime", f, "$__toTime", t, "$__interval_s", "60", "${tenant}", tenant).Replace(sql)
}

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
					for _, tenant := range []string{"", "retail"} {
						sql := expandMacros(tg.RawSQL, testNow.Add(-14*24*time.Hour), testNow, tenant)
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
