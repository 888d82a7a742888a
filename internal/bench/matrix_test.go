package bench

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/internal/subproc"
	"github.com/chatwarden/chatwarden/internal/traffic"
)

// TestEvalMatrixScoresEachCell runs a two-cell matrix (both traffic
// models, the cold-start shape cut to two days) through a chatwarden
// binary's `eval` against the real ClickHouse, from a base configuration
// file: each cell is replayed and scored on its own, the table names both,
// the JSON agrees with it, and a cell missing a target makes the command
// fail.
func TestEvalMatrixScoresEachCell(t *testing.T) {
	dir := t.TempDir()
	bin, err := subproc.Build("../..", dir)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "base.yaml")
	if err := os.WriteFile(base, []byte("log:\n  level: warn\ndetect:\n  window: 60s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jsonPath := filepath.Join(dir, "cells.json")
	var stdout, stderr bytes.Buffer
	// From scratch: an exported CHATWARDEN_* variable must not change
	// what the chatwarden processes do.
	e := &Env{Stdout: &stdout, Stderr: &stderr, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Chatwarden: bin,
		Environ: subproc.Env("CHATWARDEN_CLICKHOUSE_ADDR=" + storetest.Addr())}
	runErr := EvalMatrix(t.Context(), e, []string{"-config", base, "-seeds", "1", "-shapes", "cold-start", "-days", "2",
		"-work", dir, "-json", jsonPath})
	var cells []matrixCell
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatalf("no JSON (%v): %v\n%s", runErr, err, stderr.String())
	}
	if err := json.Unmarshal(b, &cells); err != nil {
		t.Fatal(err)
	}
	if len(cells) != 2 || cells[0].Model == cells[1].Model {
		t.Fatalf("want one cell per model, got %+v (%v)\n%s", cells, runErr, stderr.String())
	}
	anyFail := false
	for _, c := range cells {
		if c.Summary == nil || c.Summary.Events == 0 || c.Summary.Events != c.Access || c.Summary.ActorDays == 0 {
			t.Errorf("%s: summary %+v for %d generated access events", c.Model, c.Summary, c.Access)
			continue
		}
		if c.Summary.Rejected != 0 {
			t.Errorf("%s: %d lines rejected", c.Model, c.Summary.Rejected)
		}
		anyFail = anyFail || c.fails() > 0
		if !strings.Contains(stdout.String(), c.Model+" ") {
			t.Errorf("table has no row for %s:\n%s", c.Model, stdout.String())
		}
	}
	if !strings.Contains(stdout.String(), "targets: recall ") {
		t.Errorf("no targets line:\n%s", stdout.String())
	}
	if anyFail != (runErr != nil) {
		t.Errorf("error %v, but a cell failing a target is %v", runErr, anyFail)
	}
}

// TestCellConfigKeepsBase: a cell's configuration is the base file with
// the cell's vendor contracts and purpose policy in place of the base's,
// everything else as it was.
func TestCellConfigKeepsBase(t *testing.T) {
	var base map[string]any
	src := "log:\n  level: warn\ndetect:\n  window: 5m\n  rules:\n    bulk_records: 77\n    purposes:\n      old: ['*']\n    vendors:\n      old-vendor: {stores: [crm]}\n"
	if err := yaml.Unmarshal([]byte(src), &base); err != nil {
		t.Fatal(err)
	}
	tr := &traffic.Cell{Purposes: map[string][]string{"support": {"email"}},
		Vendors: map[string]detect.VendorContract{"acme": {Stores: []string{"orders"}, Hours: "08:00-18:00"}}}
	path := filepath.Join(t.TempDir(), "cell.yaml")
	if err := writeCellConfig(path, base, tr); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Log    struct{ Level string }
		Detect struct {
			Window string
			Rules  struct {
				BulkRecords int                              `yaml:"bulk_records"`
				Purposes    map[string][]string              `yaml:"purposes"`
				Vendors     map[string]detect.VendorContract `yaml:"vendors"`
			}
		}
	}
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	r := got.Detect.Rules
	if got.Log.Level != "warn" || got.Detect.Window != "5m" || r.BulkRecords != 77 {
		t.Errorf("base settings lost:\n%s", b)
	}
	if len(r.Purposes) != 1 || r.Purposes["support"][0] != "email" || len(r.Vendors) != 1 || r.Vendors["acme"].Hours != "08:00-18:00" {
		t.Errorf("want the cell's purposes and vendors only:\n%s", b)
	}
	if base["detect"].(map[string]any)["rules"].(map[string]any)["purposes"] == nil {
		t.Error("writeCellConfig changed the base it was given")
	}
}

