// Package prometheus holds chatwarden's Prometheus alerting rules
// (chatwarden-rules.yml) and their tests. It is a module of its own so that
// the Prometheus server's packages used by the tests (rule parsing and the
// PromQL test engine) stay out of chatwarden's dependencies.
package prometheus

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	promparser "github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
)

const repoRoot = "../.."

// codeMetrics returns the metric names chatwarden's code registers: every
// string literal "chatwarden_..." given as a Name in its non-test Go files,
// with a histogram's _bucket/_sum/_count series, plus the collectors' names
// that cmd/chatwarden's newRegistry adds (TestRegistry there checks them).
func codeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{"chatwarden_build_info": true}
	fset := token.NewFileSet()
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata") && path != repoRoot {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			kv, ok := n.(*ast.KeyValueExpr)
			if !ok {
				return true
			}
			if id, ok := kv.Key.(*ast.Ident); !ok || id.Name != "Name" {
				return true
			}
			lit, ok := kv.Value.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, _ := strconv.Unquote(lit.Value)
			if strings.HasPrefix(s, "chatwarden_") {
				names[s] = true
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					names[s+suf] = true
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 30 {
		t.Fatalf("found only %d metric names in the code; is %s the repository?", len(names), repoRoot)
	}
	return names
}

// exprMetrics returns the metric names an expression selects.
func exprMetrics(t *testing.T, expr string) []string {
	t.Helper()
	e, err := promparser.NewParser(promparser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Fatalf("%v\n%s", err, expr)
	}
	var out []string
	promparser.Inspect(e, func(n promparser.Node, _ []promparser.Node) error {
		if vs, ok := n.(*promparser.VectorSelector); ok {
			out = append(out, vs.Name)
		}
		return nil
	})
	return out
}

func loadRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.ParseFile("chatwarden-rules.yml", false, model.UTF8Validation, promparser.NewParser(promparser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("chatwarden-rules.yml: %v", errs)
	}
	return groups
}

// TestRulesParse: the file is valid for Prometheus (rulefmt, as promtool
// check rules), every rule has a severity, a summary and a description, and
// every metric it reads is one chatwarden registers.
func TestRulesParse(t *testing.T) {
	groups := loadRules(t)
	known := codeMetrics(t)
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" {
				t.Errorf("rule %q is not an alerting rule", r.Record)
				continue
			}
			if r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a summary and a description", r.Alert)
			}
			for _, m := range exprMetrics(t, r.Expr) {
				if !known[m] {
					t.Errorf("%s reads %s, which chatwarden does not register", r.Alert, m)
				}
			}
		}
	}
	if n < 5 {
		t.Fatalf("only %d rules", n)
	}
}

// ruleExpr returns the expression of the alert named name.
func ruleExpr(t *testing.T, groups *rulefmt.RuleGroups, name string) string {
	t.Helper()
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == name {
				return strings.TrimSpace(r.Expr)
			}
		}
	}
	t.Fatalf("no alert %s", name)
	return ""
}

