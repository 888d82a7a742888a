package alert

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// The chatwarden roles an action may carry (dashboards.Role has the same
// values; alerting only compares strings).
const (
	RoleSecOps    = "secops"
	RoleResponder = "responder"
	RoleManager   = "manager"
	RoleAdmin     = "admin"
)

// ErrNotAllowed is returned (wrapped, with the reason) by Act, ActOnAlert and
// Authorize when the actor's role may not take the action on one of the
// alerts. Nothing changed.
var ErrNotAllowed = errors.New("not allowed")

// ErrReasonRequired is returned when a false-positive mark has no reason.
var ErrReasonRequired = errors.New("a false-positive mark needs a reason")

// MaxReasonLen bounds the reason of a false-positive mark, in characters.
const MaxReasonLen = 500

// MayAct reports whether role may take kind on an alert of severity sev:
// acknowledge and escalate are for secops, responder and admin; silence and
// false positive too, except on a high or critical alert, where only secops
// and admin may hide it. A manager (aggregates only) may take none.
func MayAct(role string, kind ActionKind, sev models.Severity) bool {
	switch kind {
	case ActionAcknowledge, ActionEscalate:
		return slices.Contains([]string{RoleSecOps, RoleResponder, RoleAdmin}, role)
	case ActionSilence, ActionFalsePositive:
		if sev >= models.SeverityHigh {
			return role == RoleSecOps || role == RoleAdmin
		}
		return slices.Contains([]string{RoleSecOps, RoleResponder, RoleAdmin}, role)
	}
	return false
}

// authorOf is who a suppression or state change is recorded as:
// "web:<user>" from the web UI, "slack:<slack user id>:<user>" from Slack.
func authorOf(a Action) string {
	if a.Source == "web" {
		return "web:" + a.User
	}
	if a.Identity == "" {
		return "slack:" + a.User
	}
	return "slack:" + a.User + ":" + a.Identity
}

// PersonOf returns the chatwarden user behind a suppression author written
// by alerting ("web:ann" and "slack:U42:ann" are both "ann"); other authors
// are returned as they are.
func PersonOf(author string) string {
	if u, ok := strings.CutPrefix(author, "web:"); ok {
		return u
	}
	if rest, ok := strings.CutPrefix(author, "slack:"); ok {
		if _, who, ok := strings.Cut(rest, ":"); ok {
			return who
		}
	}
	return author
}

// checkAction validates what an action carries, before any look-up.
func checkAction(a *Action) error {
	if err := validAction(a.Kind); err != nil {
		return err
	}
	if a.Role == "" {
		return fmt.Errorf("%w: the action carries no chatwarden role", ErrNotAllowed)
	}
	if a.Kind == ActionFalsePositive {
		a.Reason = strings.TrimSpace(a.Reason)
		if a.AlertID == "" {
			return errors.New("a false-positive mark names the one alert it applies to")
		}
		if !a.dryRun && a.Reason == "" {
			return ErrReasonRequired
		}
		if utf8.RuneCountInString(a.Reason) > MaxReasonLen {
			return fmt.Errorf("the reason is longer than %d characters", MaxReasonLen)
		}
	}
	return nil
}

// targets returns the alerts a applies to: the one alert of a
// false-positive mark (which must be on the message when one is named),
// otherwise every alert the message shows; it loads those not in memory.
// Those whose group another dispatcher owns (Own) are returned in foreign,
// as the store has them, and not kept. d.step is held, d.mu is not (it is
// taken for the memory, never across a store call).
func (d *Dispatcher) targets(ctx context.Context, a Action) (ids []string, foreign []store.AlertRow, err error) {
	if a.MessageID != "" {
		d.mu.Lock()
		ms := d.msgs[a.MessageID]
		if ms != nil {
			ids = append(ids, ms.row.AlertIDs...)
		}
		d.mu.Unlock()
		if ms == nil {
			rows, err := d.st.AlertMessagesByID(ctx, []string{a.MessageID})
			if err != nil {
				return nil, nil, err
			}
			if len(rows) == 0 {
				return nil, nil, ErrUnknownMessage
			}
			ids = rows[0].AlertIDs
		}
	}
	if a.AlertID != "" {
		if a.MessageID != "" && !slices.Contains(ids, a.AlertID) {
			return nil, nil, fmt.Errorf("alert %s is not on message %s: %w", a.AlertID, a.MessageID, ErrUnknownAlert)
		}
		ids = []string{a.AlertID}
	}
	var missing []string
	d.mu.Lock()
	for _, id := range ids {
		if d.alerts[id] == nil {
			missing = append(missing, id)
		}
	}
	d.mu.Unlock()
	if len(missing) > 0 {
		more, err := d.st.AlertsByID(ctx, missing)
		if err != nil {
			return nil, nil, err
		}
		d.mu.Lock()
		for _, r := range more {
			if !d.ownsLocked(r.Alert.Tenant, r.Alert.ActorID) {
				foreign = append(foreign, r)
				continue
			}
			if d.alerts[r.Alert.ID] == nil {
				d.alerts[r.Alert.ID] = &alertState{row: r}
			}
		}
		d.mu.Unlock()
	}
	if a.AlertID != "" {
		d.mu.Lock()
		known := d.alerts[a.AlertID] != nil || len(foreign) > 0
		d.mu.Unlock()
		if !known {
			return nil, nil, ErrUnknownAlert
		}
	}
	return ids, foreign, nil
}

