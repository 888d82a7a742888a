package alert

import (
	"net/url"
	"sort"
	"strings"
	"time"
)

// investigateURL links to the investigate page for an actor and window.
func (d *Dispatcher) investigateURL(tenant, actor string, from, to time.Time) string {
	if d.cfg.InvestigateURL == "" {
		return ""
	}
	q := url.Values{}
	q.Set("actor", actor)
	q.Set("tenant", tenant)
	q.Set("from", from.UTC().Format(time.RFC3339))
	q.Set("to", to.UTC().Format(time.RFC3339))
	return strings.TrimRight(d.cfg.InvestigateURL, "/") + "/investigate?" + q.Encode()
}

// render builds what message ms shows from the current alert states.
func (d *Dispatcher) render(ms *msgState) *Message {
	m := &Message{ID: ms.row.ID, Kind: MessageKind(ms.row.Kind), Rev: ms.row.Rev, Tenant: ms.row.Tenant,
		ActorID: ms.row.ActorID, MaxListed: d.cfg.MaxListed, EscalationChannel: d.cfg.EscalationChannel,
		EscalateAfter: d.cfg.EscalateAfter, RemindedAt: ms.body.RemindedAt, Closed: ms.row.Closed, Digest: ms.body.Digest}
	var from, to time.Time
	for _, id := range ms.row.AlertIDs {
		a := d.alerts[id]
		if a == nil {
			continue
		}
		v := a.view()
		m.Alerts = append(m.Alerts, v)
		start := v.Latest.WindowStart
		if start.IsZero() || v.FirstSeen.Before(start) {
			start = v.FirstSeen
		}
		end := v.Latest.WindowEnd
		if end.Before(v.LastSeen) {
			end = v.LastSeen
		}
		if from.IsZero() || start.Before(from) {
			from = start
		}
		if end.After(to) {
			to = end
		}
	}
	SortAlerts(m.Alerts)
	if m.Kind != KindDigest && len(m.Alerts) > 0 {
		m.InvestigateURL = d.investigateURL(m.Tenant, m.ActorID, from.Add(-15*time.Minute), to.Add(15*time.Minute))
	}
	return m
}

// SortAlerts orders alerts worst first: unmuted before muted, active before
// ended, higher severity, more findings, then id.
func SortAlerts(vs []AlertView) {
	rank := func(v *AlertView) int {
		switch {
		case terminal(v.Status):
			return 2
		case v.Muted():
			return 1
		}
		return 0
	}
	sort.SliceStable(vs, func(i, j int) bool {
		a, b := &vs[i], &vs[j]
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		if a.Findings != b.Findings {
			return a.Findings > b.Findings
		}
		return a.ID < b.ID
	})
}
