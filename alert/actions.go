package alert

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// ActionKind is a responder's action on an alert message.
type ActionKind string

// The actions a message's buttons offer.
const (
	ActionAcknowledge   ActionKind = "acknowledge"
	ActionFalsePositive ActionKind = "false_positive"
	ActionEscalate      ActionKind = "escalate"
	ActionSilence       ActionKind = "silence_24h"
)

// Actions lists every action, in button order.
var Actions = []ActionKind{ActionAcknowledge, ActionFalsePositive, ActionEscalate, ActionSilence}

// SilenceFor is how long the Silence button silences.
const SilenceFor = 24 * time.Hour

// Action is a responder's click: what, on which message or alert, by whom.
type Action struct {
	Kind      ActionKind
	MessageID string
	// AlertID is the one alert the action applies to. A false-positive mark
	// requires it (it never spreads to the other alerts a message folds
	// in); for the other actions an empty AlertID means every alert of
	// MessageID.
	AlertID string
	// User is the responder's stable id (the Slack user id, or the web user
	// name); UserName their display name, recorded in the audit note.
	User     string
	UserName string
	// Identity is the chatwarden user the Slack user maps to, and Role that
	// user's role (secops, responder, manager, admin): MayAct decides with
	// it. An action without a role is refused.
	Identity string
	Role     string
	// Tenants are the tenants the identity may act on (its
	// dashboards.users tenants); empty means every tenant. An action that
	// reaches an alert of another tenant is refused (ErrNotAllowed).
	Tenants []string
	// Reason is why; a false-positive mark requires one.
	Reason string
	// Source is where the click came from: "" (Slack) or "web".
	Source string
	// dryRun is set by Authorize: check, do not apply.
	dryRun bool
	// forwarded is set by ActForwarded: the action came from another
	// dispatcher and is not forwarded again.
	forwarded bool
}

// ErrUnknownMessage is returned by Act for a message id alerting never sent.
var ErrUnknownMessage = errors.New("unknown alert message")

// Act applies a responder's action to the alerts a message shows (a
// false-positive mark: to the one alert a.AlertID): it checks the role
// (MayAct), writes the suppression (false positive, silence) and the state
// changes with who made them, then re-renders the affected messages. It
// returns ErrUnknownMessage when the message does not exist, ErrUnknownAlert
// when the alert does not or is not on the message, and an error wrapping
// ErrNotAllowed or ErrReasonRequired when nothing was changed for those
// reasons.
func (d *Dispatcher) Act(ctx context.Context, now time.Time, a Action) error {
	a.dryRun = false
	return d.act(ctx, now, a)
}

// ErrUnknownAlert is returned by ActOnAlert for an alert id that does not exist.
var ErrUnknownAlert = errors.New("unknown alert")

// ActOnAlert applies a responder's action to one alert (the dashboards'
// alert page offers the same buttons as Slack) with the same role check and
// reason rule as Act; user is recorded as "web:<user>".
func (d *Dispatcher) ActOnAlert(ctx context.Context, now time.Time, alertID string, kind ActionKind, user, role, reason string) error {
	return d.act(ctx, now, Action{Kind: kind, AlertID: alertID, User: user, UserName: user, Identity: user, Role: role,
		Reason: reason, Source: "web"})
}

// act checks a, finds the alerts it applies to, authorizes it against each
// and, unless it is a dry run, applies it.
func (d *Dispatcher) act(ctx context.Context, now time.Time, a Action) error {
	if err := checkAction(&a); err != nil {
		return err
	}
	if err := d.loadOnce(ctx, now); err != nil {
		return err
	}
	d.step.Lock()
	ids, foreign, err := d.targets(ctx, a)
	if err == nil {
		d.mu.Lock()
		err = d.authorizeLocked(a, ids, foreign)
		d.mu.Unlock()
	}
	if err != nil || a.dryRun {
		d.step.Unlock()
		return err
	}
	if len(foreign) == 0 {
		defer d.step.Unlock()
		return d.applyLocked(ctx, now, a, ids)
	}
	d.step.Unlock()
	// Another dispatcher owns the group (every alert of a message is of one
	// tenant and actor): hand the action to it.
	r := foreign[0].Alert
	if d.forward == nil || a.forwarded {
		return fmt.Errorf("alert %s: %w", r.ID, ErrNotOwner)
	}
	if err := d.forward(ctx, r.Tenant, r.ActorID, a); err != nil {
		return fmt.Errorf("forwarding %s of alert %s to its dispatcher: %w", a.Kind, r.ID, err)
	}
	d.m.forwarded.Inc()
	return nil
}

// ForwardFunc hands an action on an alert of (tenant, actor) to the
// dispatcher that owns that alert group (in serve: through the findings
// topic, keyed as that group's findings). nil means the action was handed
// on durably; the owner applies it with ActForwarded.
type ForwardFunc func(ctx context.Context, tenant, actor string, a Action) error

// ActForwarded applies an action another dispatcher forwarded (Options.Forward)
// as Act does, checking the role again; it is not forwarded again: on an
// alert this dispatcher does not own it returns an error wrapping
// ErrNotOwner.
func (d *Dispatcher) ActForwarded(ctx context.Context, now time.Time, a Action) error {
	a.dryRun, a.forwarded = false, true
	return d.act(ctx, now, a)
}