// authorizeLocked checks a's tenants and role against every alert it
// applies to (one alert of another tenant refuses the whole action), and
// that nobody hides the self-monitoring alert about their own suppressions.
// d.mu is held.
func (d *Dispatcher) authorizeLocked(a Action, ids []string, foreign []store.AlertRow) error {
	for _, id := range ids {
		if st := d.alerts[id]; st != nil {
			if err := authorizeOn(a, &st.row.Alert); err != nil {
				return err
			}
		}
	}
	for i := range foreign {
		if err := authorizeOn(a, &foreign[i].Alert); err != nil {
			return err
		}
	}
	return nil
}

// authorizeOn checks a against one alert.
func authorizeOn(a Action, al *models.Alert) error {
	if len(a.Tenants) > 0 && !slices.Contains(a.Tenants, al.Tenant) {
		return fmt.Errorf("%w: alert %s is of tenant %s, and you may act only on %s", ErrNotAllowed, al.ID, al.Tenant, strings.Join(a.Tenants, ", "))
	}
	if !MayAct(a.Role, a.Kind, al.Severity) {
		return fmt.Errorf("%w: role %s may not %s a %s alert (%s)", ErrNotAllowed, a.Role, a.Kind, al.Severity, al.ID)
	}
	if (a.Kind == ActionSilence || a.Kind == ActionFalsePositive) && a.Identity != "" && al.Detector == DetectorMassSuppression && al.ActorID == "person:"+a.Identity {
		return fmt.Errorf("%w: %s may not %s the alert about their own suppressions", ErrNotAllowed, a.Identity, a.Kind)
	}
	return nil
}

// Authorize reports whether a would be allowed, without applying it: nil,
// ErrUnknownMessage, ErrUnknownAlert, or an error wrapping ErrNotAllowed.
// The Slack endpoint calls it before opening the false-positive dialog.
func (d *Dispatcher) Authorize(ctx context.Context, now time.Time, a Action) error {
	a.dryRun = true
	return d.act(ctx, now, a)
}

// ActionTenants returns the tenants of the alerts a applies to (for its
// audit row), sorted; an unknown message or alert has none.
func (d *Dispatcher) ActionTenants(ctx context.Context, now time.Time, a Action) ([]string, error) {
	if err := d.loadOnce(ctx, now); err != nil {
		return nil, err
	}
	d.step.Lock()
	defer d.step.Unlock()
	ids, foreign, err := d.targets(ctx, a)
	if errors.Is(err, ErrUnknownMessage) || errors.Is(err, ErrUnknownAlert) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	d.mu.Lock()
	for _, id := range ids {
		if st := d.alerts[id]; st != nil && !slices.Contains(out, st.row.Alert.Tenant) {
			out = append(out, st.row.Alert.Tenant)
		}
	}
	d.mu.Unlock()
	for _, r := range foreign {
		if !slices.Contains(out, r.Alert.Tenant) {
			out = append(out, r.Alert.Tenant)
		}
	}
	slices.Sort(out)
	return out, nil
}

// massSuppressors returns, for each person who created suppressions
// (silences, false-positive marks) on more than limit distinct actors in the
// 24 hours before now, the actors. d.mu is held.
func (d *Dispatcher) massSuppressorsLocked(now time.Time, limit int) map[string][]string {
	actors := map[string]map[string]bool{}
	for _, sp := range d.sups {
		if sp.Kind != models.SuppressSilence && sp.Kind != models.SuppressFalsePositive {
			continue
		}
		if sp.CreatedAt.After(now) || now.Sub(sp.CreatedAt) > 24*time.Hour {
			continue
		}
		who := PersonOf(sp.Author)
		if actors[who] == nil {
			actors[who] = map[string]bool{}
		}
		actors[who][sp.Tenant+"/"+sp.ActorID] = true
	}
	out := map[string][]string{}
	for who, as := range actors {
		if len(as) <= limit {
			continue
		}
		for a := range as {
			out[who] = append(out[who], a)
		}
		slices.Sort(out[who])
	}
	return out
}
