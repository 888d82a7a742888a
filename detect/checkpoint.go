package detect

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chatwarden/chatwarden/store"
)

// Checkpoints is where the engine saves and finds its baselines.
// *store.Store implements it.
type Checkpoints interface {
	// PutCheckpoint saves a checkpoint.
	PutCheckpoint(ctx context.Context, c store.Checkpoint) error
	// LatestCheckpoint returns the newest checkpoint of shard; ok is false
	// when there is none.
	LatestCheckpoint(ctx context.Context, shard store.Shard) (store.Checkpoint, bool, error)
}

// errForeignCheckpoint: a checkpoint holds actors another shard owns.
var errForeignCheckpoint = errors.New("the checkpoint holds another shard's actors")

// Snapshot encodes the engine's baselines and risk scores.
func (e *Engine) Snapshot() ([]byte, error) {
	return encodeSnapshot(&snapshot{AsOf: e.next.Add(-e.cfg.Window).Unix(), Next: e.next.Unix(), Actors: e.actors, Risk: e.risk,
		Dests: e.dests, TenantSeen: e.tenantSeen, Flagged: e.flagged, GroupSeen: e.groupSeen, Travel: e.travel})
}

// Restore replaces the engine's baselines with a snapshot; evaluation
// resumes with the window after the snapshot's last one.
func (e *Engine) Restore(b []byte) error {
	s, err := decodeSnapshot(b)
	if err != nil {
		return err
	}
	// A checkpoint saved under another shard function (detect.shards
	// hashed the actor id alone before the store moved to a cluster,
	// where they hash the tenant too) holds other shards' actors: the
	// baselines are rebuilt from ClickHouse instead.
	for k := range s.Actors {
		if !e.shard.Owns(k.Tenant, k.Actor) {
			return fmt.Errorf("%w: actor %q of tenant %q is not this shard's (%d of %d)", errForeignCheckpoint, k.Actor, k.Tenant, e.shard.Index, e.shard.Count)
		}
	}
	e.actors, e.risk, e.dests, e.tenantSeen, e.flagged, e.groupSeen, e.travel = s.Actors, s.Risk, s.Dests, s.TenantSeen, s.Flagged, s.GroupSeen, s.Travel
	if e.flagged == nil {
		e.flagged = map[actorKey][]flaggedItem{}
	}
	if e.dests == nil {
		e.dests = map[destKey]*destState{}
	}
	if e.tenantSeen == nil {
		e.tenantSeen = map[string]int64{}
	}
	if e.actors == nil {
		e.actors = map[actorKey]*actorState{}
	}
	if e.travel == nil {
		e.travel = map[actorKey]travelMark{}
	}
	if e.groupSeen == nil {
		e.groupSeen = map[groupKey]int64{}
		e.seedGroupSeen()
	}
	if e.risk == nil {
		e.risk = map[actorKey]*riskState{}
	}
	e.series = map[actorKey]*actorState{}
	for k, st := range e.actors {
		st.loc = e.location(k.Actor, st.Role)
		e.sets.internAll(st)
		if st.Series != nil {
			e.series[k] = st
		}
	}
	e.next = time.Unix(s.Next, 0).UTC()
	e.recomputePeers()
	return nil
}

// Checkpoint saves the baselines to cp as of the last evaluated window.
func (e *Engine) Checkpoint(ctx context.Context, cp Checkpoints, now time.Time) error {
	b, err := e.Snapshot()
	if err != nil {
		return err
	}
	return cp.PutCheckpoint(ctx, store.Checkpoint{Shard: e.shard, AsOf: e.next.Add(-e.cfg.Window), CreatedAt: now,
		Format: checkpointFormat, Actors: uint32(len(e.actors)), State: b})
}

// Start prepares the baselines at start-up: it restores the newest
// checkpoint of the shard when there is a usable one, then learns the
// history from there (or from now - BackfillDays) up to now from
// actor_minute, without emitting findings. Detection then resumes at now.
func (e *Engine) Start(ctx context.Context, cp Checkpoints, now time.Time) error {
	return e.start(ctx, cp, now, time.Time{}, false)
}

