package detect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// Aggregates is what the window detectors read from ClickHouse.
// *store.Store implements it.
type Aggregates interface {
	// WindowAggregates returns each actor's activity per window for the
	// minutes [from, to), windows of length window aligned to the epoch,
	// ordered by window then actor, for the actors of shard.
	WindowAggregates(ctx context.Context, from, to time.Time, window time.Duration, shard store.Shard) ([]store.WindowActivity, error)
	// RecentSubjects returns the distinct customers per actor of shard in
	// the minutes [hourFrom, to) and [dayFrom, to).
	RecentSubjects(ctx context.Context, hourFrom, dayFrom, to time.Time, shard store.Shard) ([]store.SubjectCounts, error)
	// TopSubjects returns the customers an actor touched most in [from,
	// to), for evidence. Unlike the other methods it is called from
	// goroutines of the engine's own, a few at once (evidenceReads) and
	// while the engine makes its other reads; every call ends before the
	// engine method that made it returns.
	TopSubjects(ctx context.Context, tenant, actor string, from, to time.Time, n int) ([]string, error)
	// SubjectsOutsideConversation returns the distinct customers an actor
	// read in [from, to) other than the customer of the conversation each
	// read belonged to (reads outside any conversation count): a bot's
	// hourly and daily enumeration is confirmed by it.
	SubjectsOutsideConversation(ctx context.Context, tenant, actor string, from, to time.Time) (uint64, error)
	// SubjectsRead returns the distinct customers whose data an actor
	// read in [from, to): refused (denied) reads do not count. The
	// hourly and daily enumeration of an actor that is not a bot is
	// confirmed by it.
	SubjectsRead(ctx context.Context, tenant, actor string, from, to time.Time) (uint64, error)
}

// FindingSink receives the findings of a cycle that no suppression muted.
// It is called once per cycle with findings, in detection order; an error is
// logged and counted, and the cycle goes on.
type FindingSink func(ctx context.Context, fs ...models.Finding) error

// StoredSink receives every finding of a cycle, muted ones included (with
// the suppression id), for the findings table.
type StoredSink func(ctx context.Context, fs []store.StoredFinding) error

// RiskSink receives actor risk scores to store.
type RiskSink func(ctx context.Context, rs []store.ActorRisk) error

// SuppressionSource returns the suppressions in force at now. It is called
// once per cycle.
type SuppressionSource func(ctx context.Context, now time.Time) ([]models.Suppression, error)

// Watermark returns ingest's low watermark: the event time up to which
// every partition that still has messages to read has stored its events,
// and true; false when no partition is behind (event time holds nothing
// back). cmd wires it from ingest; Run reads it once per cycle.
type Watermark func() (time.Time, bool)

// RaisedSource returns the findings stored for the windows ending at end
// (store.WindowFindings): after a restart, what the engine raised for a
// window before it is there and not in its memory.
type RaisedSource func(ctx context.Context, end time.Time) ([]store.FindingKey, error)

// Options are the engine's collaborators; every field is optional.
type Options struct {
	// Watermark, when set, holds Run's windows open until ingest's low
	// watermark has passed their end plus Config.AllowedLateness.
	Watermark Watermark
	Findings  FindingSink
	Stored    StoredSink
	// Raised, when set, is asked what a window re-opened by late events
	// already has, when the engine did not raise it itself (it
	// evaluated the window before a restart).
	Raised       RaisedSource
	Risk         RiskSink
	Suppressions SuppressionSource
	Log          *slog.Logger
	Registerer   prometheus.Registerer
	// BatchSpan bounds the minutes one aggregate query covers when the
	// engine catches up (default 6h).
	BatchSpan time.Duration
	// StreamAtClose judges each window's rows, when it closes and before
	// its evaluation, as streaming detection would have judged its open
	// window (stream.go) — against the state and tenant multiplier as of
	// the window before, so with the full counts it finds every finding
	// streaming would have raised at some point during the window — and
	// sends those findings (marked OpenWindow, detected at the window's
	// end), whose evaluation then confirms or retracts them as in serve.
	// For `chatwarden eval`, whose replay moves the clock in chunks of
	// hours and cannot stream; it does nothing with streaming off
	// (detect.stream_every negative).
	StreamAtClose bool
	// Destinations, when set, reads each window's shares for the
	// destination detectors (destination_new, destination_volume);
	// without it they do not run.
	Destinations DestinationSource
	// ShardKey is what the shard's hash covers (store.ShardByActor, the
	// default: the actor id; store.ShardByTenantActor: the tenant and the
	// actor id, a cluster's storage sharding key, so that on a cluster a
	// shard's actors are stored on one storage shard). cmd takes it from
	// store.Store.ShardKey.
	ShardKey store.ShardKey
	// Progress, when set, is called by Run and RunOnEvents after every
	// cycle with the end of the last window evaluated (detect.ownership:
	// group reports it on the shard's control partition, so that the next
	// owner knows where to resume).
	Progress func(evaluatedTo time.Time)
}

