package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// loadOnce reads the alerting state from the store on first use.
func (d *Dispatcher) loadOnce(ctx context.Context, now time.Time) error {
	d.mu.Lock()
	loaded := d.loaded
	d.mu.Unlock()
	if loaded {
		return nil // without waiting for a step under way
	}
	d.step.Lock()
	defer d.step.Unlock()
	return d.ensureLoaded(ctx, now)
}

// ensureLoaded reads active alerts and live messages from the store once.
// d.step is held and d.mu is not: the reads run without the state lock,
// which is taken to install what they returned.
func (d *Dispatcher) ensureLoaded(ctx context.Context, now time.Time) error {
	d.mu.Lock()
	loaded := d.loaded
	d.mu.Unlock()
	if loaded {
		return nil
	}
	rows, err := d.st.ActiveAlerts(ctx)
	if err != nil {
		return fmt.Errorf("loading active alerts: %w", err)
	}
	msgs, err := d.st.OpenAlertMessages(ctx)
	if err != nil {
		return fmt.Errorf("loading alert messages: %w", err)
	}
	// Only the owned groups' state (d.owns changes under d.step, held here).
	rows = slices.DeleteFunc(rows, func(r store.AlertRow) bool { return !d.ownsLocked(r.Alert.Tenant, r.Alert.ActorID) })
	msgs = slices.DeleteFunc(msgs, func(m store.AlertMessage) bool { return !d.ownsLocked(m.Tenant, m.ActorID) })
	have := map[string]bool{}
	for _, r := range rows {
		have[r.Alert.ID] = true
	}
	var missing []string
	states := make([]*msgState, 0, len(msgs))
	for _, m := range msgs {
		ms := &msgState{row: m, uncertain: m.TS == "" && !m.IntentAt.IsZero()}
		if m.Body != "" {
			if err := json.Unmarshal([]byte(m.Body), &ms.body); err != nil {
				return fmt.Errorf("decoding body of alert message %s: %w", m.ID, err)
			}
		}
		states = append(states, ms)
		for _, id := range m.AlertIDs {
			if !have[id] {
				have[id] = true
				missing = append(missing, id)
			}
		}
	}
	var more []store.AlertRow
	if len(missing) > 0 {
		more, err = d.st.AlertsByID(ctx, missing)
		if err != nil {
			return fmt.Errorf("loading alerts of live messages: %w", err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range rows {
		d.alerts[r.Alert.ID] = &alertState{row: r, lastKey: findingKey(&r.Alert.Latest)}
		d.byFP[r.Alert.Fingerprint] = r.Alert.ID
		d.ver = max(d.ver, r.Version)
	}
	for _, ms := range states {
		d.msgs[ms.row.ID] = ms
		d.ver = max(d.ver, ms.row.Version)
		if ms.row.Kind == string(KindDigest) {
			d.digestDone[ms.row.ID] = true
		}
	}
	for _, r := range more {
		if d.alerts[r.Alert.ID] != nil {
			continue // an active alert of an owned group, loaded above
		}
		d.alerts[r.Alert.ID] = &alertState{row: r}
		d.ver = max(d.ver, r.Version)
	}
	grouped := map[string]bool{}
	for _, ms := range d.msgs {
		m := ms.row
		if m.Kind != string(KindGroup) || m.Closed {
			continue
		}
		g := &group{key: m.GroupKey, channel: m.Channel, tenant: m.Tenant, actor: m.ActorID, created: m.CreatedAt,
			alertIDs: append([]string(nil), m.AlertIDs...), msgID: m.ID, nextFlush: now, lastNotify: m.UpdatedAt}
		if !ms.body.RemindedAt.IsZero() {
			g.lastNotify = ms.body.RemindedAt
		}
		g.hash = d.groupHash(g)
		d.groups[g.key] = g
		for _, id := range g.alertIDs {
			grouped[id+"|"+g.channel] = true
		}
	}
	for _, ms := range d.msgs {
		if ms.row.Kind == string(KindEscalation) {
			ms.hash = d.escalationHash(ms)
		}
	}
	// Active alerts whose group had not been notified before a restart.
	for _, a := range d.alerts {
		if terminal(a.row.Alert.Status) {
			continue
		}
		for _, ch := range d.cfg.channels(&a.row.Alert) {
			if !grouped[a.row.Alert.ID+"|"+ch] {
				d.addToGroup(ch, a, now, now)
			}
		}
	}
	d.loaded = true
	d.m.groupsOwned.Set(float64(len(d.groups)))
	d.log.Info("alert state loaded", "active_alerts", len(rows), "live_messages", len(msgs), "groups", len(d.groups),
		"scoped", d.owns != nil)
	return nil
}

func terminal(s models.AlertStatus) bool {
	return s == models.StatusResolved || s == models.StatusFalsePositive
}