// TakeOver prepares the baselines of a shard this instance was just given
// (detect.ownership: group) after another owner had it: it restores the
// shard's newest checkpoint and learns, without findings, the windows up to
// evaluatedTo, the end of the last window the previous owner reported as
// evaluated (zero: unknown). The windows after that, up to now, are left to
// the next Advance, which evaluates them with findings: late, but
// evaluated. With evaluatedTo unknown, every window after the checkpoint is
// evaluated again (a finding the previous owner raised for one of them is
// raised again, and alerting's grouping keeps it to one message); with no
// checkpoint either, it is Start.
func (e *Engine) TakeOver(ctx context.Context, cp Checkpoints, evaluatedTo, now time.Time) error {
	return e.start(ctx, cp, now, evaluatedTo, true)
}

// start is Start (takeover false) and TakeOver: windows before learnTo
// (zero: now) are learned without findings.
func (e *Engine) start(ctx context.Context, cp Checkpoints, now, learnTo time.Time, takeover bool) error {
	from := now.Add(-time.Duration(e.cfg.BackfillDays) * 24 * time.Hour).Truncate(e.cfg.Window)
	restored := false
	if cp != nil {
		c, ok, err := cp.LatestCheckpoint(ctx, e.shard)
		switch {
		case err != nil:
			e.log.Warn("reading checkpoint; rebuilding baselines from clickhouse", "err", err)
		case ok && c.Format != checkpointFormat:
			e.log.Warn("checkpoint format unknown; rebuilding baselines from clickhouse", "format", c.Format)
		case ok && c.AsOf.After(from):
			if err := e.Restore(c.State); errors.Is(err, errForeignCheckpoint) {
				e.log.Warn("checkpoint saved under another shard function; rebuilding baselines from clickhouse", "err", err)
			} else if err != nil {
				e.log.Warn("checkpoint unreadable; rebuilding baselines from clickhouse", "err", err)
			} else {
				from = e.next.Add(-e.cfg.Window)
				restored = true
				e.log.Info("restored detection checkpoint", "as_of", c.AsOf, "actors", len(e.actors))
			}
		}
	}
	end := now.Truncate(e.cfg.Window)
	if takeover {
		switch {
		case !learnTo.IsZero():
			if lt := learnTo.Truncate(e.cfg.Window); lt.Before(end) {
				end = lt
			}
			if end.Before(from) { // the checkpoint is newer than the report
				end = from
			}
		case restored:
			end = from
		}
	}
	if from.Before(end) {
		if err := e.backfill(ctx, from, end); err != nil {
			return fmt.Errorf("back-filling baselines from %s: %w", from.Format(time.RFC3339), err)
		}
	}
	e.StartAt(end.Add(e.cfg.Window))
	// Windows before end are learned: an event noted for one of them
	// (stored while the back-fill ran, or after it) is late and re-opens
	// its window at the first cycle.
	e.closed.Store(end.Unix())
	if behind := now.Truncate(e.cfg.Window).Sub(end); takeover && behind > 0 {
		e.log.Info("detection shard taken over: evaluating the windows its previous owner missed",
			"from", end, "windows", int(behind/e.cfg.Window))
	}
	e.log.Info("detection baselines ready", "actors", len(e.actors), "from", from, "to", end)
	return nil
}

