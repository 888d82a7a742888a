package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/sim"
)

func runSimulateCLI(t *testing.T, args ...string) (stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), append([]string{"simulate"}, args...), &out, &errb)
	return errb.String(), code
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func TestSimulateCommand(t *testing.T) {
	dir := t.TempDir()
	ev, lab := filepath.Join(dir, "ev.jsonl"), filepath.Join(dir, "labels.jsonl")
	args := []string{"-days", "1", "-start", "2026-10-20", "-actors", "30", "-attacks", "all", "-out-events", ev, "-out-labels", lab}
	stderr, code := runSimulateCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "attack labels:") || !strings.Contains(stderr, "events (") {
		t.Fatalf("summary missing: %s", stderr)
	}
	first, _ := os.ReadFile(ev)
	evs := lines(t, ev)
	if len(evs) < 5000 {
		t.Fatalf("%d events for a day of 30 actors", len(evs))
	}
	last := time.Time{}
	for _, l := range evs[:2000] {
		e, err := models.DecodeAccess([]byte(l), time.Date(2026, 10, 22, 0, 0, 0, 0, time.UTC), models.Limits{})
		if models.SchemaOf([]byte(l)) == models.SchemaConsent {
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		if e.TS.Before(last) {
			t.Fatalf("events out of order at %s", l)
		}
		last = e.TS
	}
	labs := lines(t, lab)
	if len(labs) == 0 {
		t.Fatal("no labels for a day with every attack kind")
	}
	for _, l := range labs {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"id", "kind", "tenant", "actor_id", "start", "end"} {
			if _, ok := v[k]; !ok {
				t.Fatalf("label %s lacks %s", l, k)
			}
		}
	}
	// same flags, same bytes
	if _, code := runSimulateCLI(t, args...); code != 0 {
		t.Fatal("second run failed")
	}
	if second, _ := os.ReadFile(ev); !bytes.Equal(first, second) {
		t.Fatal("two runs with the same flags differ")
	}
	// -events stops exactly
	if stderr, code := runSimulateCLI(t, "-events", "1234", "-attacks", "none", "-out-events", ev); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if n := len(lines(t, ev)); n != 1234 {
		t.Fatalf("-events 1234 wrote %d lines", n)
	}
	if _, code := runSimulateCLI(t, "-attacks", "teleport", "-out-events", ev); code == 0 {
		t.Fatal("an unknown attack kind was accepted")
	}
}

// TestSimulateRotaModel: -model rota writes the second traffic model's
// events (valid access.v1 and consent.v1 lines) and its labels.
func TestSimulateRotaModel(t *testing.T) {
	dir := t.TempDir()
	ev, lb := filepath.Join(dir, "e.jsonl"), filepath.Join(dir, "l.jsonl")
	stderr, code := runSimulateCLI(t, "-model", "rota", "-days", "5", "-actors", "30", "-out-events", ev, "-out-labels", lb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	evs := lines(t, ev)
	if len(evs) < 1000 || !strings.Contains(stderr, "model rota") {
		t.Fatalf("%d events; stderr %s", len(evs), stderr)
	}
	for i, l := range evs {
		if models.SchemaOf([]byte(l)) == models.SchemaConsent {
			continue
		}
		if _, err := models.DecodeAccess([]byte(l), time.Now().AddDate(10, 0, 0), models.Limits{MaxFuture: 1 << 62, MaxAge: 1 << 62}); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
	}
	if ls := lines(t, lb); len(ls) == 0 || !strings.Contains(ls[0], `"kind"`) {
		t.Fatalf("labels: %v", ls)
	}
	if _, code := runSimulateCLI(t, "-model", "nope"); code == 0 {
		t.Fatal("unknown model accepted")
	}
}

// TestSimulateWritesItsOwnConfig: the simulated platform's purpose policy
// and vendor contract are not product defaults; simulate --out-config
// writes them as a configuration file that loads and validates, for eval
// and the demo.
func TestSimulateWritesItsOwnConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "sim.yaml")
	stderr, code := runSimulateCLI(t, "-days", "0.01", "-actors", "10", "-attacks", "none",
		"-out-events", filepath.Join(dir, "ev.jsonl"), "-out-config", cfgPath)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	c, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatalf("the written config does not load: %v", err)
	}
	if err := c.Detect.Validate(); err != nil {
		t.Fatal(err)
	}
	r := c.Detect.Rules
	if v, ok := r.Vendors[sim.VendorName]; !ok || v.Hours != "00:00-12:00" || len(v.Stores) != 3 {
		t.Errorf("vendor contract %+v, want the simulator's acme-bpo", r.Vendors)
	}
	if len(r.Purposes["support"]) == 0 || !slices.Equal(r.ConsentGated, []string{"marketing", "analytics", "training"}) {
		t.Errorf("purposes %v, consent-gated %v", r.Purposes, r.ConsentGated)
	}
	def, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if d := def.Detect.WithDefaults().Rules; len(d.Vendors) != 0 || len(d.Purposes) != 0 {
		t.Errorf("product defaults carry the simulator's vendors %v / purposes %v", d.Vendors, d.Purposes)
	}
}
