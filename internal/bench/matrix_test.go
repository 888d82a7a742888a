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
