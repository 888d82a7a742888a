package alert

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// memStore is an in-memory Store with the semantics of ClickHouse's tables
// as *store.Store reads them: per id the row with the largest version wins,
// DateTime columns keep whole seconds in UTC, the finding is JSON. It lets
// the behaviour tests run without a server; TestMemStoreMatchesClickHouse
// holds it to the real one.
//
// hold, when set, is called at the start of every method with the method's
// name; a test blocks or fails a call by blocking or returning an error.
type memStore struct {
	mu      sync.Mutex
	alerts  map[string]store.AlertRow
	changes []store.AlertChange
	msgs    map[string]store.AlertMessage
	sups    map[string]memSup
	hold    func(ctx context.Context, method string) error
}

type memSup struct {
	sp      models.Suppression
	version uint64
}

var _ Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{alerts: map[string]store.AlertRow{}, msgs: map[string]store.AlertMessage{}, sups: map[string]memSup{}}
}

func (m *memStore) enter(ctx context.Context, method string) error {
	m.mu.Lock()
	hold := m.hold
	m.mu.Unlock()
	if hold != nil {
		if err := hold(ctx, method); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// dt is a time as a DateTime column returns it: whole seconds, UTC, and the
// zero time for the epoch (store writes the zero time as the epoch).
func dt(t time.Time) time.Time {
	if t.Unix() <= 0 {
		return time.Time{}
	}
	return time.Unix(t.Unix(), 0).UTC()
}

func (m *memStore) PutAlerts(ctx context.Context, rows []store.AlertRow) error {
	if err := m.enter(ctx, "PutAlerts"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range rows {
		b, err := json.Marshal(r.Alert.Latest)
		if err != nil {
			return err
		}
		r.Alert.Latest = models.Finding{}
		if err := json.Unmarshal(b, &r.Alert.Latest); err != nil {
			return err
		}
		a := &r.Alert
		a.FirstSeen, a.LastSeen, a.UpdatedAt = dt(a.FirstSeen), dt(a.LastSeen), dt(a.UpdatedAt)
		r.AckedAt, r.EscalatedAt = dt(r.AckedAt), dt(r.EscalatedAt)
		if cur, ok := m.alerts[a.ID]; !ok || r.Version >= cur.Version {
			m.alerts[a.ID] = r
		}
	}
	return nil
}

func (m *memStore) PutAlertChanges(ctx context.Context, cs []store.AlertChange) error {
	if err := m.enter(ctx, "PutAlertChanges"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range cs {
		c.At = time.Unix(c.At.Unix(), 0).UTC()
		m.changes = append(m.changes, c)
	}
	return nil
}

// AlertChanges returns the changes of one alert, oldest first (as
// store.Store.AlertChanges does); the tests read the audit trail with it.
func (m *memStore) AlertChanges(ctx context.Context, alertID string) ([]store.AlertChange, error) {
	if err := m.enter(ctx, "AlertChanges"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.AlertChange
	for _, c := range m.changes {
		if c.AlertID == alertID {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].Status < out[j].Status
	})
	return out, nil
}

func (m *memStore) PutAlertMessages(ctx context.Context, ms []store.AlertMessage) error {
	if err := m.enter(ctx, "PutAlertMessages"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, msg := range ms {
		msg.AlertIDs = append([]string{}, msg.AlertIDs...)
		msg.IntentAt, msg.CreatedAt, msg.UpdatedAt = dt(msg.IntentAt), dt(msg.CreatedAt), dt(msg.UpdatedAt)
		if cur, ok := m.msgs[msg.ID]; !ok || msg.Version >= cur.Version {
			m.msgs[msg.ID] = msg
		}
	}
	return nil
}

func (m *memStore) ActiveAlerts(ctx context.Context) ([]store.AlertRow, error) {
	return m.selectAlerts(ctx, "ActiveAlerts", func(r store.AlertRow) bool { return !terminal(r.Alert.Status) })
}

func (m *memStore) AlertsByID(ctx context.Context, ids []string) ([]store.AlertRow, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return m.selectAlerts(ctx, "AlertsByID", func(r store.AlertRow) bool { return contains(ids, r.Alert.ID) })
}

func (m *memStore) selectAlerts(ctx context.Context, method string, keep func(store.AlertRow) bool) ([]store.AlertRow, error) {
	if err := m.enter(ctx, method); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.AlertRow
	for _, r := range m.alerts {
		if keep(r) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Alert.ID < out[j].Alert.ID })
	return out, nil
}

func (m *memStore) OpenAlertMessages(ctx context.Context) ([]store.AlertMessage, error) {
	return m.selectMsgs(ctx, "OpenAlertMessages", func(msg store.AlertMessage) bool { return !msg.Closed || msg.Rev > msg.SentRev })
}

func (m *memStore) AlertMessagesByID(ctx context.Context, ids []string) ([]store.AlertMessage, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return m.selectMsgs(ctx, "AlertMessagesByID", func(msg store.AlertMessage) bool { return contains(ids, msg.ID) })
}

func (m *memStore) selectMsgs(ctx context.Context, method string, keep func(store.AlertMessage) bool) ([]store.AlertMessage, error) {
	if err := m.enter(ctx, method); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.AlertMessage
	for _, msg := range m.msgs {
		if keep(msg) {
			msg.AlertIDs = append([]string{}, msg.AlertIDs...)
			out = append(out, msg)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (m *memStore) PutSuppression(ctx context.Context, sp models.Suppression, version uint64) error {
	if err := m.enter(ctx, "PutSuppression"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	sp.CreatedAt, sp.Until = dt(sp.CreatedAt), dt(sp.Until)
	if cur, ok := m.sups[sp.ID]; !ok || version >= cur.version {
		m.sups[sp.ID] = memSup{sp: sp, version: version}
	}
	return nil
}

func (m *memStore) Suppressions(ctx context.Context, now time.Time) ([]models.Suppression, error) {
	if err := m.enter(ctx, "Suppressions"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []models.Suppression
	for _, s := range m.sups {
		if s.sp.Active(now) {
			out = append(out, s.sp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
