package alert

import (
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestMemStoreMatchesClickHouse writes the same versions to the in-memory
// store and to a real ClickHouse and requires every read alerting makes to
// return the same rows, so the behaviour tests' fake cannot drift from
// *store.Store.
func TestMemStoreMatchesClickHouse(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := t0.Add(1234567 * time.Microsecond) // sub-second parts, as the dispatcher writes them
	f := testFinding("volume_spike", "a1", models.SeverityHigh, now)
	alert := func(id string, v uint64, st models.AlertStatus) store.AlertRow {
		return store.AlertRow{Alert: models.Alert{ID: id, Fingerprint: "fp-" + id, Detector: f.Detector, Tenant: f.Tenant,
			ActorID: f.ActorID, ActorType: f.ActorType, Severity: f.Severity, Status: st, FirstSeen: now, LastSeen: now.Add(time.Minute),
			Findings: int(v), Latest: f, UpdatedAt: now, UpdatedBy: "chatwarden"}, Version: v, MutedBy: ""}
	}
	a1v2 := alert("a1", 2, models.StatusResolved)
	a2 := alert("a2", 5, models.StatusSilenced)
	a2.MutedBy, a2.EscalatedAt = "s1", now.Add(time.Hour)
	a2old := alert("a2", 4, models.StatusOpen)
	a3 := alert("a3", 1, models.StatusAcknowledged)
	a3.AckedAt = now
	msg := func(id string, v uint64, rev, sent uint32, closed bool, ids ...string) store.AlertMessage {
		return store.AlertMessage{ID: id, Version: v, Kind: string(KindGroup), Channel: "C1", GroupKey: "C1|acme|a1",
			Tenant: "acme", ActorID: "a1", AlertIDs: ids, Rev: rev, SentRev: sent, CreatedAt: now, UpdatedAt: now,
			Closed: closed, Body: `{"reminded_at":"2025-01-06T10:00:00Z"}`}
	}
	m1 := msg("m1", 1, 1, 0, false, "a1")
	m1.IntentAt = now
	m1v2 := msg("m1", 2, 2, 1, false, "a1", "a2")
	m1v2.TS, m1v2.PostedChannel = "1.0001", "C1"
	sup := func(id string, until time.Time, deleted bool) models.Suppression {
		return models.Suppression{ID: id, Kind: models.SuppressSilence, Tenant: "acme", ActorID: "a1", Detector: "x",
			Store: "crm", CreatedAt: now, Until: until, Author: "ann", Reason: "test " + id, Deleted: deleted}
	}
	read := func(t *testing.T, st Store) map[string]any {
		t.Helper()
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(st.PutAlerts(ctx, []store.AlertRow{alert("a1", 1, models.StatusOpen), a2, a3}))
		must(st.PutAlerts(ctx, []store.AlertRow{a1v2, a2old}))
		must(st.PutAlertChanges(ctx, []store.AlertChange{{AlertID: "a1", At: now, Status: models.StatusOpen, By: "x",
			Tenant: "acme", ActorID: "a1", Detector: "d", Severity: models.SeverityHigh}}))
		must(st.PutAlertMessages(ctx, []store.AlertMessage{m1, msg("m2", 1, 3, 3, true, "a1"), msg("m3", 1, 2, 1, true), msg("m4", 1, 1, 1, false)}))
		must(st.PutAlertMessages(ctx, []store.AlertMessage{m1v2}))
		must(st.PutSuppression(ctx, sup("s1", now.Add(time.Hour), false), 1))
		must(st.PutSuppression(ctx, sup("s1", now.Add(2*time.Hour), false), 2))
		must(st.PutSuppression(ctx, sup("s2", now.Add(-time.Second), false), 1))
		must(st.PutSuppression(ctx, sup("s3", time.Time{}, false), 1))
		must(st.PutSuppression(ctx, sup("s3", time.Time{}, true), 2))
		must(st.PutSuppression(ctx, sup("s4", time.Time{}, false), 1))
		out := map[string]any{}
		var err error
		out["ActiveAlerts"], err = st.ActiveAlerts(ctx)
		must(err)
		out["AlertsByID"], err = st.AlertsByID(ctx, []string{"a1", "a2", "nope"})
		must(err)
		out["OpenAlertMessages"], err = st.OpenAlertMessages(ctx)
		must(err)
		out["AlertMessagesByID"], err = st.AlertMessagesByID(ctx, []string{"m2", "m4", "nope"})
		must(err)
		sups, err := st.Suppressions(ctx, now)
		must(err)
		sortSups(sups)
		out["Suppressions"] = sups
		return out
	}
	mem := read(t, newMemStore())
	ch := read(t, storetest.New(t))
	for k := range mem {
		m, _ := json.Marshal(mem[k])
		c, _ := json.Marshal(ch[k])
		if string(m) != string(c) {
			t.Errorf("%s differs:\nmemory:     %s\nClickHouse: %s", k, m, c)
		}
	}
}

func sortSups(sups []models.Suppression) {
	sort.Slice(sups, func(i, j int) bool { return sups[i].ID < sups[j].ID })
}
