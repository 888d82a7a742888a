package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/detect/eval"
)

// Targets every cell of the matrix must meet.
const (
	targetRecall   = 0.95
	targetFalse    = 1.0 // false alerts per 1,000 actor-days
	targetTTDWin   = 2.0 // median time to detect, windows
	matrixStartDay = "2026-10-19"
)

// matrixCell is one scored cell: a model, a shape and a seed.
type matrixCell struct {
	Model     string        `json:"model"`
	Shape     string        `json:"shape"`
	Seed      uint64        `json:"seed"`
	Days      float64       `json:"days"`
	Access    int           `json:"access_events"`
	Labels    int           `json:"labels"`
	Skipped   []string      `json:"skipped,omitempty"`
	Summary   *eval.Summary `json:"summary"`
	GenerateS float64       `json:"generate_seconds"`
}

func (c *matrixCell) passRecall() bool { return c.Summary.Recall >= targetRecall }
func (c *matrixCell) passFalse() bool  { return c.Summary.FalsePer1000 <= targetFalse }
func (c *matrixCell) passTTD() bool {
	return c.Summary.TTDMedianWin <= targetTTDWin && c.Summary.Recall > 0
}
func (c *matrixCell) fails() int {
	n := 0
	for _, ok := range []bool{c.passRecall(), c.passFalse(), c.passTTD(), c.Summary.Rejected == 0} {
		if !ok {
			n++
		}
	}
	return n
}

// runEvalMatrix runs the evaluation matrix: every model x shape x seed
// generated, replayed into a fresh database and scored on its own.
func runEvalMatrix(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "eval-matrix")
	seeds := fs.Int("seeds", 5, "seeds per (model, shape): first-seed..first-seed+seeds-1")
	firstSeed := fs.Int("first-seed", 1, "first seed (split a matrix over several runs)")
	report := fs.String("report", "", "print the table of the cells in these -json files (comma list) and exit; nothing is run")
	models := fs.String("models", strings.Join(trafficModels, ","), "traffic models (comma list)")
	shapes := fs.String("shapes", "all", "traffic shapes (comma list or all): "+shapeNames())
	work := fs.String("work", ".eval/matrix", "directory for each cell's events, labels and alerts")
	jsonOut := fs.String("json", "", "also write every cell's result as JSON to this file")
	window := fs.Duration("window", 0, "detection window (default: detect.window)")
	days := fs.Float64("days", 0, "override every shape's days (a quick look; the targets assume the shapes' own spans)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *report != "" {
		return reportMatrix(e, strings.Split(*report, ","))
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *window != 0 {
		c.Detect.Window = *window
		if err := c.Detect.Validate(); err != nil {
			return err
		}
	}
	var ms []string
	for _, m := range strings.Split(*models, ",") {
		if m = strings.TrimSpace(m); m != "" {
			if !slices.Contains(trafficModels, m) {
				return fmt.Errorf("-models: unknown model %q (known: %s)", m, strings.Join(trafficModels, ", "))
			}
			ms = append(ms, m)
		}
	}
	var shs []trafficShape
	for _, s := range strings.Split(*shapes, ",") {
		s = strings.TrimSpace(s)
		for _, sh := range matrixShapes {
			if s == "all" || s == sh.name {
				if *days > 0 {
					sh.days = *days
				}
				shs = append(shs, sh)
			}
		}
		if s != "all" && !slices.ContainsFunc(matrixShapes, func(sh trafficShape) bool { return sh.name == s }) {
			return fmt.Errorf("-shapes: unknown shape %q (known: %s)", s, shapeNames())
		}
	}
	if *seeds < 1 || len(ms) == 0 || len(shs) == 0 {
		return errors.New("eval-matrix: need at least one seed, model and shape")
	}
	if err := os.MkdirAll(*work, 0o755); err != nil {
		return fmt.Errorf("creating work directory: %w", err)
	}
	start, _ := time.Parse(time.DateOnly, matrixStartDay)
	// each cell connects and migrates: keep the store's info lines out of the progress
	quiet := *e
	quiet.log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e = &quiet
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	began := time.Now()
	var cells []*matrixCell
	total := len(ms) * len(shs) * *seeds
	// seed by seed, so that a run cut short has covered every shape
	for seed := *firstSeed; seed < *firstSeed+*seeds; seed++ {
		for _, sh := range shs {
			for _, m := range ms {
				cell, err := runCell(ctx, e, c, m, sh, uint64(seed), start, *work)
				if err != nil {
					return fmt.Errorf("cell %s/%s/seed %d: %w", m, sh.name, seed, err)
				}
				cells = append(cells, cell)
				if *jsonOut != "" { // after every cell: a run cut short keeps what it scored
					if err := writeCells(*jsonOut, cells); err != nil {
						return err
					}
				}
				s := cell.Summary
				fmt.Fprintf(e.stderr, "eval-matrix: [%d/%d] %s %s seed %d: recall %.3f false/1k %.2f ttd %.2f win rejected %d (%d events, %.0fs)\n",
					len(cells), total, m, sh.name, seed, s.Recall, s.FalsePer1000, s.TTDMedianWin, s.Rejected, s.Events, s.ElapsedS+cell.GenerateS)
			}
		}
	}
	printMatrix(e.stdout, cells, time.Since(began))
	return matrixVerdict(cells)
}