type windowRow = store.WindowActivity

type actorKey struct{ Tenant, Actor string }

// Engine runs the window detectors. It is not safe for concurrent use:
// one goroutine calls Advance (Run does).
type Engine struct {
	cfg     Config
	agg     Aggregates
	opt     Options
	log     *slog.Logger
	metrics *metrics
	shard   store.Shard

	actors map[actorKey]*actorState
	risk   map[actorKey]*riskState
	peers  map[peerKey]*peerStats
	// itemPeers: per peer group, the items used by its members with at
	// least warmup_windows active windows, warm or not (first_seen's
	// peers while fewer than peer_min_peers members are warm).
	itemPeers map[peerKey]*itemPeers
	mahal     *mahalanobis
	supp      []models.Suppression
	locs      map[string]*time.Location
	// heavyHabits are the heavy calls (log sizes) of every peer group,
	// over every tenant, whose habit they are (peerStats.heavyLogs): what
	// an actor whose role is too small to say is judged by (peerHeavy).
	// Gathered on first use after each peer recomputation (habitsOK), so
	// a deployment whose roles are large enough keeps no copy.
	heavyHabits []float64
	habitsOK    bool

	// series are the actors with a count series (seasonal_count): a
	// window in which one is silent is judged as a zero count.
	series map[actorKey]*actorState

	// sets shares the item sets (stores, resource types, categories,
	// countries) that actors have in common; row is detectRow's reused
	// per-row context; groups memoizes peer group names.
	sets   setInterner
	row    rowCtx
	groups map[[2]string]string // peerGroup by (role, vendor), see groupOf
	bufs   cycleBufs

	// dests is each (tenant, destination)'s history; tenantSeen the first
	// window (Unix seconds) each tenant was seen; allow the allow-list.
	dests      map[destKey]*destState
	tenantSeen map[string]int64
	// groupSeen is the first window each peer group of a tenant was seen
	// (destination_new's warm-up).
	groupSeen map[groupKey]int64
	// travel is each actor's latest impossible_travel incident (one
	// finding per incident).
	travel map[actorKey]travelMark
	// flagged is each actor's items learned during a first_seen or
	// new_country finding, left out of its peers' shares (flaggedItem).
	flagged map[actorKey][]flaggedItem
	allow   *allowList

	next      time.Time // end of the next window to evaluate
	scratch   []float64
	learnOnly bool

	// handOffs are the findings emitted whose evidence is being read, in
	// emit order; evidenceSlots bounds the reads in flight (evidence.go).
	handOffs      []*handOff
	evidenceSlots chan struct{}

	// Findings whose hand-off failed (ClickHouse or alerting away): sent
	// again at the start of every Advance, oldest first, at most
	// maxPendingFindings of each (the oldest dropped and counted beyond).
	pendStored   []store.StoredFinding
	pendFindings []models.Finding

	// closed is the end (Unix seconds) before which every window is
	// evaluated: an event older than it arrives late (NoteEvents);
	// notStarted before the first cycle.
	closed atomic.Int64
	// late are the windows re-opened by late events; emitted the
	// findings raised per window end while it can be re-opened; reopening
	// is set while a re-opened window is judged (reopen.go).
	late      lateWindows
	emitted   map[int64]map[string]struct{}
	reopening bool

	// open are the open windows' counts (NoteEvents adds); streamed the
	// findings raised on them, until their window is evaluated; lastMult
	// each tenant's multiplier as of its last active window (stream.go).
	open     openWindows
	streamed streamed
	lastMult map[string]float64
}

