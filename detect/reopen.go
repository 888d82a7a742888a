package detect

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// Late events (issue 10 item 6). Serve evaluates a window once ingest's
// low watermark has passed its end plus detect.allowed_lateness. An event
// stored after that (a producer's outage buffer, the backlog ingest reads
// after a restart while detection's start-up back-fill learned its window
// without findings) re-opens its window: at the next cycle the window is
// read again and its late events' actors are judged again, on a copy of
// their state (detect-only: the baselines do not learn the window twice),
// and only findings not raised for that window before are sent. Bounded:
// detect.reopen_windows windows back, detect.reopen_per_cycle per cycle.

// notStarted is Engine.closed before the first cycle: until Start has
// learned the history, every event noted may belong to a window the
// back-fill learns without findings, so all are kept (see NoteEvents).
const notStarted = math.MaxInt64

// lateWindows are the windows re-opened by late events, by window end
// (Unix seconds). NoteEvents (ingest's goroutine) adds, Advance takes.
type lateWindows struct {
	mu      sync.Mutex
	windows map[int64]*lateWindow
}

type lateWindow struct {
	actors map[actorKey]struct{}
	events int // late events noted for the window
	// uncounted are the events noted before Start (not yet known to be
	// late: counted once the window is found closed).
	uncounted int
}