func validAction(k ActionKind) error {
	for _, a := range Actions {
		if a == k {
			return nil
		}
	}
	return fmt.Errorf("unknown action %q", k)
}

// applyLocked applies a to the alerts ids; d.step is held, d.mu is not
// (it is taken for the work in memory, and released for every store call).
func (d *Dispatcher) applyLocked(ctx context.Context, now time.Time, a Action, ids []string) error {
	var missing []string
	d.mu.Lock()
	for _, id := range ids {
		if d.alerts[id] == nil {
			missing = append(missing, id)
		}
	}
	d.mu.Unlock()
	var more []store.AlertRow
	if len(missing) > 0 {
		var err error
		if more, err = d.st.AlertsByID(ctx, missing); err != nil {
			return err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range more {
		d.alerts[r.Alert.ID] = &alertState{row: r}
	}
	by, where := authorOf(a), "Slack"
	if a.Source == "web" {
		where = "the web UI"
	}
	who := a.UserName
	if a.Identity != "" && a.Identity != a.UserName {
		who = fmt.Sprintf("%s (%s)", a.Identity, a.UserName)
	}
	note := fmt.Sprintf("%s by %s in %s", a.Kind, who, where)
	if a.Reason != "" {
		note += ": " + a.Reason
	}
	p := newPlan()
	var sups []models.Suppression
	silenced := map[string]string{} // tenant|actor -> suppression id
	for _, id := range ids {
		st := d.alerts[id]
		if st == nil || terminal(st.row.Alert.Status) {
			continue
		}
		r, _ := p.row(d, id)
		switch a.Kind {
		case ActionAcknowledge:
			if !r.AckedAt.IsZero() {
				continue
			}
			r.AckedAt = now
			p.setStatus(d, now, r, models.StatusAcknowledged, by, note)
		case ActionFalsePositive:
			sp := models.Suppression{ID: "fp-" + id, Kind: models.SuppressFalsePositive, Tenant: r.Alert.Tenant,
				ActorID: r.Alert.ActorID, Detector: r.Alert.Detector, CreatedAt: now, Author: by,
				Until:  now.Add(d.cfg.FalsePositiveFor),
				Reason: fmt.Sprintf("alert %s marked false positive by %s in %s: %s", id, who, where, a.Reason)}
			sups = append(sups, sp)
			p.setStatus(d, now, r, models.StatusFalsePositive, by, note)
		case ActionEscalate:
			d.planEscalation(p, now, id, by, note)
		case ActionSilence:
			k := r.Alert.Tenant + "|" + r.Alert.ActorID
			sid, ok := silenced[k]
			if !ok {
				sid = "sl-" + shortHash(k) + "-" + strconv.FormatInt(now.UnixNano(), 36)
				silenced[k] = sid
				sups = append(sups, models.Suppression{ID: sid, Kind: models.SuppressSilence, Tenant: r.Alert.Tenant,
					ActorID: r.Alert.ActorID, CreatedAt: now, Until: now.Add(SilenceFor), Author: by,
					Reason: fmt.Sprintf("silenced for 24 h by %s from %s (message %s)", who, where, a.MessageID)})
			}
			r.MutedBy = sid
			p.setStatus(d, now, r, models.StatusSilenced, by, note)
		}
	}
	if err := d.putSuppressions(ctx, now, sups); err != nil {
		return err
	}
	touched := append([]string(nil), p.order...)
	p.after = append(p.after, func() {
		for _, g := range d.groups {
			for _, id := range touched {
				if contains(g.alertIDs, id) {
					g.nextFlush = now
				}
			}
		}
	})
	if err := d.commit(ctx, p); err != nil {
		return fmt.Errorf("persisting %s: %w", a.Kind, err)
	}
	d.m.interactions.WithLabelValues(string(a.Kind)).Inc()
	var errs []error
	if err := d.flushDue(ctx, now); err != nil {
		errs = append(errs, err)
	}
	if err := d.updateEscalations(ctx, now); err != nil {
		errs = append(errs, err)
	}
	d.poke()
	return errors.Join(errs...)
}

// putSuppressions writes sups and adds those written to the ones in force;
// d.mu is held and released during the writes.
func (d *Dispatcher) putSuppressions(ctx context.Context, now time.Time, sups []models.Suppression) error {
	if len(sups) == 0 {
		return nil
	}
	versions := make([]uint64, len(sups))
	for i := range sups {
		versions[i] = d.nextVersion(now)
	}
	d.mu.Unlock()
	var err error
	n := 0
	for ; n < len(sups); n++ {
		if err = d.st.PutSuppression(ctx, sups[n], versions[n]); err != nil {
			break
		}
	}
	d.mu.Lock()
	d.sups = append(d.sups, sups[:n]...)
	d.supsGen++ // a suppressions read begun before now may miss these: it is not installed
	if err != nil {
		d.m.storeErrors.Inc()
		return fmt.Errorf("writing %s suppression: %w", sups[n].Kind, err)
	}
	return nil
}