// TestEvalMatrixRetriesAndReportsErrors runs a two-cell matrix through a
// chatwarden that fails: the office cell's first eval (as a ClickHouse
// i/o timeout under load did) and every rota eval. The office cell is
// run again and scored; the rota cell is run twice, then reported as an
// error in the table and the JSON, and the matrix does not stop at it but
// fails at the end.
func TestEvalMatrixRetriesAndReportsErrors(t *testing.T) {
	dir := t.TempDir()
	bin, err := subproc.Build("../..", dir)
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "flaky-chatwarden")
	script := `#!/bin/sh
case "$*" in
*rota-*) echo "dial tcp 127.0.0.1:9000: i/o timeout" >&2; exit 1 ;;
esac
if [ ! -e "` + dir + `/failed-once" ]; then
	: > "` + dir + `/failed-once"
	echo "read tcp 127.0.0.1:9000: i/o timeout" >&2
	exit 1
fi
exec "` + bin + `" "$@"
`
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	jsonPath := filepath.Join(dir, "cells.json")
	var stdout, stderr bytes.Buffer
	e := &Env{Stdout: &stdout, Stderr: &stderr, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Chatwarden: wrapper,
		Environ: subproc.Env("CHATWARDEN_CLICKHOUSE_ADDR=" + storetest.Addr())}
	runErr := EvalMatrix(t.Context(), e, []string{"-seeds", "1", "-shapes", "cold-start", "-days", "2",
		"-work", dir, "-json", jsonPath})
	if runErr == nil || !strings.Contains(runErr.Error(), "1 of 2 cells could not be run") {
		t.Errorf("want the run to fail naming the cell that could not be run, got %v\n%s", runErr, stderr.String())
	}
	var cells []matrixCell
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatalf("no JSON (%v): %v\n%s", runErr, err, stderr.String())
	}
	if err := json.Unmarshal(b, &cells); err != nil {
		t.Fatal(err)
	}
	if len(cells) != 2 {
		t.Fatalf("want both cells in the JSON, got %d\n%s", len(cells), stderr.String())
	}
	for _, c := range cells {
		switch c.Model {
		case "office":
			if c.Summary == nil || c.Summary.Events == 0 || c.Attempts != 2 || c.Error != "" {
				t.Errorf("office: want scored on the second attempt, got attempts %d error %q summary %+v", c.Attempts, c.Error, c.Summary)
			}
		case "rota":
			if c.Summary != nil || c.Attempts != 2 || !strings.Contains(c.Error, "i/o timeout") {
				t.Errorf("rota: want an error after 2 attempts, got attempts %d error %q summary %+v", c.Attempts, c.Error, c.Summary)
			}
		}
	}
	out := stdout.String()
	if !strings.Contains(out, "rota   cold-start") || !strings.Contains(out, "ERROR (not scored, 2 attempts)") ||
		!strings.Contains(out, "(1 not scored: errors)") || !strings.Contains(out, "pooled false alerts: ") {
		t.Errorf("table does not report the error and the pooled lines:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "office-cold-start-1.eval.log.1")); err != nil {
		t.Errorf("the failed first run's log is not kept: %v", err)
	}
	// the report of the JSON shows the same
	var rep bytes.Buffer
	e.Stdout = &rep
	if err := EvalMatrix(t.Context(), e, []string{"-report", jsonPath}); err == nil || !strings.Contains(rep.String(), "ERROR (not scored") {
		t.Errorf("-report: error %v, table:\n%s", err, rep.String())
	}
}

// TestPooledStatistics checks the exact Poisson interval and test and the
// Wilson interval against published values.
func TestPooledStatistics(t *testing.T) {
	near := func(name string, got, want, tol float64) {
		t.Helper()
		if d := got - want; d > tol || d < -tol {
			t.Errorf("%s = %.4f, want %.4f", name, got, want)
		}
	}
	lo, hi := poissonCI(0, 0.95)
	near("poisson 0 lo", lo, 0, 1e-9)
	near("poisson 0 hi", hi, 3.6889, 1e-3) // -ln(0.025)
	lo, hi = poissonCI(1, 0.95)
	near("poisson 1 lo", lo, 0.0253, 1e-3)
	near("poisson 1 hi", hi, 5.5716, 1e-3)
	lo, hi = poissonCI(10, 0.95)
	near("poisson 10 lo", lo, 4.7954, 1e-3)
	near("poisson 10 hi", hi, 18.3904, 1e-3)
	// a 150 actor-day cell at exactly the target rate (0.15 expected):
	// one false alert is not evidence against the target, two are
	near("P(X>=1 | 0.15)", poissonTailAtLeast(1, 0.15), 0.1393, 1e-3)
	near("P(X>=2 | 0.15)", poissonTailAtLeast(2, 0.15), 0.0102, 1e-3)
	wl, wh := wilsonCI(45, 50, 1.959964)
	near("wilson 45/50 lo", wl, 0.7864, 1e-3)
	near("wilson 45/50 hi", wh, 0.9565, 1e-3)
}
