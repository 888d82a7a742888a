package alert

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

func (d *Dispatcher) escalationHash(ms *msgState) string {
	var b strings.Builder
	for _, id := range ms.row.AlertIDs {
		if a := d.alerts[id]; a != nil {
			fmt.Fprintf(&b, "%s %s %d;", id, a.row.Alert.Status, a.row.Alert.Severity)
		}
	}
	return b.String()
}

// planEscalation marks alert id escalated and plans its escalation message;
// the groups showing it are flushed at once.
func (d *Dispatcher) planEscalation(p *plan, now time.Time, id, by, note string) {
	r, ok := p.row(d, id)
	if !ok || terminal(r.Alert.Status) || !r.EscalatedAt.IsZero() {
		return
	}
	r.EscalatedAt = now
	st := models.StatusEscalated
	if !r.AckedAt.IsZero() {
		st = models.StatusAcknowledged
	}
	if r.MutedBy != "" {
		st = models.StatusSilenced
	}
	p.setStatus(d, now, r, st, by, "escalated: "+note)
	if d.poster != nil {
		p.putMsg(d, now, store.AlertMessage{ID: "e-" + id, Kind: string(KindEscalation), Channel: d.cfg.EscalationChannel,
			GroupKey: "escalation|" + id, Tenant: r.Alert.Tenant, ActorID: r.Alert.ActorID, AlertIDs: []string{id},
			Rev: 1, CreatedAt: now})
	} else {
		d.log.Warn("alert escalated (Slack is off)", "alert", id, "detector", r.Alert.Detector, "tenant", r.Alert.Tenant,
			"actor", r.Alert.ActorID, "by", by, "reason", note)
	}
	p.after = append(p.after, func() {
		for _, g := range d.groups {
			if contains(g.alertIDs, id) {
				g.nextFlush = now
			}
		}
		if ms := d.msgs["e-"+id]; ms != nil {
			ms.hash = d.escalationHash(ms)
		}
	})
}

// updateEscalations re-renders escalation messages whose alert changed.
func (d *Dispatcher) updateEscalations(ctx context.Context, now time.Time) error {
	p := newPlan()
	hashes := map[string]string{}
	for id, ms := range d.msgs {
		if ms.row.Kind != string(KindEscalation) || ms.row.Closed {
			continue
		}
		h := d.escalationHash(ms)
		if h == ms.hash {
			continue
		}
		m := ms.row
		m.Rev++
		done := true
		for _, aid := range m.AlertIDs {
			if a := d.alerts[aid]; a != nil && !terminal(a.row.Alert.Status) {
				done = false
			}
		}
		m.Closed = done
		p.putMsg(d, now, m)
		hashes[id] = h
	}
	p.after = append(p.after, func() {
		for id, h := range hashes {
			d.msgs[id].hash = h
		}
	})
	if err := d.commit(ctx, p); err != nil {
		return fmt.Errorf("persisting escalation updates: %w", err)
	}
	if len(hashes) > 0 {
		d.poke()
	}
	return nil
}