// maxPendingFindings bounds the findings kept for a retry per sink.
const maxPendingFindings = 10000

// New builds an engine over agg.
func New(cfg Config, agg Aggregates, opt Options) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.BatchSpan <= 0 {
		opt.BatchSpan = 6 * time.Hour
	}
	e := &Engine{cfg: cfg, agg: agg, opt: opt, log: opt.Log, shard: store.Shard{Index: cfg.Shard, Count: cfg.Shards, Key: opt.ShardKey},
		actors: map[actorKey]*actorState{}, risk: map[actorKey]*riskState{}, peers: map[peerKey]*peerStats{},
		mahal: newMahalanobis(cfg.Detectors.MahalanobisSamples), locs: map[string]*time.Location{},
		series: map[actorKey]*actorState{}, dests: map[destKey]*destState{}, tenantSeen: map[string]int64{}, groupSeen: map[groupKey]int64{}, travel: map[actorKey]travelMark{}, flagged: map[actorKey][]flaggedItem{},
		allow: newAllowList(cfg.Destinations)}
	e.metrics = newMetrics(opt.Registerer)
	e.closed.Store(notStarted)
	for k, tz := range cfg.TimeZones.Actors {
		e.locs["a:"+k], _ = time.LoadLocation(tz)
	}
	for k, tz := range cfg.TimeZones.Roles {
		e.locs["r:"+k], _ = time.LoadLocation(tz)
	}
	return e, nil
}

// Window returns the window length.
func (e *Engine) Window() time.Duration { return e.cfg.Window }

// Next returns the end of the next window the engine will evaluate (zero
// before the first Advance).
func (e *Engine) Next() time.Time { return e.next }

// Actors returns how many actors the engine holds baselines for.
func (e *Engine) Actors() int { return len(e.actors) }

// StartAt sets the end of the first window to evaluate (rounded up to a
// window boundary). Without it, the first Advance evaluates only the latest
// complete window.
func (e *Engine) StartAt(t time.Time) {
	w := e.cfg.Window
	e.next = t.UTC().Truncate(w)
	if e.next.Before(t) {
		e.next = e.next.Add(w)
	}
}

// Advance evaluates every complete window that ends at or before now and
// was not evaluated yet, reading aggregates in batches, and hands findings to
// the sinks. Errors of one sink do not stop the cycle; they are joined.
func (e *Engine) Advance(ctx context.Context, now time.Time) error {
	cycleStart := time.Now() //nolint:forbidigo // measures the cycle's duration only, never decides detection
	defer func() { e.metrics.cycleDuration.Observe(time.Since(cycleStart).Seconds()) }()
	err := e.advance(ctx, now)
	// the findings whose evidence is still being read: no read outlives
	// the call
	return errors.Join(err, e.handOn(ctx, true))
}