// NoteEvents takes the events ingest has just stored (its batch observer,
// safe to call while Run runs). An event for a window detection has
// already evaluated (or learned at start-up) is late: it is counted in
// chatwarden_detect_late_events_total and re-opens its window for its
// actor, unless the window is more than detect.reopen_windows behind the
// last one evaluated (counted in
// chatwarden_detect_late_events_unreopened_total). An event for a window
// not evaluated yet is counted for streaming detection (stream.go).
func (e *Engine) NoteEvents(evs []models.Event) {
	closed := e.closed.Load()
	e.noteOpen(evs, closed) // streaming: the open windows' counts
	ws := int64(e.cfg.Window / time.Second)
	reopen := e.cfg.ReopenWindows >= 0
	late, unreopened := 0, 0
	e.late.mu.Lock()
	for i := range evs {
		ev := &evs[i]
		ts := ev.TS.Unix()
		if ts >= closed {
			continue // its window is still to be evaluated
		}
		end := (ts - mod(ts, ws)) + ws
		if closed != notStarted {
			late++
			if !reopen || end <= closed-int64(e.cfg.ReopenWindows)*ws {
				unreopened++
				continue
			}
		}
		lw := e.late.windows[end]
		if lw == nil {
			if e.late.windows == nil {
				e.late.windows = map[int64]*lateWindow{}
			}
			lw = &lateWindow{actors: map[actorKey]struct{}{}}
			e.late.windows[end] = lw
		}
		tenant := ev.Tenant
		if tenant == "" {
			tenant = models.DefaultTenant
		}
		lw.actors[actorKey{tenant, ev.Actor.ID}] = struct{}{}
		lw.events++
		if closed == notStarted {
			lw.uncounted++
		}
	}
	// Before Start the horizon is unknown: keep the newest windows only.
	if limit := 2*max(e.cfg.ReopenWindows, 1) + 1; closed == notStarted && len(e.late.windows) > limit {
		ends := make([]int64, 0, len(e.late.windows))
		for end := range e.late.windows {
			ends = append(ends, end)
		}
		slices.Sort(ends)
		for _, end := range ends[:len(ends)-limit] {
			unreopened += e.late.windows[end].events
			late += e.late.windows[end].events
			delete(e.late.windows, end)
		}
	}
	n := len(e.late.windows)
	e.late.mu.Unlock()
	e.metrics.late.Add(float64(late))
	e.metrics.unreopened.Add(float64(unreopened))
	e.metrics.reopenPending.Set(float64(n))
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// takeReopened removes from the re-opened windows those Advance evaluates
// now: at most detect.reopen_per_cycle ending at or before closeTo (the
// watermark has passed them), oldest first. Windows that are not late
// after all (noted before Start, evaluated as usual) are forgotten; those
// that fell more than detect.reopen_windows behind are dropped and counted.
func (e *Engine) takeReopened(closeTo time.Time) (ends []int64, actors []map[actorKey]struct{}) {
	ws := int64(e.cfg.Window / time.Second)
	closedEnd := e.next.Add(-e.cfg.Window).Unix()
	horizon := closedEnd - int64(e.cfg.ReopenWindows)*ws
	late, unreopened := 0, 0
	e.late.mu.Lock()
	for end, lw := range e.late.windows {
		switch {
		case end > closedEnd:
			delete(e.late.windows, end)
			continue
		case lw.uncounted > 0:
			late += lw.uncounted
			lw.uncounted = 0
		}
		if end <= horizon || e.cfg.ReopenWindows < 0 {
			unreopened += lw.events
			delete(e.late.windows, end)
			continue
		}
		if end <= closeTo.Unix() {
			ends = append(ends, end)
		}
	}
	slices.Sort(ends)
	if len(ends) > e.cfg.ReopenPerCycle {
		ends = ends[:e.cfg.ReopenPerCycle]
	}
	for _, end := range ends {
		actors = append(actors, e.late.windows[end].actors)
		delete(e.late.windows, end)
	}
	n := len(e.late.windows)
	e.late.mu.Unlock()
	e.metrics.late.Add(float64(late))
	e.metrics.unreopened.Add(float64(unreopened))
	e.metrics.reopenPending.Set(float64(n))
	for end := range e.emitted {
		if end <= horizon {
			delete(e.emitted, end)
		}
	}
	return ends, actors
}

// lateAtStart reports whether the start-up back-fill must not learn the
// row: ingest noted events of its actor in this window while detection
// started, so the window is re-opened at the first cycle and judged then
// against the baseline without it (learned, a burst would look like the
// actor's own habit). The window stays unlearned for that actor.
func (e *Engine) lateAtStart(end time.Time, r *windowRow) bool {
	if e.closed.Load() != notStarted {
		return false
	}
	e.late.mu.Lock()
	defer e.late.mu.Unlock()
	lw := e.late.windows[end.Unix()]
	if lw == nil {
		return false
	}
	_, ok := lw.actors[actorKey{r.Tenant, r.ActorID}]
	return ok
}

// giveBack returns a re-opened window whose evaluation failed (ClickHouse
// away) to the pending ones, for the next cycle.
func (e *Engine) giveBack(end int64, actors map[actorKey]struct{}) {
	e.late.mu.Lock()
	defer e.late.mu.Unlock()
	if e.late.windows == nil {
		e.late.windows = map[int64]*lateWindow{}
	}
	lw := e.late.windows[end]
	if lw == nil {
		e.late.windows[end] = &lateWindow{actors: actors}
		return
	}
	for k := range actors {
		lw.actors[k] = struct{}{}
	}
}

// reopenLate evaluates the windows re-opened by late events that closeTo
// has passed (Advance, before the windows due).
func (e *Engine) reopenLate(ctx context.Context, closeTo time.Time) error {
	if e.cfg.ReopenWindows < 0 || e.next.IsZero() {
		return nil
	}
	ends, actors := e.takeReopened(closeTo)
	var errs []error
	for i, end := range ends {
		err := e.reevaluate(ctx, time.Unix(end, 0).UTC(), actors[i])
		if err == nil {
			continue
		}
		errs = append(errs, err)
		if errors.Is(err, errReading) {
			for j := i; j < len(ends); j++ {
				e.giveBack(ends[j], actors[j])
			}
			break
		}
	}
	return errors.Join(errs...)
}

var errReading = errors.New("reading a re-opened window")

// reevaluate judges the late events' actors in the window ending at end
// again, detect-only, and sends the findings not raised for the window
// before.
func (e *Engine) reevaluate(ctx context.Context, end time.Time, actors map[actorKey]struct{}) error {
	w := e.cfg.Window
	start := end.Add(-w)
	rows, err := e.agg.WindowAggregates(ctx, start, end, w, e.shard)
	if err != nil {
		e.metrics.missed.Inc()
		return fmt.Errorf("%w %s..%s: %w", errReading, start.Format(time.RFC3339), end.Format(time.RFC3339), err)
	}
	raised, err := e.raisedFor(ctx, end)
	if err != nil {
		e.metrics.missed.Inc()
		return fmt.Errorf("%w %s..%s: %w", errReading, start.Format(time.RFC3339), end.Format(time.RFC3339), err)
	}
	e.metrics.reopened.Inc()
	e.reopening = true
	defer func() { e.reopening = false }()
	cyc := e.newCycle(start, end, rows)
	var out []models.Finding
	for i := range rows {
		r := &rows[i]
		k := actorKey{r.Tenant, r.ActorID}
		if _, ok := actors[k]; !ok {
			continue
		}
		st := e.stateCopy(r)
		for _, f := range e.detectRow(cyc, r, st) {
			if _, ok := raised[findingID(&f)]; !ok {
				out = append(out, f)
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	e.log.Info("late events re-opened a window: findings", "window_end", end, "findings", len(out))
	e.noteRaised(end, out)
	return e.emit(ctx, end, out)
}

// raisedFor returns the findings raised for the window ending at end. The
// engine remembers what it raised itself; a window it knows nothing of (it
// was evaluated before a restart, or raised nothing) is asked of
// Options.Raised, the findings table, and remembered.
func (e *Engine) raisedFor(ctx context.Context, end time.Time) (map[string]struct{}, error) {
	if set := e.emitted[end.Unix()]; set != nil || e.opt.Raised == nil {
		return set, nil
	}
	keys, err := e.opt.Raised(ctx, end)
	if err != nil {
		return nil, fmt.Errorf("reading the findings already raised: %w", err)
	}
	fs := make([]models.Finding, len(keys))
	for i, k := range keys {
		fs[i] = models.Finding{Detector: k.Detector, Tenant: k.Tenant, ActorID: k.ActorID}
	}
	e.noteRaised(end, fs)
	return e.emitted[end.Unix()], nil
}

// stateCopy is a copy of the row's actor's state for a re-opened window
// (a new state for an actor the engine has not seen), so that judging the
// window again changes nothing the engine keeps. The count series is left
// out: it is judged in window order only.
func (e *Engine) stateCopy(r *windowRow) *actorState {
	var st actorState
	if cur := e.actors[actorKey{r.Tenant, r.ActorID}]; cur != nil {
		st = *cur
	} else {
		st.Type, st.Role = r.ActorType, r.ActorRole
	}
	st.Series = nil
	st.Vendor = r.ActorVendor
	if st.loc == nil {
		st.loc = e.location(r.ActorID, st.Role)
	}
	return &st
}

// findingID identifies a window finding within its window.
func findingID(f *models.Finding) string { return f.Detector + "\x00" + f.Tenant + "\x00" + f.ActorID }

// noteRaised remembers the findings raised for the window ending at end,
// while late events can re-open it.
func (e *Engine) noteRaised(end time.Time, fs []models.Finding) {
	if e.cfg.ReopenWindows < 0 || len(fs) == 0 {
		return
	}
	if e.emitted == nil {
		e.emitted = map[int64]map[string]struct{}{}
	}
	set := e.emitted[end.Unix()]
	if set == nil {
		set = map[string]struct{}{}
		e.emitted[end.Unix()] = set
	}
	for i := range fs {
		set[findingID(&fs[i])] = struct{}{}
	}
	if len(e.emitted) > 2*e.cfg.ReopenWindows+1 { // Advance without cycles between (a replay)
		horizon := end.Unix() - int64(e.cfg.ReopenWindows)*int64(e.cfg.Window/time.Second)
		for k := range e.emitted {
			if k <= horizon {
				delete(e.emitted, k)
			}
		}
	}
}