// backfill learns [from, to) like Learn, but a read that fails with an
// error store.IsRetryable accepts (ClickHouse restarting, a broken
// connection) is retried with backoff, resuming at the first window not yet
// learned: an outage during start-up delays detection instead of stopping
// serve (found by the ClickHouse-outage fault drill). Other errors, and
// the end of ctx, are returned.
func (e *Engine) backfill(ctx context.Context, from, to time.Time) error {
	e.learnOnly = true
	defer func() { e.learnOnly = false }()
	e.StartAt(from.Add(e.cfg.Window))
	wait := time.Second
	for {
		err := e.Advance(ctx, to)
		if err == nil || ctx.Err() != nil || !store.IsRetryable(err) {
			return err
		}
		e.log.Warn("back-filling baselines: reading clickhouse failed; resuming where it stopped",
			"err", err, "retry_in", wait, "learned_to", e.next.Add(-e.cfg.Window))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// Run evaluates windows on aligned ticks until ctx ends: every window it
// calls Advance(now() - lateness), where lateness gives ingest time to land
// the window's events, or to Options.Watermark's low watermark less
// Config.AllowedLateness when that is earlier (consumer lag), and
// checkpoints every CheckpointEvery. Between cycles it judges the open
// window every StreamEvery (Stream). now is the
// clock (cmd passes time.Now); detection itself never reads it.
func (e *Engine) Run(ctx context.Context, now func() time.Time, lateness time.Duration, cp Checkpoints) error {
	lastCP := now()
	next := lastCP.Truncate(e.cfg.Window).Add(e.cfg.Window).Add(lateness)
	for {
		t := now()
		wake := next
		if e.cfg.StreamEvery > 0 && t.Add(e.cfg.StreamEvery).Before(wake) {
			wake = t.Add(e.cfg.StreamEvery)
		}
		timer := time.NewTimer(wake.Sub(t))
		select {
		case <-ctx.Done():
			timer.Stop()
			if cp != nil {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				if err := e.Checkpoint(cctx, cp, now()); err != nil {
					e.log.Error("checkpointing at shutdown", "err", err)
				}
				cancel()
			}
			return nil
		case <-timer.C:
		}
		if !now().Before(next) {
			if err := e.Advance(ctx, e.closeTo(now(), lateness)); err != nil {
				e.log.Error("detection cycle", "err", err)
			}
			e.progress()
			if cp != nil && now().Sub(lastCP) >= e.cfg.CheckpointEvery {
				if err := e.Checkpoint(ctx, cp, now()); err != nil {
					e.log.Error("checkpointing baselines", "err", err)
				} else {
					lastCP = now()
				}
			}
			next = now().Truncate(e.cfg.Window).Add(e.cfg.Window).Add(lateness)
		}
		if err := e.Stream(ctx, now()); err != nil {
			e.log.Error("judging the open window", "err", err)
		}
	}
}

// closeTo is the time up to which Run evaluates windows at now: the wall
// clock less lateness, held back to ingest's low watermark less the allowed
// lateness while a partition is behind.
func (e *Engine) closeTo(now time.Time, lateness time.Duration) time.Time {
	t := now.Add(-lateness)
	if e.opt.Watermark != nil {
		if wm, ok := e.opt.Watermark(); ok {
			if held := wm.Add(-e.cfg.AllowedLateness); held.Before(t) {
				e.metrics.heldBack.Set(t.Sub(held).Seconds())
				return held
			}
		}
	}
	e.metrics.heldBack.Set(0)
	return t
}

// RunOnEvents is Run on event time (detect.clock: events): every poll (wall
// time) it evaluates the windows that closed before watermark() less
// Config.AllowedLateness, where watermark is the latest event time ingest
// has stored (zero: none yet), judges the open window (Stream, detected at
// watermark()), and checkpoints every CheckpointEvery of wall time (now).
// For simulated traffic streamed faster than real time; with no new events
// no window closes.
func (e *Engine) RunOnEvents(ctx context.Context, watermark, now func() time.Time, poll time.Duration, cp Checkpoints) error {
	lastCP := now()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if cp != nil {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				if err := e.Checkpoint(cctx, cp, now()); err != nil {
					e.log.Error("checkpointing at shutdown", "err", err)
				}
				cancel()
			}
			return nil
		case <-tick.C:
		}
		if _, err := e.stepOnEvents(ctx, watermark()); err != nil {
			e.log.Error("detection cycle", "err", err)
		}
		e.progress()
		if wm := watermark(); !wm.IsZero() {
			if err := e.Stream(ctx, wm); err != nil {
				e.log.Error("judging the open window", "err", err)
			}
		}
		if cp != nil && now().Sub(lastCP) >= e.cfg.CheckpointEvery {
			if err := e.Checkpoint(ctx, cp, now()); err != nil {
				e.log.Error("checkpointing baselines", "err", err)
			} else {
				lastCP = now()
			}
		}
	}
}

// stepOnEvents evaluates the windows that closed before wm less the allowed
// lateness; it reports whether it evaluated any (none for a zero wm: no
// events yet, or when no window closed since the last step).
func (e *Engine) stepOnEvents(ctx context.Context, wm time.Time) (bool, error) {
	if wm.IsZero() {
		return false, nil
	}
	to := wm.Add(-e.cfg.AllowedLateness)
	if !e.next.IsZero() && to.Before(e.next) {
		return false, nil
	}
	return true, e.Advance(ctx, to)
}

// progress hands the end of the last window evaluated to
// Options.Progress, if set, after a cycle.
func (e *Engine) progress() {
	if e.opt.Progress != nil && !e.next.IsZero() {
		e.opt.Progress(e.next.Add(-e.cfg.Window))
	}
}

// EvaluatedTo returns the end of the last window evaluated (zero before
// the first). Not safe while Run runs: use Options.Progress.
func (e *Engine) EvaluatedTo() time.Time {
	if e.next.IsZero() {
		return time.Time{}
	}
	return e.next.Add(-e.cfg.Window)
}