// advance is Advance, but for the findings it leaves to handOn.
func (e *Engine) advance(ctx context.Context, now time.Time) error {
	w := e.cfg.Window
	now = now.UTC()
	if e.next.IsZero() {
		e.next = now.Truncate(w)
		if e.next.After(now) || e.next.Equal(time.Time{}) {
			return nil
		}
	}
	var errs []error
	if err := e.retryPending(ctx); err != nil {
		errs = append(errs, err)
	}
	if e.opt.Suppressions != nil && !e.learnOnly {
		sp, err := e.opt.Suppressions(ctx, now)
		if err != nil {
			e.log.Warn("reading suppressions; keeping the previous set", "err", err)
			errs = append(errs, err)
		} else {
			e.supp = sp
		}
	}
	if !e.learnOnly {
		if err := e.reopenLate(ctx, now); err != nil {
			errs = append(errs, err)
		}
	}
	for !e.next.After(now) {
		last := e.next
		for last.Add(w).Before(now) || last.Add(w).Equal(now) {
			if last.Add(w).Sub(e.next) > e.opt.BatchSpan {
				break
			}
			last = last.Add(w)
		}
		from := e.next.Add(-w)
		t0 := time.Now() //nolint:forbidigo // measures query latency only, never decides detection
		rows, err := e.agg.WindowAggregates(ctx, from, last, w, e.shard)
		e.metrics.queryDuration.Observe(time.Since(t0).Seconds())
		if err != nil {
			e.metrics.missed.Inc()
			return errors.Join(append(errs, fmt.Errorf("reading aggregates for %s..%s: %w", from.Format(time.RFC3339), last.Format(time.RFC3339), err))...)
		}
		drows, err := e.readShares(ctx, from, last)
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		i, di := 0, 0
		for end := e.next; !end.After(last); end = end.Add(w) {
			start := end.Add(-w)
			j := before(rows, i, end, func(r *windowRow) time.Time { return r.WindowStart })
			dj := before(drows, di, end, func(r *store.DestinationActivity) time.Time { return r.WindowStart })
			if err := e.evaluate(ctx, start, end, rows[i:j], drows[di:dj]); err != nil {
				errs = append(errs, err)
			}
			i, di = j, dj
			if end.Truncate(time.Hour).Equal(end) {
				if err := e.hourly(ctx, end); err != nil {
					errs = append(errs, err)
				}
			} else if end.Truncate(e.cfg.Detectors.EnumEvery).Equal(end) {
				if err := e.checkDays(ctx, end, false); err != nil {
					errs = append(errs, err)
				}
			}
			// the findings of windows before whose evidence is read
			if err := e.handOn(ctx, false); err != nil {
				errs = append(errs, err)
			}
			e.next = end.Add(w)
			e.metrics.lastWindowEnd.Set(float64(end.Unix()))
			if !e.learnOnly {
				e.closed.Store(end.Unix())
			}
		}
	}
	if !e.learnOnly {
		e.dropOpen(e.closed.Load())
	}
	return errors.Join(errs...)
}

// readShares reads the shares of the windows in [from, last) for the
// destination detectors (none without Options.Destinations).
func (e *Engine) readShares(ctx context.Context, from, last time.Time) ([]store.DestinationActivity, error) {
	if e.opt.Destinations == nil {
		return nil, nil
	}
	drows, err := e.opt.Destinations(ctx, from, last, e.cfg.Window, e.shard)
	if err != nil {
		e.metrics.missed.Inc()
		return nil, fmt.Errorf("reading shares for %s..%s: %w", from.Format(time.RFC3339), last.Format(time.RFC3339), err)
	}
	return drows, nil
}

// before returns the index of the first row from i on whose time is not
// before end (rows are ordered by time).
func before[T any](rows []T, i int, end time.Time, at func(*T) time.Time) int {
	for i < len(rows) && at(&rows[i]).Before(end) {
		i++
	}
	return i
}

// Learn folds the history [from, to) into the baselines without emitting
// findings: the start-up back-fill and a rebuild from ClickHouse.
func (e *Engine) Learn(ctx context.Context, from, to time.Time) error {
	e.learnOnly = true
	defer func() { e.learnOnly = false }()
	e.StartAt(from.Add(e.cfg.Window))
	return e.Advance(ctx, to)
}

