package alert

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// findingKey identifies a finding for dedupe: the same detector run on the
// same window (or the same event) is folded in once.
func findingKey(f *models.Finding) string {
	k := f.WindowStart.UTC().Format(time.RFC3339Nano) + "|" + f.WindowEnd.UTC().Format(time.RFC3339Nano)
	if len(f.Evidence.EventIDs) > 0 {
		k += "|" + f.Evidence.EventIDs[0]
	}
	return k
}

// isEventRule reports whether f comes from a per-event rule.
func (d *Dispatcher) isEventRule(f *models.Finding) bool {
	return f.Evidence.BaselineSource == "rule" || contains(d.cfg.EventRules, f.Detector)
}

// Notify folds findings into alerts and persists them. A critical
// event-rule finding flushes its group at once; a new group holding an
// urgent alert (severity >= urgent_severity) waits urgent_group_wait (by
// default it is flushed at once too); the rest wait for their group's timer
// (Tick). It returns an error when the alerts could not be
// written; nothing is sent in that case, and calling again with the same
// findings is safe (they are deduplicated).
func (d *Dispatcher) Notify(ctx context.Context, now time.Time, fs ...models.Finding) error {
	if len(fs) == 0 {
		return nil
	}
	if err := d.loadOnce(ctx, now); err != nil {
		return err
	}
	fs = d.withExposure(ctx, fs)
	d.refreshSuppressions(ctx, now, false)
	d.step.Lock()
	defer d.step.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.notifyLocked(ctx, now, fs); err != nil {
		return err
	}
	d.poke()
	return nil
}

// notifyLocked folds fs into alerts and commits them; d.step and d.mu are
// held. The findings' blast radius was looked up before (withExposure).
func (d *Dispatcher) notifyLocked(ctx context.Context, now time.Time, fs []models.Finding) error { //nolint:gocognit // folding one finding into its alert (dedupe, mute, severity, escalation) is the plan step of plan, persist, apply; kept whole so the state it reads under the lock is visible in one place
	p := newPlan()
	notOwned := 0
	fps := map[string]string{} // fingerprints opened in this call
	immediate := map[string]bool{}
	urgent := map[string]bool{}
	inhibitors := d.inhibitors(p)
	for i := range fs {
		f := fs[i]
		d.m.findings.Inc()
		if f.Tenant == "" {
			f.Tenant = "default"
		}
		if !d.ownsLocked(f.Tenant, f.ActorID) {
			// Its group moved to another dispatcher (a rebalance): the
			// caller must not commit it, and its owner reads it.
			d.m.notOwned.Inc()
			notOwned++
			continue
		}
		fp := f.Fingerprint()
		id, ok := fps[fp]
		if !ok {
			id, ok = d.byFP[fp]
		}
		if f.Retract {
			d.retractLocked(p, now, id, ok, &f)
			continue
		}
		var r store.AlertRow
		isNew := !ok
		if ok {
			r, _ = p.row(d, id)
			if terminal(r.Alert.Status) {
				isNew = true
			} else if findingKey(&r.Alert.Latest) == findingKey(&f) && r.Alert.Latest.Detector == f.Detector {
				d.m.duplicates.Inc()
				continue
			}
		}
		rose := false
		if isNew {
			id = fp + "-" + strconv.FormatInt(now.UnixNano(), 36)
			r = store.AlertRow{Alert: models.Alert{ID: id, Fingerprint: fp, Detector: f.Detector, Tenant: f.Tenant,
				ActorID: f.ActorID, ActorType: f.ActorType, Severity: f.Severity, FirstSeen: now, LastSeen: now,
				Findings: 1, Latest: f}}
			fps[fp] = id
			d.m.opened.Inc()
		} else {
			rose = f.Severity > r.Alert.Severity
			if f.Severity >= r.Alert.Severity || !f.DetectedAt.Before(r.Alert.Latest.DetectedAt) {
				if f.Evidence.Subjects == 0 && f.Evidence.Records == 0 && len(f.Evidence.Categories) == 0 {
					f.Evidence.Subjects, f.Evidence.Records = r.Alert.Latest.Evidence.Subjects, r.Alert.Latest.Evidence.Records
					f.Evidence.Categories = r.Alert.Latest.Evidence.Categories
				}
				r.Alert.Latest = f
			}
			r.Alert.Severity = max(r.Alert.Severity, f.Severity)
			if r.Alert.ActorType == "" {
				r.Alert.ActorType = f.ActorType
			}
			r.Alert.Findings++
			r.Alert.LastSeen = now
		}
		muted := d.muteReason(&r.Alert, inhibitors)
		if muted != "" {
			d.m.muted.Inc()
		}
		switch {
		case isNew && muted != "":
			r.MutedBy = muted
			r = p.setStatus(d, now, r, models.StatusSilenced, "chatwarden", "muted by "+muted)
		case isNew:
			r = p.setStatus(d, now, r, models.StatusOpen, "chatwarden", f.Summary)
		case muted != r.MutedBy:
			r.MutedBy = muted
			if muted != "" {
				r = p.setStatus(d, now, r, models.StatusSilenced, "chatwarden", "muted by "+muted)
			} else {
				r = p.setStatus(d, now, r, restored(r), "chatwarden", "no longer muted")
			}
		default:
			p.putAlert(d, now, r)
		}
		if r.Alert.Severity == models.SeverityCritical && muted == "" && !isSelf(r.Alert.Detector) {
			inhibitors[r.Alert.Tenant+"|"+r.Alert.ActorID] = r.Alert.ID
		}
		if r.Alert.Severity == models.SeverityCritical && d.isEventRule(&f) && (isNew || rose) {
			immediate[r.Alert.ID] = true
		}
		if r.Alert.Severity >= *d.cfg.UrgentSeverity && muted == "" && (isNew || rose) {
			urgent[r.Alert.ID] = true
		}
	}
	// Group membership follows the commit: the alert rows exist first.
	ids := append([]string(nil), p.order...)
	due := false
	p.after = append(p.after, func() {
		for _, id := range ids {
			a := d.alerts[id]
			for _, ch := range d.cfg.channels(&a.row.Alert) {
				g := d.addToGroup(ch, a, now, now.Add(d.cfg.GroupWait))
				switch {
				case immediate[id]:
					g.nextFlush = now
				case urgent[id] && g.msgID == "" && g.nextFlush.After(now.Add(d.cfg.UrgentGroupWait)):
					// The group's first message waits urgent_group_wait
					// only; once posted, the group_interval applies.
					g.nextFlush = now.Add(d.cfg.UrgentGroupWait)
				}
				if !g.nextFlush.After(now) {
					due = true
				}
			}
		}
	})
	if err := d.commit(ctx, p); err != nil {
		return fmt.Errorf("persisting alerts of %d findings: %w", len(fs), err)
	}
	if len(immediate) > 0 || due {
		if err := d.flushDue(ctx, now); err != nil {
			return err
		}
	}
	if notOwned > 0 {
		return fmt.Errorf("%d of %d findings: %w", notOwned, len(fs), ErrNotOwner)
	}
	return nil
}

