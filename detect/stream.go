package detect

import (
	"context"
	"errors"
	"hash/fnv"
	"sort"
	"sync"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// Streaming detection (issue 12). volume_spike and enumeration need not
// wait for their window to close: ingest's batch observer (NoteEvents)
// keeps, for every actor active in a window detection has not evaluated
// yet (an open window), the records and distinct customers stored so far.
// Every detect.stream_every the engine's goroutine (Run, RunOnEvents)
// judges the actors with new activity (Stream) with the same checks the
// window evaluation runs on a closed window — detectVolumeWindow and
// detectEnumWindow, against the same actor state, peers and tenant
// multiplier (the last cycle's) — and raises a finding as soon as the
// partial window alone is beyond the bar. A partial count only grows, so
// against an unchanged baseline the closed window is beyond the bar too.
//
// One alert, not two: a streamed finding has its actor's fingerprint
// (detector, tenant, actor), like the window's finding, and covers the
// window up to its actor's newest event (WindowEnd before the window's
// end). When the window is evaluated, its finding of the same detector for
// the actor confirms the streamed one: alerting folds it into the alert
// the streamed finding opened and updates that alert's message with the
// whole window's numbers. A streamed finding the window evaluation does
// not raise again (a tenant-wide rise lifted the bar) is closed: a
// finding with Retract set tells alerting to resolve the alert it opened.
// What a window raised early is also what it "raised before" when late
// events re-open it (reopen.go). At most one streamed finding per
// (detector, actor, window).
//
// Memory is bounded: counts are kept only for the shard's actors active
// in an open window (dropped when the window is evaluated), at most
// detect.stream_max_actors of them, each with an exact set of at most
// detect.stream_max_subjects customers (64-bit hashes of the pseudonyms).

// openWindows are the open windows' per-actor counts, by window end (Unix
// seconds). NoteEvents (ingest's goroutine) adds; Stream and Advance (the
// engine's goroutine) take and drop.
type openWindows struct {
	mu      sync.Mutex
	windows map[int64]map[actorKey]*openCount
	n       int // counts held, over every window
}

// openCount is one actor's activity in one open window so far.
type openCount struct {
	typ, role, vendor string
	events, records   uint64
	newest            int64 // Unix seconds of the newest event
	subjects          map[uint64]struct{}
	// dirty is set by new events, cleared when Stream takes the count.
	dirty bool
}

// streamHorizon is how many windows past the last one evaluated an event's
// window may end and still be counted: an event time far ahead (a
// producer's clock; the contract accepts up to 24 h) would hold its count
// until that window is evaluated.
const streamHorizon = 60

// streamed are the findings raised on an open window, kept until the
// window is evaluated (engine goroutine only).
type streamed map[int64]map[string]models.Finding

// noteOpen counts evs in the open windows (NoteEvents, ingest's
// goroutine). closed is the end of the last window evaluated.
func (e *Engine) noteOpen(evs []models.Event, closed int64) {
	if e.cfg.StreamEvery < 0 || closed == notStarted {
		return
	}
	ws := int64(e.cfg.Window / time.Second)
	dropped := 0
	o := &e.open
	o.mu.Lock()
	for i := range evs {
		ev := &evs[i]
		ts := ev.TS.Unix()
		if ts < closed {
			continue // late: its window re-opens instead
		}
		if !e.shard.Owns(ev.Tenant, ev.Actor.ID) {
			continue // another shard's (detect.shards)
		}
		end := ts - mod(ts, ws) + ws
		if end > closed+streamHorizon*ws {
			dropped++ // a producer's clock far ahead: left to its window
			continue
		}
		tenant := ev.Tenant
		if tenant == "" {
			tenant = models.DefaultTenant
		}
		k := actorKey{tenant, ev.Actor.ID}
		w := o.windows[end]
		c := w[k]
		if c == nil {
			if o.n >= e.cfg.StreamMaxActors {
				dropped++
				continue
			}
			if w == nil {
				if o.windows == nil {
					o.windows = map[int64]map[actorKey]*openCount{}
				}
				w = map[actorKey]*openCount{}
				o.windows[end] = w
			}
			c = &openCount{}
			w[k] = c
			o.n++
		}
		c.typ, c.role, c.vendor = string(ev.Actor.Type), ev.Actor.Role, ev.Actor.Vendor
		c.events++
		c.records += ev.Records
		c.newest = max(c.newest, ts)
		if ev.SubjectID != "" && len(c.subjects) < e.cfg.StreamMaxSubjects {
			if c.subjects == nil {
				c.subjects = map[uint64]struct{}{}
			}
			h := fnv.New64a()
			_, _ = h.Write([]byte(ev.SubjectID))
			c.subjects[h.Sum64()] = struct{}{}
		}
		c.dirty = true
	}
	n := o.n
	o.mu.Unlock()
	e.metrics.streamActors.Set(float64(n))
	e.metrics.streamDropped.Add(float64(dropped))
}

// dropOpen forgets the counts of the windows ending at or before closed:
// they were evaluated (Advance).
func (e *Engine) dropOpen(closed int64) {
	e.open.mu.Lock()
	e.dropOpenLocked(closed)
	n := e.open.n
	e.open.mu.Unlock()
	e.metrics.streamActors.Set(float64(n))
}

func (e *Engine) dropOpenLocked(closed int64) {
	o := &e.open
	for end, w := range o.windows {
		if end <= closed {
			o.n -= len(w)
			delete(o.windows, end)
		}
	}
}

// openRow is a count Stream judges: an actor's open window so far.
type openRow struct {
	end int64
	row windowRow
	// asOf is the end of what the count covers: its newest event's second
	// plus one, at most the window's end.
	asOf time.Time
}

// takeOpen drops the counts of windows ending at or before closed (they
// were evaluated) and returns the counts with new activity since the last
// call, oldest window first, clearing their dirty mark.
func (e *Engine) takeOpen(closed int64) []openRow {
	ws := int64(e.cfg.Window / time.Second)
	o := &e.open
	var out []openRow
	o.mu.Lock()
	e.dropOpenLocked(closed)
	for end, w := range o.windows {
		for k, c := range w {
			if !c.dirty {
				continue
			}
			c.dirty = false
			out = append(out, openRow{end: end, asOf: time.Unix(min(c.newest+1, end), 0).UTC(),
				row: windowRow{WindowStart: time.Unix(end-ws, 0).UTC(), Tenant: k.Tenant, ActorID: k.Actor,
					ActorType: c.typ, ActorRole: c.role, ActorVendor: c.vendor, Events: c.events, Records: c.records,
					Subjects: uint64(len(c.subjects))}})
		}
	}
	n := o.n
	o.mu.Unlock()
	e.metrics.streamActors.Set(float64(n))
	sort.Slice(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if a.end != b.end {
			return a.end < b.end
		}
		if a.row.Tenant != b.row.Tenant {
			return a.row.Tenant < b.row.Tenant
		}
		return a.row.ActorID < b.row.ActorID
	})
	return out
}