// evaluate runs every detector on one window's rows and shares, learns,
// and emits.
func (e *Engine) evaluate(ctx context.Context, start, end time.Time, rows []windowRow, drows []store.DestinationActivity) error {
	e.metrics.windows.Inc()
	var retract []models.Finding
	if len(rows) == 0 && len(e.series) == 0 && len(drows) == 0 {
		if !e.learnOnly {
			retract = e.confirmStreamed(end, nil)
		}
		return e.sendRetractions(ctx, retract)
	}
	e.noteTenants(start, rows)
	if e.opt.StreamAtClose && !e.learnOnly {
		if err := e.streamAtClose(ctx, end, rows); err != nil {
			return err
		}
	}
	cyc := e.newCycle(start, end, rows)
	if e.lastMult == nil {
		e.lastMult = map[string]float64{}
	}
	for t, m := range cyc.mult {
		e.lastMult[t] = m
	}
	var out []models.Finding
	for i := range rows {
		r := &rows[i]
		st := e.state(r, cyc.states[i])
		fs := e.detectRow(cyc, r, st)
		if !e.learnOnly || !e.lateAtStart(end, r) {
			e.learnRow(cyc, r, st, fs)
		}
		out = append(out, fs...)
	}
	out = append(out, e.evaluateSilent(cyc, rows)...)
	out = append(out, e.destinations(start, end, drows)...)
	if e.learnOnly {
		return nil
	}
	retract = e.confirmStreamed(end, out)
	var errs []error
	if len(out) > 0 {
		e.noteRaised(end, out)
		errs = append(errs, e.emit(ctx, end, out))
	}
	return errors.Join(append(errs, e.sendRetractions(ctx, retract))...)
}

