package alert

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// Tick runs the timers at now: resolution, silences and inhibition,
// escalation, group flushes, the weekly digest and self-monitoring. Run
// calls it; tests call it with a simulated clock.
func (d *Dispatcher) Tick(ctx context.Context, now time.Time) error {
	if err := d.loadOnce(ctx, now); err != nil {
		return err
	}
	d.refreshSuppressions(ctx, now, false)
	d.step.Lock()
	d.mu.Lock()
	var errs []error
	if err := d.evaluate(ctx, now); err != nil {
		errs = append(errs, err)
	}
	if err := d.flushDue(ctx, now); err != nil {
		errs = append(errs, err)
	}
	if err := d.updateEscalations(ctx, now); err != nil {
		errs = append(errs, err)
	}
	d.writeDirty(ctx, now)
	d.m.unsent.Set(float64(d.unsentLocked()))
	// One dispatcher of a group of them checks chatwarden itself.
	selfDue := !now.Before(d.selfNext) && d.ownsSelfLocked()
	if selfDue {
		d.selfNext = now.Add(d.cfg.Self.CheckEvery)
	}
	d.mu.Unlock()
	d.step.Unlock()
	if selfDue {
		if err := d.selfCheck(ctx, now); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.scheduleDigest(ctx, now); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// evaluate applies resolution, mute changes and escalation to active alerts.
func (d *Dispatcher) evaluate(ctx context.Context, now time.Time) error {
	p := newPlan()
	inhibitors := d.inhibitors(p)
	// Alerts resolving now no longer inhibit.
	for k, id := range inhibitors {
		if now.Sub(d.alerts[id].row.Alert.LastSeen) >= d.cfg.ResolveTimeout {
			delete(inhibitors, k)
		}
	}
	ids := make([]string, 0, len(d.alerts))
	for id := range d.alerts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var escalate []string
	for _, id := range ids {
		r := d.alerts[id].row
		if terminal(r.Alert.Status) {
			continue
		}
		if now.Sub(r.Alert.LastSeen) >= d.cfg.ResolveTimeout {
			p.setStatus(d, now, r, models.StatusResolved, "chatwarden",
				fmt.Sprintf("no finding for %s", d.cfg.ResolveTimeout))
			continue
		}
		if muted := d.muteReason(&r.Alert, inhibitors); muted != r.MutedBy {
			r.MutedBy = muted
			if muted != "" {
				r = p.setStatus(d, now, r, models.StatusSilenced, "chatwarden", "muted by "+muted)
			} else {
				r = p.setStatus(d, now, r, restored(r), "chatwarden", "no longer muted")
			}
		}
		if r.Alert.Severity == models.SeverityCritical && r.Alert.Status == models.StatusOpen && r.MutedBy == "" &&
			r.EscalatedAt.IsZero() && now.Sub(r.Alert.FirstSeen) >= d.cfg.EscalateAfter {
			escalate = append(escalate, id)
		}
	}
	for _, id := range escalate {
		d.planEscalation(p, now, id, "chatwarden", fmt.Sprintf("not acknowledged within %s", d.cfg.EscalateAfter))
	}
	if err := d.commit(ctx, p); err != nil {
		return fmt.Errorf("persisting alert state changes: %w", err)
	}
	return nil
}

// writeDirty retries writes of delivery results that failed before. The
// caller holds d.step and d.mu; d.mu is released during the write.
func (d *Dispatcher) writeDirty(ctx context.Context, now time.Time) {
	var rows []store.AlertMessage
	var dirty []*msgState
	for _, ms := range d.msgs {
		if ms.dirty && !ms.inflight {
			ms.row.Version, ms.row.UpdatedAt = d.nextVersion(now), now
			rows = append(rows, ms.row)
			dirty = append(dirty, ms)
		}
	}
	if len(rows) == 0 {
		return
	}
	d.mu.Unlock()
	err := d.st.PutAlertMessages(ctx, rows)
	d.mu.Lock()
	if err != nil {
		d.m.storeErrors.Inc()
		d.log.Warn("recording delivered messages; will retry", "messages", len(rows), "err", err)
		return
	}
	for _, ms := range dirty {
		ms.dirty = false
	}
	d.forgetDone()
}

// forgetDone drops delivered, closed messages and the alerts only they
// referenced from memory.
func (d *Dispatcher) forgetDone() {
	for id, ms := range d.msgs {
		if ms.row.Closed && ms.row.SentRev >= ms.row.Rev && !ms.dirty && !ms.inflight {
			delete(d.msgs, id)
		}
	}
	if len(d.alerts) < 1024 {
		return
	}
	used := map[string]bool{}
	for _, g := range d.groups {
		for _, id := range g.alertIDs {
			used[id] = true
		}
	}
	for _, ms := range d.msgs {
		for _, id := range ms.row.AlertIDs {
			used[id] = true
		}
	}
	for id, a := range d.alerts {
		if terminal(a.row.Alert.Status) && !used[id] {
			delete(d.alerts, id)
		}
	}
}