// TestRules evaluates each alert's expression on series that must fire it
// and series that must not, with Prometheus' own PromQL test engine (the
// language of promtool's and Prometheus' tests: "load" series, "eval
// instant at T expr" and the expected result; an empty expectation means no
// alert).
func TestRules(t *testing.T) {
	groups := loadRules(t)
	for _, tc := range []struct {
		alert, series, eval string
	}{
		{"ChatwardenIngestLagGrowing", `
load 1m
  chatwarden_ingest_consumer_lag_messages{job="cw",instance="a",topic="access",partition="0"} 5000+500x30
  chatwarden_ingest_consumer_lag_messages{job="cw",instance="a",topic="access",partition="1"} 8000+0x30
  chatwarden_ingest_consumer_lag_messages{job="cw",instance="a",topic="consent",partition="0"} 20000-100x30
  chatwarden_ingest_consumer_lag_messages{job="cw",instance="a",topic="small",partition="0"} 10+10x30
`, `
eval instant at 20m EXPR
  {job="cw",instance="a",topic="access"} 23000
`}, // growing and big fires; shrinking (consent) and small-but-growing do not
		{"ChatwardenSourceSilent", `
load 5m
  chatwarden_ingest_source_last_event_timestamp_seconds{job="cw",store="crm"} 0+300x20
  chatwarden_ingest_source_last_event_timestamp_seconds{job="cw",store="payments"} 0+0x20
`, `
eval instant at 25m EXPR

eval instant at 40m EXPR
  {job="cw",store="payments"} 2400
`}, // crm keeps sending; payments went silent at t=0: not yet at 25m (1500 s), firing at 40m (2400 s)
		{"ChatwardenDetectionBehind", `
load 1m
  chatwarden_detect_last_window_end_timestamp_seconds{job="cw",instance="a"} 0+60x10 600+0x20
`, `
eval instant at 10m EXPR

eval instant at 20m EXPR
  {job="cw",instance="a"} 600
`}, // windows advance every minute until 10m, then stop
		{"ChatwardenDetectionMissedCycles", `
load 1m
  chatwarden_detect_missed_cycles_total{job="cw",instance="a"} 0+0x10 0+1x10
  chatwarden_detect_missed_cycles_total{job="cw",instance="b"} 0+0x20
`, `
eval instant at 10m EXPR

eval instant at 20m EXPR
  {job="cw",instance="a"} 9
`},
		{"ChatwardenAlertsUnsent", `
load 1m
  chatwarden_alert_unsent_messages{job="cw",instance="a"} 0 0 3 3 3
  chatwarden_alert_unsent_messages{job="cw",instance="b"} 0 0 0 0 0
`, `
eval instant at 4m EXPR
  {job="cw",instance="a"} 3
`},
		{"ChatwardenFindingsBacklog", `
load 1m
  chatwarden_findings_lag_messages{job="cw",instance="a"} 0+10x20
  chatwarden_findings_lag_messages{job="cw",instance="b"} 0+10x20
  chatwarden_findings_lag_messages{job="ok",instance="a"} 200-10x20
`, `
eval instant at 15m EXPR
  {job="cw"} 150
`}, // cw's backlog grows; ok's shrinks
		{"ChatwardenAlertingUnowned", `
load 1m
  chatwarden_findings_partitions_owned{job="cw",instance="a"} 6 6 0 0 0
  chatwarden_findings_partitions_owned{job="cw",instance="b"} 6 6 0 0 0
  chatwarden_findings_partitions_owned{job="ok",instance="a"} 12 12 0 0 0
  chatwarden_findings_partitions_owned{job="ok",instance="b"} 0 0 12 12 12
`, `
eval instant at 1m EXPR

eval instant at 4m EXPR
  {job="cw"} 0
`}, // cw's serves lost every partition; ok's moved from a to b
		{"ChatwardenDetectionShardUnowned", `
load 1m
  chatwarden_detect_shards_unowned{job="cw",instance="a"} 0 0 1 1 1 1
  chatwarden_detect_shards_unowned{job="cw",instance="b"} 0 0 1 1 1 1
  chatwarden_detect_shards_unowned{job="ok",instance="a"} 0 0 1 1 0 0
  chatwarden_detect_shards_unowned{job="ok",instance="b"} 0 0 0 0 0 0
`, `
eval instant at 1m EXPR

eval instant at 4m EXPR
  {job="cw"} 1
`}, // cw's serves both see a shard unowned; ok's b still sees its owner
		{"ChatwardenSlackErrors", `
load 1m
  chatwarden_alert_slack_errors_total{job="cw",instance="a",op="post"} 0+1x20
  chatwarden_alert_slack_errors_total{job="cw",instance="a",op="update"} 0+1x20
  chatwarden_alert_slack_errors_total{job="cw",instance="b",op="post"} 0+0x20
`, `
eval instant at 15m EXPR
  {job="cw",instance="a"} 20
`},
		{"ChatwardenPayloadPII", `
load 1m
  chatwarden_ingest_pii_total{job="cw",instance="a",store="crm",kind="card"} 0+0x10 1+0x20
  chatwarden_ingest_pii_total{job="cw",instance="b",store="crm",kind="card"} 0+0x10 2+0x20
  chatwarden_ingest_pii_total{job="cw",instance="a",store="orders",kind="email"} 5+0x30
`, `
eval instant at 9m EXPR

eval instant at 15m EXPR
  {job="cw",store="crm",kind="card"} 3
`}, // crm's card counts rose after 10m (on two instances); orders' e-mails are old
	} {
		t.Run(tc.alert, func(t *testing.T) {
			expr := strings.ReplaceAll(ruleExpr(t, groups, tc.alert), "\n", " ")
			script := tc.series + strings.ReplaceAll(tc.eval, "EXPR", expr)
			promqltest.RunTest(t, script, promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery))
		})
	}
}

// grafanaMacros stand in for Grafana's own variables when a dashboard's
// PromQL is parsed.
var grafanaMacros = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// TestSelfMonitoringDashboard: the Grafana dashboard over chatwarden's own
// metrics parses as PromQL, reads only metrics chatwarden registers (or the
// Go/process collectors'), gives every panel a unit, and covers what an
// operator needs: ingest rate and lag, dead letters by reason, detection cycle
// time and missed windows, unsent alerts and Slack errors.
func TestSelfMonitoringDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "dashboards/grafana/chatwarden-self.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID     string `json:"uid"`
		Refresh string `json:"refresh"`
		Panels  []struct {
			Title       string `json:"title"`
			FieldConfig struct {
				Defaults struct {
					Unit string `json:"unit"`
				} `json:"defaults"`
			} `json:"fieldConfig"`
			Datasource struct {
				Type string `json:"type"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	known := codeMetrics(t)
	goRuntime := regexp.MustCompile(`^(go|process)_`)
	used := map[string]bool{}
	for _, p := range d.Panels {
		if p.FieldConfig.Defaults.Unit == "" {
			t.Errorf("panel %q has no unit", p.Title)
		}
		if p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource %q, want prometheus", p.Title, p.Datasource.Type)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range exprMetrics(t, grafanaMacros.Replace(tg.Expr)) {
				used[m] = true
				if !known[m] && !goRuntime.MatchString(m) {
					t.Errorf("panel %q reads %s, which chatwarden does not register", p.Title, m)
				}
			}
		}
	}
	var missing []string
	for _, m := range []string{"chatwarden_ingest_events_total", "chatwarden_ingest_consumer_lag_messages",
		"chatwarden_ingest_dead_letters_total", "chatwarden_detect_cycle_duration_seconds_bucket",
		"chatwarden_detect_missed_cycles_total", "chatwarden_alert_unsent_messages", "chatwarden_alert_slack_errors_total"} {
		if !used[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the self-monitoring dashboard shows none of %v", missing)
	}
}