// state returns (creating) the state of the row's actor; st is the state
// newCycle found for it (nil: none yet).
func (e *Engine) state(r *windowRow, st *actorState) *actorState {
	if k := (actorKey{r.Tenant, r.ActorID}); st == nil {
		if st = e.actors[k]; st == nil { // not created by an earlier row of the window
			st = &actorState{}
			e.actors[k] = st
		}
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
	return st
}

func (e *Engine) location(actor, role string) *time.Location {
	if l := e.locs["a:"+actor]; l != nil {
		return l
	}
	if l := e.locs["r:"+role]; l != nil {
		return l
	}
	return time.UTC
}

// warm reports whether the actor has enough history of its own.
func (e *Engine) warm(st *actorState) bool {
	return int(st.ActiveDays) >= e.cfg.Detectors.WarmupDays && int(st.ActiveWindows) >= e.cfg.Detectors.WarmupWindows
}

// emit applies suppressions, stores and forwards findings, and updates risk;
// it returns the sinks' errors handed on so far (see emitRisk).
func (e *Engine) emit(ctx context.Context, now time.Time, fs []models.Finding) error {
	return e.emitRisk(ctx, now, fs, true)
}

// emitRisk is emit; risk false leaves the actor risk scores alone (a
// finding on an open window: the window's finding that confirms it counts).
// Suppression, metrics and risk are settled now; the findings' evidence
// reads start, and the sinks receive the findings from handOn (evidence.go),
// which returns their errors (those of the hand-offs whose reads are done
// already, this one's among them when it reads nothing). emitRisk keeps fs.
func (e *Engine) emitRisk(ctx context.Context, now time.Time, fs []models.Finding, risk bool) error {
	h := &handOff{fs: fs, muted: make([]bool, len(fs)), supp: make([]string, len(fs))}
	for i := range fs {
		f := &fs[i]
		if sp := e.suppressedBy(f); sp != nil {
			h.muted[i], h.supp[i] = true, sp.ID
			e.metrics.suppressed.WithLabelValues(f.Detector, string(sp.Kind)).Inc()
			continue
		}
		e.metrics.findings.WithLabelValues(f.Detector, f.Severity.String()).Inc()
		if risk {
			e.addRisk(*f)
		}
	}
	e.readEvidence(ctx, h)
	e.handOffs = append(e.handOffs, h)
	return e.handOn(ctx, false)
}

// sendRetractions tells alerting that findings raised on an open window
// were not confirmed when it closed (kept for a retry, like findings, when
// the hand-off fails). Retractions are not stored as findings.
func (e *Engine) sendRetractions(ctx context.Context, rs []models.Finding) error {
	if len(rs) == 0 || e.opt.Findings == nil {
		return nil
	}
	// after the findings emitted before them
	herr := e.handOn(ctx, true)
	if err := e.opt.Findings(ctx, rs...); err != nil {
		e.metrics.sinkErrors.WithLabelValues("findings").Inc()
		e.log.Error("sending retractions; kept for a retry", "err", err, "retractions", len(rs))
		e.pendFindings = keepPending(e, "findings", e.pendFindings, rs)
		e.metrics.pending.Set(float64(len(e.pendStored) + len(e.pendFindings)))
		return errors.Join(herr, err)
	}
	return herr
}

// keepPending appends add to pend, dropping (and counting) the oldest
// beyond maxPendingFindings.
func keepPending[T any](e *Engine, sink string, pend, add []T) []T {
	pend = append(pend, add...)
	if over := len(pend) - maxPendingFindings; over > 0 {
		e.metrics.dropped.WithLabelValues(sink).Add(float64(over))
		e.log.Error("findings dropped: too many waiting for a retry", "sink", sink, "dropped", over)
		pend = append(pend[:0:0], pend[over:]...)
	}
	return pend
}

// retryPending hands on the findings whose hand-off failed before, like
// the event rules' findings are retried: a window finding is not lost to a
// ClickHouse or alerting outage (the sinks are idempotent). It returns the
// sinks' errors; what failed stays pending.
func (e *Engine) retryPending(ctx context.Context) error {
	var errs []error
	if len(e.pendStored) > 0 && e.opt.Stored != nil {
		if err := e.opt.Stored(ctx, e.pendStored); err != nil {
			errs = append(errs, fmt.Errorf("retrying %d findings to store: %w", len(e.pendStored), err))
		} else {
			e.log.Info("stored findings that had failed before", "findings", len(e.pendStored))
			e.pendStored = nil
		}
	}
	if len(e.pendFindings) > 0 && e.opt.Findings != nil {
		if err := e.opt.Findings(ctx, e.pendFindings...); err != nil {
			errs = append(errs, fmt.Errorf("retrying %d findings to alerting: %w", len(e.pendFindings), err))
		} else {
			e.log.Info("sent findings that had failed before", "findings", len(e.pendFindings))
			e.pendFindings = nil
		}
	}
	e.metrics.pending.Set(float64(len(e.pendStored) + len(e.pendFindings)))
	return errors.Join(errs...)
}

func wantsSubjects(det string) bool {
	switch det {
	case DetVolumeSpike, DetEnumeration, DetPeerDeviation, DetDormant, DetMahalanobis:
		return true
	}
	return false
}

// suppressedBy returns the first suppression in force that matches f.
func (e *Engine) suppressedBy(f *models.Finding) *models.Suppression {
	for i := range e.supp {
		sp := &e.supp[i]
		if !sp.Active(f.DetectedAt) {
			continue
		}
		if sp.Store == "" {
			if sp.Matches(f.Detector, f.Tenant, f.ActorID, "") {
				return sp
			}
			continue
		}
		for _, st := range f.Evidence.TopStores {
			if sp.Matches(f.Detector, f.Tenant, f.ActorID, st) {
				return sp
			}
		}
	}
	return nil
}

// falsePositive reports whether a false-positive mark covers detector on
// the actor: its observations are then learned unclipped (re-baselined).
func (e *Engine) falsePositive(detector, tenant, actor string, at time.Time) bool {
	for i := range e.supp {
		sp := &e.supp[i]
		if sp.Kind == models.SuppressFalsePositive && sp.Active(at) && sp.Matches(detector, tenant, actor, "") {
			return true
		}
	}
	return false
}

// ApplySuppressions replaces the suppressions in force (tests and eval;
// Advance refreshes them from Options.Suppressions).
func (e *Engine) ApplySuppressions(sp []models.Suppression) { e.supp = sp }

// hourly runs the per-hour work at hour boundary t: the daily enumeration
// and drift checks, peer groups, the covariance model and risk scores.
func (e *Engine) hourly(ctx context.Context, t time.Time) error {
	var errs []error
	e.evictIdle(t)
	e.pruneTravel(t)
	e.recomputePeers()
	e.mahal.refit()
	if err := e.checkDays(ctx, t, true); err != nil {
		errs = append(errs, err)
	}
	if !e.learnOnly {
		if err := e.flushRisk(ctx, t); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkDays reads the distinct customers per actor of the last hour and of
// the day so far, and runs the hourly and daily enumeration and the drift
// detectors.
func (e *Engine) checkDays(ctx context.Context, t time.Time, hourEnd bool) error {
	dayStart := t.Add(-time.Nanosecond).Truncate(24 * time.Hour)
	hourStart := t.Add(-time.Hour)
	counts, err := e.agg.RecentSubjects(ctx, hourStart, dayStart, t, e.shard)
	if err != nil {
		e.metrics.missed.Inc()
		return fmt.Errorf("reading distinct customers of the hour and day: %w", err)
	}
	d := int32(dayStart.Unix() / 86400)
	var out []models.Finding
	for _, sc := range counts {
		st := e.actors[actorKey{sc.Tenant, sc.ActorID}]
		if st == nil || sc.Hour == 0 {
			continue
		}
		c := store.ActorCount{Tenant: sc.Tenant, ActorID: sc.ActorID, Count: sc.Hour}
		f, ok := e.detectCountEnumeration(ctx, st, c, true, hourStart, t)
		if ok {
			out = append(out, f)
		}
		if !hourEnd {
			continue // the rolling hour is checked; only whole hours are learned
		}
		// Learned net of tenant-wide swings: a promotion's busy hours do
		// not raise the bar for the week after.
		n := float64(c.Count) / st.multAvg()
		if ok {
			n = math.Min(n, 2*math.Max(st.busyHour(), 1))
		}
		st.HourSubj.add(n)
	}
	for _, sc := range counts {
		st := e.actors[actorKey{sc.Tenant, sc.ActorID}]
		if st == nil || sc.Day == 0 {
			continue
		}
		c := store.ActorCount{Tenant: sc.Tenant, ActorID: sc.ActorID, Count: sc.Day}
		if f, ok := e.detectCountEnumeration(ctx, st, c, false, dayStart, t); ok {
			out = append(out, f)
		}
		st.day(d).Subjects = f16Encode(float64(c.Count))
	}
	for k, st := range e.actors {
		if st.LastDay != d || !hourEnd {
			continue
		}
		if f, ok := e.detectDrift(k, st, d, dayStart, t); ok {
			out = append(out, f)
		}
	}
	if e.learnOnly || len(out) == 0 {
		return nil
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ActorID < out[j].ActorID })
	return e.emit(ctx, t, out)
}

// cycle holds the per-window population statistics.
type cycle struct {
	start, end time.Time
	// mult is the tenant-wide activity multiplier this window (median
	// observed/expected over warm actors, >= 1): a promotion day lifts
	// everyone's expectation, not one actor's alarm.
	mult map[string]float64
	// peersNow are the role peers active in this window.
	peersNow map[peerKey]*peerWindow
	// states are the rows' actor states (nil for an actor new this
	// window), looked up once per row.
	states []*actorState
}

// cycleBufs are newCycle's slices, kept for the next cycle.
type cycleBufs struct {
	ratios map[string][]float64
	peers  map[peerKey]*peerWindow
	tmp    []float32
	states []*actorState
}

type peerWindow struct {
	records, subjects []float64
	recMed, recMAD    float64
	subjMed, subjMAD  float64
}

func (e *Engine) newCycle(start, end time.Time, rows []windowRow) *cycle {
	c := &cycle{start: start, end: end, mult: map[string]float64{}, peersNow: map[peerKey]*peerWindow{}}
	// The tenant multiplier is the median, over the tenant's warm actors
	// active now, of each actor's recent observed / expected records
	// (time-decayed sums, so that one window's small counts do not make
	// the ratio noisy); one actor's attack cannot move a median.
	// The slices are reused from cycle to cycle (cycleBufs): a cycle of
	// 100,000 rows would otherwise allocate megabytes of them.
	if e.bufs.ratios == nil {
		e.bufs.ratios, e.bufs.peers = map[string][]float64{}, map[peerKey]*peerWindow{}
	}
	ratios := e.bufs.ratios
	for t, rs := range ratios {
		ratios[t] = rs[:0]
	}
	if len(e.bufs.peers) > maxGroupNames || len(ratios) > maxGroupNames {
		clear(e.bufs.peers)
		clear(ratios)
	}
	wn := start.Unix() / int64(e.cfg.Window/time.Second)
	clear(e.bufs.states) // no state kept alive by the buffer
	if cap(e.bufs.states) < len(rows) {
		e.bufs.states = make([]*actorState, 0, len(rows)+len(rows)/8)
	}
	e.bufs.states = e.bufs.states[:0]
	for i := range rows {
		r := &rows[i]
		pk := peerKey{r.Tenant, e.groupOf(r.ActorRole, r.ActorVendor)}
		pw := c.peersNow[pk]
		if pw == nil {
			pw = e.bufs.peers[pk]
			if pw == nil {
				pw = &peerWindow{}
				e.bufs.peers[pk] = pw
			}
			*pw = peerWindow{records: pw.records[:0], subjects: pw.subjects[:0]}
			c.peersNow[pk] = pw
		}
		pw.records = append(pw.records, float64(r.Records))
		pw.subjects = append(pw.subjects, float64(r.Subjects))
		st := e.actors[actorKey{r.Tenant, r.ActorID}]
		e.bufs.states = append(e.bufs.states, st)
		if st == nil || !e.warm(st) {
			continue
		}
		e.scratch = st.stats(e.scratch)
		mu, _, _ := st.seasonalFrom(hourOfWeek(start.In(e.locOf(st))), true)
		if mu <= 0 {
			continue
		}
		if !e.reopening { // a re-opened window reads the levels as they are
			decay := float32(1)
			if st.MultAt > 0 && wn > st.MultAt {
				decay = float32(math.Pow(multDecay, float64(wn-st.MultAt)))
			}
			st.MultObs = st.MultObs*decay + float32(r.Records)
			st.MultExp = st.MultExp*decay + float32(mu)
			st.MultAt = wn
		}
		if lv, ok := st.level(); ok {
			ratios[r.Tenant] = append(ratios[r.Tenant], lv)
		}
	}
	c.states = e.bufs.states
	for t, rs := range ratios {
		if len(rs) == 0 {
			continue
		}
		m := 1.0
		if len(rs) >= multMinActors {
			m = math.Min(4, math.Max(1, median64(rs)))
		}
		c.mult[t] = m
	}
	for _, pw := range c.peersNow {
		var mad float64
		tmp := e.bufs.tmp[:0]
		for _, v := range pw.records {
			tmp = append(tmp, float32(v))
		}
		pw.recMed, mad, e.scratch = medianMAD(tmp, e.scratch)
		pw.recMAD = mad
		for i, v := range pw.subjects {
			tmp[i] = float32(v)
		}
		pw.subjMed, pw.subjMAD, e.scratch = medianMAD(tmp, e.scratch)
		e.bufs.tmp = tmp
	}
	return c
}

func (e *Engine) locOf(st *actorState) *time.Location {
	if st.loc == nil {
		return time.UTC
	}
	return st.loc
}

// multMinActors is how many of a tenant's warm actors with a stable
// activity level must be active for a multiplier other than 1.
const multMinActors = 5

func (c *cycle) multiplier(tenant string) float64 {
	if m, ok := c.mult[tenant]; ok {
		return m
	}
	return 1
}

// evictIdle forgets the actors without an active window since
// cfg.EvictIdleAfter before t (their baseline, count series and risk
// score), counting them. One pass over the actors, at the hourly work.
func (e *Engine) evictIdle(t time.Time) {
	cutoff := t.Add(-e.cfg.EvictIdleAfter).Unix()
	n := 0
	for k, st := range e.actors {
		if st.LastSeen < cutoff {
			delete(e.actors, k)
			delete(e.flagged, k)
			delete(e.series, k)
			delete(e.risk, k)
			n++
		}
	}
	for k, r := range e.risk { // risk of actors seen only by event rules
		if _, ok := e.actors[k]; !ok && r.At < cutoff {
			delete(e.risk, k)
		}
	}
	e.metrics.evicted.Add(float64(n))
	e.metrics.actors.Set(float64(len(e.actors)))
}
