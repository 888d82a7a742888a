package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection enforces the layout of DESIGN.md and STYLE.md:
// models at the bottom, store above it, the four middle packages never
// importing each other, and each third-party client confined to its package.
func TestDependencyDirection(t *testing.T) {
	const mod = "github.com/chatwarden/chatwarden/"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	// pseudonym is a leaf like models: ingest applies it, detect's eval
	// replays through it, dashboards hash what responders type.
	// allowed[pkg] lists the top-level chatwarden packages pkg may import
	// (its own subpackages are always allowed).
	allowed := map[string][]string{
		"models":    {},
		"pseudonym": {},
		"store":     {"models"},
		"ingest":    {"models", "store", "pseudonym"},
		"detect":    {"models", "store", "pseudonym"},
		"alert":     {"models", "store"},
		"report":    {"models", "store"},
		// internal/: packages that are not the product's API. The test
		// helpers start and reach real servers for tests only.
		"internal/testsecure": {"internal/subproc"},
		"internal/storetest":  {"models", "store"},
		"internal/progress":   {},
		"internal/subproc":    {},
		// The Slack workspace stand-in of the tests, drills and benchmarks.
		"internal/slackfake": {},
		// The benchmark drivers sit above the product packages, like cmd,
		// and no product package imports them.
		"internal/bench": {"models", "store", "ingest", "detect", "alert", "report", "dashboards", "sim",
			"internal/progress", "internal/subproc", "internal/traffic", "internal/slackfake"},
		// The evaluation's traffic models and shapes: simulate (cmd) and
		// the evaluation matrix (internal/bench) generate with them.
		"internal/traffic": {"models", "sim", "detect"},
		"sim":              {"models"},
		"dashboards":       {"models", "store", "report", "pseudonym"},
	}
	// confined[third-party module] lists the top-level packages that may use it.
	confined := map[string][]string{
		"github.com/ClickHouse/clickhouse-go": {"store", "internal/storetest"},
		"github.com/segmentio/kafka-go":       {"ingest", "sim", "cmd"},
		"github.com/slack-go/slack":           {"alert/slack", "internal/slackfake"},
		"gonum.org/v1/gonum":                  {"detect", "report"},
		"codeberg.org/go-pdf/fpdf":            {"report"},
		"github.com/chdb-io/chdb-go":          {"store/modern"},
	}
	// top is the unit a package belongs to: its top-level directory, or
	// internal/<name> under internal/.
	top := func(p string) string {
		parts := strings.SplitN(strings.TrimPrefix(p, mod), "/", 3)
		if parts[0] == "internal" && len(parts) > 1 {
			return parts[0] + "/" + parts[1]
		}
		return parts[0]
	}
	// testOnly packages may be imported by tests (and each other) only,
	// never by code that is built into a binary.
	testOnly := map[string]bool{"internal/testsecure": true, "internal/storetest": true}
	// benchOnly packages are for the benchmark command only.
	benchOnly := map[string]bool{"internal/bench": true}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		rel := strings.TrimPrefix(pkg, mod)
		self := top(pkg)
		for _, imp := range imports {
			if strings.HasPrefix(imp, mod) {
				dep := top(imp)
				if testOnly[dep] && !testOnly[self] {
					t.Errorf("%s imports %s, a test helper, outside its tests", rel, strings.TrimPrefix(imp, mod))
				}
				if benchOnly[dep] && self != dep && rel != "cmd/chatwarden-bench" {
					t.Errorf("%s imports %s: only cmd/chatwarden-bench runs the benchmarks", rel, strings.TrimPrefix(imp, mod))
				}
				ok, rule := dep == self, allowed[self]
				if rule == nil {
					continue // cmd: wires everything
				}
				for _, a := range rule {
					ok = ok || a == dep
				}
				if !ok {
					t.Errorf("%s imports %s: %s may import only %v", rel, strings.TrimPrefix(imp, mod), self, rule)
				}
				checked++
				continue
			}
			for module, owners := range confined {
				if !strings.HasPrefix(imp, module) {
					continue
				}
				ok := false
				for _, o := range owners {
					ok = ok || rel == o || strings.HasPrefix(rel, o+"/") || self == o
				}
				if !ok {
					t.Errorf("%s imports %s, which is confined to %v", rel, imp, owners)
				}
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatal("no imports were checked: go list returned nothing useful")
	}
}