// retractLocked applies a retraction (models.Finding.Retract): the alert
// of its fingerprint (id, when ok) is resolved if the retracted finding —
// raised on an open window that its evaluation did not confirm — is the
// only one that fed it; an alert other findings fed stays as it is.
func (d *Dispatcher) retractLocked(p *plan, now time.Time, id string, ok bool, f *models.Finding) {
	if !ok {
		return
	}
	r, found := p.row(d, id)
	if !found || terminal(r.Alert.Status) || r.Alert.Findings != 1 || !r.Alert.Latest.OpenWindow ||
		r.Alert.Latest.Detector != f.Detector || findingKey(&r.Alert.Latest) != findingKey(f) {
		return
	}
	p.setStatus(d, now, r, models.StatusResolved, "chatwarden", f.Summary)
}

// restored is the status an alert returns to when it is no longer muted.
func restored(r store.AlertRow) models.AlertStatus {
	switch {
	case !r.AckedAt.IsZero():
		return models.StatusAcknowledged
	case !r.EscalatedAt.IsZero():
		return models.StatusEscalated
	}
	return models.StatusOpen
}

// withExposure returns fs with the blast radius filled in for each finding
// that will open a new alert and carries none. The look-ups (queries over
// the events) run with no lock held, so a slow one delays only this call.
// Should the alert of a finding end between this look-up and the fold, the
// new alert shows no blast radius, as when the look-up fails.
func (d *Dispatcher) withExposure(ctx context.Context, fs []models.Finding) []models.Finding {
	if d.exposure == nil {
		return fs
	}
	out := append([]models.Finding(nil), fs...)
	need := make([]bool, len(out))
	seen := map[string]bool{}
	d.mu.Lock()
	for i := range out {
		if out[i].Tenant == "" {
			out[i].Tenant = "default" // as the fold does
		}
		fp := out[i].Fingerprint()
		if seen[fp] {
			continue // a later finding of one new alert folds into it
		}
		seen[fp] = true
		if id, ok := d.byFP[fp]; ok {
			if a := d.alerts[id]; a != nil && !terminal(a.row.Alert.Status) {
				continue
			}
		}
		need[i] = true
	}
	d.mu.Unlock()
	for i := range out {
		if need[i] {
			d.fillExposure(ctx, &out[i])
		}
	}
	return out
}

// fillExposure adds the blast radius to a finding that carries none.
func (d *Dispatcher) fillExposure(ctx context.Context, f *models.Finding) {
	ev := &f.Evidence
	if d.exposure == nil || ev.Subjects > 0 || ev.Records > 0 || len(ev.Categories) > 0 || isSelf(f.Detector) {
		return
	}
	from, to := f.WindowStart, f.WindowEnd
	if from.IsZero() || to.IsZero() {
		return
	}
	if !to.After(from) {
		from, to = from.Add(-time.Minute), to.Add(time.Minute)
	}
	subj, recs, cats, err := d.exposure(ctx, f.Tenant, f.ActorID, from, to)
	if err != nil {
		d.m.storeErrors.Inc()
		d.log.Warn("reading blast radius; the message shows none", "detector", f.Detector, "tenant", f.Tenant, "err", err)
		return
	}
	ev.Subjects, ev.Records, ev.Categories = subj, recs, cats
}