// Stream judges the open windows' counts with new activity since the last
// call (volume_spike's and enumeration's window checks, on the records and
// distinct customers stored so far) and hands on the findings, at most one
// per (detector, actor, window). now is the time the findings are
// detected at. It is a no-op with streaming off (detect.stream_every
// negative) or before Start. Run and RunOnEvents call it every
// detect.stream_every; like Advance, it must not run concurrently with
// the engine's other methods (NoteEvents excepted).
func (e *Engine) Stream(ctx context.Context, now time.Time) error {
	closed := e.closed.Load()
	if e.cfg.StreamEvery < 0 || closed == notStarted || e.learnOnly {
		return nil
	}
	rows := e.takeOpen(closed)
	var out []models.Finding
	for i := range rows {
		out = append(out, e.judgeOpen(rows[i].end, &rows[i].row, rows[i].asOf)...)
	}
	if len(out) == 0 {
		return nil
	}
	for i := range out {
		f := &out[i]
		f.DetectedAt = now
		e.metrics.streamFindings.WithLabelValues(f.Detector).Inc()
	}
	e.log.Info("open window judged early: findings", "findings", len(out))
	return errors.Join(e.emitRisk(ctx, now, out, false), e.handOn(ctx, true))
}

// judgeOpen runs the window-alone checks of volume_spike and enumeration on
// one open count and returns what fires and was not raised for the window
// yet, remembering it.
func (e *Engine) judgeOpen(end int64, r *windowRow, asOf time.Time) []models.Finding {
	// Below its minimum a check cannot fire, whatever the actor's
	// baseline (detectVolumeWindow's expected records are positive: at
	// least 0.5 times a tenant multiplier of at least 1, so obs-mu <
	// volume_min; detectEnumWindow's first test is enum_window_min): most
	// rows stop here, before the actor's state is copied.
	d := e.cfg.Detectors
	vol := !(float64(r.Records) < d.VolumeMin) && e.cfg.enabled(DetVolumeSpike)
	enum := !(float64(r.Subjects) < d.EnumWindowMin) && e.cfg.enabled(DetEnumeration)
	if !vol && !enum {
		return nil
	}
	raised := e.streamed[end]
	vol = vol && raised[DetVolumeSpike+"\x00"+r.Tenant+"\x00"+r.ActorID].Detector == ""
	enum = enum && raised[DetEnumeration+"\x00"+r.Tenant+"\x00"+r.ActorID].Detector == ""
	if !vol && !enum {
		return nil
	}
	cur := e.actors[actorKey{r.Tenant, r.ActorID}]
	// A copy of the actor's state: refreshing its cached medians here must
	// not change what the window evaluation computes.
	var st actorState
	if cur != nil {
		st = *cur
	} else {
		st.Type, st.Role = r.ActorType, r.ActorRole
	}
	if r.ActorType != "" {
		st.Type = r.ActorType
	}
	if r.ActorRole != "" || st.Role == "" {
		st.Role = r.ActorRole
	}
	st.Vendor = r.ActorVendor
	if st.loc == nil {
		st.loc = e.location(r.ActorID, st.Role)
	}
	e.scratch = st.stats(e.scratch)
	start := r.WindowStart
	c := &cycle{start: start, end: start.Add(e.cfg.Window), mult: e.lastMult}
	x := &rowCtx{c: c, r: r, st: &st, warm: e.warm(&st), how: hourOfWeek(start.In(e.locOf(&st))),
		peer: e.peers[peerKey{r.Tenant, e.groupOf(r.ActorRole, r.ActorVendor)}]}
	x.vpeer = e.volumePeers(x)
	var out []models.Finding
	if vol {
		if f, ok, _ := e.detectVolumeWindow(x); ok {
			out = append(out, f)
		}
	}
	if enum {
		if f, ok := e.detectEnumWindow(x); ok {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil
	}
	part := asOf.Sub(start)
	for i := range out {
		f := &out[i]
		f.WindowEnd, f.OpenWindow = asOf, true
		if f.Evidence.Notes == nil {
			f.Evidence.Notes = map[string]float64{}
		}
		f.Evidence.Notes["open_window_seconds"] = part.Seconds()
		f.Evidence.Metric += " (open window so far)"
		f.Summary += " — open window, judged " + part.String() + " into its " + e.cfg.Window.String()
	}
	if e.streamed == nil {
		e.streamed = streamed{}
	}
	if raised == nil {
		raised = map[string]models.Finding{}
		e.streamed[end] = raised
	}
	for _, f := range out {
		raised[findingID(&f)] = f
	}
	e.noteRaised(time.Unix(end, 0).UTC(), out)
	return out
}

// confirmStreamed settles the findings raised early on the window ending
// at end, now that the window is evaluated (out are its findings): one the
// window raises again is confirmed (alerting folds the window's finding
// into the same alert); one it does not is closed with a retraction, which
// is returned to be sent with the window's findings.
func (e *Engine) confirmStreamed(end time.Time, out []models.Finding) []models.Finding {
	raised := e.streamed[end.Unix()]
	if raised == nil {
		return nil
	}
	delete(e.streamed, end.Unix())
	now := make(map[string]bool, len(out))
	for i := range out {
		now[findingID(&out[i])] = true
	}
	ids := make([]string, 0, len(raised))
	for id := range raised {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var retract []models.Finding
	for _, id := range ids {
		f := raised[id]
		if now[id] {
			e.metrics.streamConfirmed.WithLabelValues(f.Detector).Inc()
			continue
		}
		e.metrics.streamUnconfirmed.WithLabelValues(f.Detector).Inc()
		e.log.Info("a finding raised on the open window was not confirmed when it closed; closing its alert",
			"detector", f.Detector, "tenant", f.Tenant, "actor", f.ActorID, "window_end", end)
		r := f
		r.Retract = true
		r.DetectedAt = end
		r.Severity = models.SeverityInfo
		r.Summary = "not confirmed when its window closed: " + f.Summary
		retract = append(retract, r)
	}
	return retract
}

// streamAtClose is Options.StreamAtClose: the window ending at end is
// judged as an open window on its whole rows, before newCycle and learning
// move the state past the window before.
func (e *Engine) streamAtClose(ctx context.Context, end time.Time, rows []windowRow) error {
	if e.cfg.StreamEvery < 0 {
		return nil
	}
	var out []models.Finding
	for i := range rows {
		out = append(out, e.judgeOpen(end.Unix(), &rows[i], end)...)
	}
	if len(out) == 0 {
		return nil
	}
	for i := range out {
		out[i].DetectedAt = end
		e.metrics.streamFindings.WithLabelValues(out[i].Detector).Inc()
	}
	return e.emitRisk(ctx, end, out, false)
}
