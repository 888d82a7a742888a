package detect

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// evidenceReads bounds the evidence (TopSubjects) reads in flight at once.
// Each is one actor's raw events over one window, a few milliseconds of
// round trip for a millisecond or two of ClickHouse CPU: a few at once
// take them off the cycle's critical path without crowding ingest's
// connections (store.Config.MaxOpenConns, 8 by default).
const evidenceReads = 4

// handOff is one emit's findings on their way to the sinks. Suppression,
// metrics and risk are settled when the findings are emitted, on the
// engine's state of that moment; the findings' customers (TopSubjects, the
// one part of a finding read from ClickHouse after detection) are read in
// the background meanwhile, so that a replay or a catch-up evaluates the
// next windows instead of waiting a round trip per finding (the eval
// scenario raises about 500 findings, nearly all one per window). The
// sinks are called in emit order once a hand-off's reads are done: what
// they receive, and in what order, is what a read per finding in turn
// gave.
type handOff struct {
	fs []models.Finding
	// muted tells the findings a suppression mutes, supp its id.
	muted []bool
	supp  []string
	// left counts the reads not done; the last to finish closes done.
	left atomic.Int32
	done chan struct{}
}

// readEvidence starts the TopSubjects reads of h's findings that want the
// customers they touched and have none yet, at most evidenceReads at a
// time across hand-offs (it waits for a slot), each writing only its own
// finding. A read that fails leaves the finding's TopSubjects empty; with
// ctx ended, the reads not started are left out (they would fail alike).
func (e *Engine) readEvidence(ctx context.Context, h *handOff) {
	var want []int
	for i := range h.fs {
		f := &h.fs[i]
		if len(f.Evidence.TopSubjects) == 0 && wantsSubjects(f.Detector) && e.agg != nil {
			want = append(want, i)
		}
	}
	h.done = make(chan struct{})
	h.left.Store(int32(len(want)) + 1) // + 1: released below, once every read is started
	finish := func() {
		if h.left.Add(-1) == 0 {
			close(h.done)
		}
	}
	defer finish()
	if e.evidenceSlots == nil {
		e.evidenceSlots = make(chan struct{}, evidenceReads)
	}
	for n, i := range want {
		select {
		case e.evidenceSlots <- struct{}{}:
		case <-ctx.Done():
			for range want[n:] {
				finish()
			}
			return
		}
		go func(f *models.Finding) {
			defer func() {
				<-e.evidenceSlots
				finish()
			}()
			subs, err := e.agg.TopSubjects(ctx, f.Tenant, f.ActorID, f.WindowStart, f.WindowEnd, 10)
			if err == nil {
				f.Evidence.TopSubjects = subs
			}
		}(&h.fs[i])
	}
}

// handOn hands the emitted findings to the sinks, oldest hand-off first:
// with wait, every hand-off (waiting for its reads); without, those whose
// reads, and every earlier hand-off's, are done. It returns the sinks'
// errors. Every call of the engine that emits ends with handOn(ctx, true),
// and every other sink call is preceded by it: no read outlives the call
// that started it, and the sinks see the findings in the order they were
// emitted, before anything sent after them. The wait is not cut short by
// ctx: the reads use ctx and end with it.
func (e *Engine) handOn(ctx context.Context, wait bool) error {
	var errs []error
	for len(e.handOffs) > 0 {
		h := e.handOffs[0]
		if wait {
			<-h.done
		} else {
			select {
			case <-h.done:
			default:
				return errors.Join(errs...)
			}
		}
		e.handOffs[0] = nil
		e.handOffs = e.handOffs[1:]
		errs = append(errs, e.sink(ctx, h))
	}
	e.handOffs = nil
	return errors.Join(errs...)
}

// sink stores h's findings and forwards those no suppression muted,
// keeping what a sink refused for a retry.
func (e *Engine) sink(ctx context.Context, h *handOff) error {
	var errs []error
	stored := make([]store.StoredFinding, len(h.fs))
	var pass []models.Finding
	for i, f := range h.fs {
		stored[i] = store.StoredFinding{Finding: f, SuppressedBy: h.supp[i]}
		if !h.muted[i] {
			pass = append(pass, f)
		}
	}
	if e.opt.Stored != nil {
		if err := e.opt.Stored(ctx, stored); err != nil {
			e.metrics.sinkErrors.WithLabelValues("stored").Inc()
			e.log.Error("storing findings; kept for a retry", "err", err, "findings", len(stored))
			e.pendStored = keepPending(e, "stored", e.pendStored, stored)
			errs = append(errs, err)
		}
	}
	if e.opt.Findings != nil && len(pass) > 0 {
		if err := e.opt.Findings(ctx, pass...); err != nil {
			e.metrics.sinkErrors.WithLabelValues("findings").Inc()
			e.log.Error("sending findings; kept for a retry", "err", err, "findings", len(pass))
			e.pendFindings = keepPending(e, "findings", e.pendFindings, pass)
			errs = append(errs, err)
		}
	}
	e.metrics.pending.Set(float64(len(e.pendStored) + len(e.pendFindings)))
	return errors.Join(errs...)
}
