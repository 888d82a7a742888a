package alert

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// plan collects the rows one step writes. Nothing in memory changes until
// the rows are in ClickHouse (commit).
type plan struct {
	alerts  map[string]store.AlertRow
	order   []string
	changes []store.AlertChange
	msgs    map[string]store.AlertMessage
	after   []func()
}

func newPlan() *plan {
	return &plan{alerts: map[string]store.AlertRow{}, msgs: map[string]store.AlertMessage{}}
}

func (p *plan) empty() bool { return len(p.alerts) == 0 && len(p.msgs) == 0 && len(p.changes) == 0 }

// row returns the planned version of alert id, or the current one.
func (p *plan) row(d *Dispatcher, id string) (store.AlertRow, bool) {
	if r, ok := p.alerts[id]; ok {
		return r, true
	}
	if a := d.alerts[id]; a != nil {
		return a.row, true
	}
	return store.AlertRow{}, false
}

func (p *plan) putAlert(d *Dispatcher, now time.Time, r store.AlertRow) {
	r.Version = d.nextVersion(now)
	if _, ok := p.alerts[r.Alert.ID]; !ok {
		p.order = append(p.order, r.Alert.ID)
	}
	p.alerts[r.Alert.ID] = r
}

// setStatus plans a status change of r and its audit row.
func (p *plan) setStatus(d *Dispatcher, now time.Time, r store.AlertRow, to models.AlertStatus, by, note string) store.AlertRow {
	from := r.Alert.Status
	r.Alert.Status, r.Alert.UpdatedAt, r.Alert.UpdatedBy = to, now, by
	p.putAlert(d, now, r)
	p.changes = append(p.changes, store.AlertChange{AlertID: r.Alert.ID, At: now, Status: to, Previous: from, By: by,
		Note: note, Tenant: r.Alert.Tenant, ActorID: r.Alert.ActorID, Detector: r.Alert.Detector, Severity: r.Alert.Severity})
	return r
}

func (p *plan) putMsg(d *Dispatcher, now time.Time, m store.AlertMessage) {
	m.Version, m.UpdatedAt = d.nextVersion(now), now
	p.msgs[m.ID] = m
}

// commit writes the plan (alerts, then changes, then messages) and applies
// it to memory when every write succeeded. The caller holds d.step and
// d.mu; d.mu is released during the writes and held again on return.
func (d *Dispatcher) commit(ctx context.Context, p *plan) error {
	if p.empty() {
		for _, f := range p.after {
			f()
		}
		return nil
	}
	rows := make([]store.AlertRow, 0, len(p.order))
	for _, id := range p.order {
		rows = append(rows, p.alerts[id])
	}
	msgs := make([]store.AlertMessage, 0, len(p.msgs))
	for _, m := range p.msgs {
		msgs = append(msgs, m)
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].ID < msgs[j].ID })
	// The writes run without d.mu (d.step keeps other writers out), so that
	// a slow ClickHouse does not stall readers of the state.
	d.mu.Unlock()
	err := d.persist(ctx, rows, p.changes, msgs)
	d.mu.Lock()
	if err != nil {
		d.m.storeErrors.Inc()
		return err
	}
	for _, r := range rows {
		a := d.alerts[r.Alert.ID]
		if a == nil {
			a = &alertState{}
			d.alerts[r.Alert.ID] = a
		}
		a.row = r
		a.lastKey = findingKey(&r.Alert.Latest)
		if terminal(r.Alert.Status) {
			if d.byFP[r.Alert.Fingerprint] == r.Alert.ID {
				delete(d.byFP, r.Alert.Fingerprint)
			}
		} else {
			d.byFP[r.Alert.Fingerprint] = r.Alert.ID
		}
	}
	for _, c := range p.changes {
		d.m.changes.WithLabelValues(string(c.Status)).Inc()
	}
	for _, m := range msgs {
		ms := d.msgs[m.ID]
		if ms == nil {
			ms = &msgState{firstQueue: m.CreatedAt}
			d.msgs[m.ID] = ms
		}
		ms.row = m
		if m.Body != "" {
			_ = json.Unmarshal([]byte(m.Body), &ms.body)
		}
	}
	for _, f := range p.after {
		f()
	}
	return nil
}

// persist writes the rows of one step: alerts, then changes, then messages.
func (d *Dispatcher) persist(ctx context.Context, rows []store.AlertRow, cs []store.AlertChange, msgs []store.AlertMessage) error {
	if err := d.st.PutAlerts(ctx, rows); err != nil {
		return err
	}
	if err := d.st.PutAlertChanges(ctx, cs); err != nil {
		return err
	}
	return d.st.PutAlertMessages(ctx, msgs)
}
