package alert

import (
	"context"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// refreshSuppressions re-reads the suppressions register every 10 s (of now).
// It takes d.mu only around memory (callers hold neither lock for the read,
// and may hold d.step): a slow read delays only its own caller, and while
// one is under way the others keep the suppressions they have. A read
// begun before a suppression was written here is not installed.
func (d *Dispatcher) refreshSuppressions(ctx context.Context, now time.Time, force bool) {
	d.mu.Lock()
	if (!force && !d.supsAt.IsZero() && now.Sub(d.supsAt) < 10*time.Second && !now.Before(d.supsAt)) ||
		(d.supsBusy && !d.supsAt.IsZero()) {
		d.mu.Unlock()
		return
	}
	d.supsBusy = true
	gen := d.supsGen
	d.mu.Unlock()
	sups, err := d.st.Suppressions(ctx, now)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.supsBusy = false
	if err != nil {
		d.m.storeErrors.Inc()
		d.log.Warn("reading suppressions; keeping the previous ones", "err", err)
		return
	}
	if gen != d.supsGen {
		return // one was written meanwhile; the next call reads again
	}
	d.sups, d.supsAt = sups, now
}

// inhibitors maps "tenant|actor" to an active, unmuted critical alert.
func (d *Dispatcher) inhibitors(p *plan) map[string]string {
	out := map[string]string{}
	for id := range d.alerts {
		r, _ := p.row(d, id)
		a := &r.Alert
		if a.Severity == models.SeverityCritical && !terminal(a.Status) && r.MutedBy == "" && !isSelf(a.Detector) {
			if cur, ok := out[a.Tenant+"|"+a.ActorID]; !ok || id < cur {
				out[a.Tenant+"|"+a.ActorID] = id
			}
		}
	}
	return out
}

// muteReason says what keeps a quiet: a matching suppression, or a critical
// alert on the same actor (inhibition); "" when nothing does.
func (d *Dispatcher) muteReason(a *models.Alert, inhibitors map[string]string) string {
	stores := a.Latest.Evidence.TopStores
	if len(stores) == 0 {
		stores = []string{""}
	}
	for i := range d.sups {
		sp := &d.sups[i]
		if isSelf(a.Detector) && sp.MatchesEverything() {
			continue // a silence on everything must not hide the alert about it
		}
		for _, st := range stores {
			if sp.Matches(a.Detector, a.Tenant, a.ActorID, st) {
				return sp.ID
			}
		}
	}
	if a.Severity < models.SeverityCritical {
		if id, ok := inhibitors[a.Tenant+"|"+a.ActorID]; ok && id != a.ID {
			return "inhibited:" + id
		}
	}
	return ""
}
