package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatwarden/chatwarden/internal/storetest"
)

// TestEvalMatrixScoresEachCell runs a two-cell matrix (both traffic
// models, the cold-start shape cut to two days) against the real
// ClickHouse: each cell is replayed and scored on its own, the table names
// both, the JSON agrees with it, and a cell missing a target makes the
// command fail.
func TestEvalMatrixScoresEachCell(t *testing.T) {
	t.Setenv("CHATWARDEN_CLICKHOUSE_ADDR", storetest.Addr())
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "cells.json")
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"eval-matrix", "-seeds", "1", "-shapes", "cold-start", "-days", "2",
		"-work", dir, "-json", jsonPath}, &stdout, &stderr)
	var cells []matrixCell
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatalf("no JSON (exit %d): %v\n%s", code, err, stderr.String())
	}
	if err := json.Unmarshal(b, &cells); err != nil {
		t.Fatal(err)
	}
	if len(cells) != 2 || cells[0].Model == cells[1].Model {
		t.Fatalf("want one cell per model, got %+v", cells)
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
	if anyFail != (code != 0) {
		t.Errorf("exit %d, but a cell failing a target is %v", code, anyFail)
	}
}