func writeCells(path string, cells []*matrixCell) error {
	b, _ := json.MarshalIndent(cells, "", "  ")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// reportMatrix prints the table of cells read from --json files.
func reportMatrix(e *env, paths []string) error {
	var cells []*matrixCell
	for _, p := range paths {
		b, err := os.ReadFile(strings.TrimSpace(p))
		if err != nil {
			return fmt.Errorf("reading cells: %w", err)
		}
		var cs []*matrixCell
		if err := json.Unmarshal(b, &cs); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		cells = append(cells, cs...)
	}
	if len(cells) == 0 {
		return errors.New("eval-matrix: no cells in the report files")
	}
	printMatrix(e.stdout, cells, 0)
	return matrixVerdict(cells)
}

// matrixVerdict fails when a cell misses a target.
func matrixVerdict(cells []*matrixCell) error {
	failed := 0
	for _, cl := range cells {
		if cl.fails() > 0 {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("eval-matrix: %d of %d cells miss a target", failed, len(cells))
	}
	return nil
}

func shapeNames() string {
	var n []string
	for _, s := range matrixShapes {
		n = append(n, s.name)
	}
	return strings.Join(n, ",")
}

// runCell generates one cell's traffic into the work directory and
// replays it into a database of its own, dropped afterwards.
func runCell(ctx context.Context, e *env, c Config, model string, sh trafficShape, seed uint64, start time.Time, work string) (*matrixCell, error) {
	base := filepath.Join(work, fmt.Sprintf("%s-%s-%d", model, sh.name, seed))
	t0 := time.Now()
	f, err := os.Create(base + ".events.jsonl")
	if err != nil {
		return nil, fmt.Errorf("creating events file: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	tr, err := generateCell(model, sh, seed, start, bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := writeLabels(base+".labels.jsonl", append(slices.Clone(tr.labels), tr.negatives...)); err != nil {
		return nil, err
	}
	cell := &matrixCell{Model: model, Shape: sh.name, Seed: seed, Days: sh.days, Access: tr.access,
		Labels: len(tr.labels), Skipped: tr.skipped, GenerateS: time.Since(t0).Seconds()}

	// the deployment's own configuration for this traffic: its vendors'
	// contracts and its purpose policy
	c.Detect.Rules.Vendors = tr.vendors
	c.Detect.Rules.Purposes = tr.purposes
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	c.ClickHouse.Database = "evalm_" + hex.EncodeToString(b)
	st, err := openStore(ctx, e, c)
	if err != nil {
		return nil, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := st.DropDatabase(dctx); err != nil {
			e.log.Error("dropping eval database", "database", c.ClickHouse.Database, "err", err)
		}
		st.Close()
	}()
	if _, err := st.Migrate(ctx, time.Now()); err != nil {
		return nil, err
	}
	in, err := os.Open(base + ".events.jsonl")
	if err != nil {
		return nil, fmt.Errorf("opening events: %w", err)
	}
	defer in.Close()
	af, err := os.Create(base + ".alerts.jsonl")
	if err != nil {
		return nil, fmt.Errorf("creating alerts file: %w", err)
	}
	defer af.Close()
	sum, err := eval.Run(ctx, eval.Options{Events: in, Labels: tr.labels, Negatives: tr.negatives, Config: c.Detect,
		Store: st, Alerts: af})
	if err != nil {
		return nil, err
	}
	cell.Summary = sum
	return cell, nil
}

func writeLabels(path string, ls []eval.Label) error {
	var b strings.Builder
	for _, l := range ls {
		j, _ := json.Marshal(l)
		b.Write(j)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing labels: %w", err)
	}
	return nil
}

func yes(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}

// printMatrix prints every cell, worst first, then the pass count per
// target and per (model, shape).
func printMatrix(w io.Writer, cells []*matrixCell, elapsed time.Duration) {
	sorted := slices.Clone(cells)
	slices.SortStableFunc(sorted, func(a, b *matrixCell) int {
		if c := cmp.Compare(b.fails(), a.fails()); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Summary.Recall, b.Summary.Recall); c != 0 {
			return c
		}
		return cmp.Compare(b.Summary.FalsePer1000, a.Summary.FalsePer1000)
	})
	fmt.Fprintf(w, "evaluation matrix: %d cells, targets recall >= %.2f, <= %.0f false alert per 1,000 actor-days, median time to detect <= %.0f windows, 0 rejected lines (%s)\n",
		len(cells), targetRecall, targetFalse, targetTTDWin, elapsed.Round(time.Second))
	fmt.Fprintf(w, "%-6s %-13s %4s %8s %6s %5s %6s %7s %8s %7s %5s  %-6s %-6s %-6s %-6s  %s\n",
		"model", "shape", "seed", "ev/day", "a-days", "lbls", "recall", "false", "f/1kAD", "ttd_win", "rej", "recall", "false", "ttd", "rej", "missed kinds / false alerts by detector")
	for _, c := range sorted {
		s := c.Summary
		fmt.Fprintf(w, "%-6s %-13s %4d %8.0f %6d %5d %6.3f %7d %8.2f %7.2f %5d  %-6s %-6s %-6s %-6s  %s\n",
			c.Model, c.Shape, c.Seed, float64(s.Events)/c.Days, s.ActorDays, c.Labels, s.Recall, s.FalseAlerts, s.FalsePer1000,
			s.TTDMedianWin, s.Rejected, yes(c.passRecall()), yes(c.passFalse()), yes(c.passTTD()), yes(s.Rejected == 0), cellNotes(c))
	}
	fmt.Fprintln(w, "by model and shape (cells passing all targets / cells; mean recall; false alerts per 1,000 actor-days over all seeds; median of cell TTDs):")
	type key struct{ model, shape string }
	groups := map[key][]*matrixCell{}
	var keys []key
	for _, c := range cells {
		k := key{c.Model, c.Shape}
		if groups[k] == nil {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], c)
	}
	for _, k := range keys {
		g := groups[k]
		pass, rec, falses, days := 0, 0.0, 0, 0
		var ttd []float64
		for _, c := range g {
			if c.fails() == 0 {
				pass++
			}
			rec += c.Summary.Recall
			falses += c.Summary.FalseAlerts
			days += c.Summary.ActorDays
			ttd = append(ttd, c.Summary.TTDMedianWin)
		}
		sort.Float64s(ttd)
		fmt.Fprintf(w, "  %-6s %-13s %d/%d  recall %.3f  false/1kAD %.2f  ttd %.2f win\n", k.model, k.shape, pass, len(g),
			rec/float64(len(g)), 1000*float64(falses)/float64(max(1, days)), ttd[len(ttd)/2])
	}
	pr, pf, pt, pj, all := 0, 0, 0, 0, 0
	for _, c := range cells {
		pr += b2i(c.passRecall())
		pf += b2i(c.passFalse())
		pt += b2i(c.passTTD())
		pj += b2i(c.Summary.Rejected == 0)
		all += b2i(c.fails() == 0)
	}
	n := len(cells)
	fmt.Fprintf(w, "targets: recall %d/%d  false alerts %d/%d  time to detect %d/%d  rejected %d/%d  all %d/%d cells\n",
		pr, n, pf, n, pt, n, pj, n, all, n)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// cellNotes names the kinds with misses and the detectors with false alerts.
func cellNotes(c *matrixCell) string {
	s := c.Summary
	var parts []string
	var kinds []string
	for k, ks := range s.ByKind {
		if ks.Detected < ks.Labels {
			kinds = append(kinds, fmt.Sprintf("%s %d/%d", k, ks.Detected, ks.Labels))
		}
	}
	sort.Strings(kinds)
	if len(kinds) > 0 {
		parts = append(parts, "missed: "+strings.Join(kinds, ", "))
	}
	var dets []string
	for d, n := range s.FalseByDetector {
		dets = append(dets, d+"="+strconv.Itoa(n))
	}
	sort.Strings(dets)
	if len(dets) > 0 {
		parts = append(parts, "false: "+strings.Join(dets, " "))
	}
	return strings.Join(parts, "; ")
}
