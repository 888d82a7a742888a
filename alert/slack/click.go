package slack

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/chatwarden/chatwarden/alert"
	"github.com/chatwarden/chatwarden/store"
)

// click is one button press or dialog submission being decided.
type click struct {
	cb     *slack.InteractionCallback
	kind   alert.ActionKind
	msgID  string
	alert  string
	reason string
	person Person
}

// detail is the audit row's detail: the Slack identity and what was asked.
func (c *click) detail(result string) string {
	d := fmt.Sprintf("slack_user=%s slack_name=%s action=%s message=%s", c.cb.User.ID, strconv.Quote(c.cb.User.Name), c.kind, c.msgID)
	if c.alert != "" {
		d += " alert=" + c.alert
	}
	if c.reason != "" {
		d += " reason=" + strconv.Quote(c.reason)
	}
	return d + " result=" + result
}

// The audit actions of Slack clicks.
const (
	auditApplied = "slack_action"
	auditRefused = "slack_action_refused"
	auditFailed  = "slack_action_failed"
)

// audit writes the row of c under action (auditApplied, auditRefused,
// auditFailed).
func (h *Handler) audit(ctx context.Context, now time.Time, c *click, action, result string) error {
	e := store.AuditEntry{TS: now, User: c.person.Name, Role: c.person.Role, Source: "slack", Action: action,
		Detail: c.detail(result)}
	if h.o.Tenants != nil {
		ts, err := h.o.Tenants(ctx, now, c.action())
		if err != nil {
			h.log.Warn("finding the tenants of a slack action's alerts", "action", c.kind, "message", c.msgID, "err", err)
		}
		e.Tenants = ts
	}
	if action == auditApplied {
		e.Rows = 1
	}
	if e.User == "" {
		e.User = "slack:" + c.cb.User.ID
	}
	if err := h.o.Audit(ctx, e); err != nil {
		h.log.Error("writing the audit trail for a slack action", "action", c.kind, "err", err)
		return err
	}
	return nil
}

// action is what the dispatcher is asked to do for c.
func (c *click) action() alert.Action {
	return alert.Action{Kind: c.kind, MessageID: c.msgID, AlertID: c.alert, User: c.cb.User.ID, UserName: c.cb.User.Name,
		Identity: c.person.Name, Role: c.person.Role, Tenants: c.person.Tenants, Reason: c.reason}
}

// refusal is the reply for an action that is not allowed, or "" when err
// is not a refusal.
func refusal(err error) string {
	switch {
	case errors.Is(err, ErrUnmapped):
		return "You are not a chatwarden user, so you cannot act on alerts. Ask an admin to link your Slack account."
	case errors.Is(err, alert.ErrNotAllowed):
		return "Not allowed: " + strings.TrimPrefix(err.Error(), alert.ErrNotAllowed.Error()+": ") + "."
	case errors.Is(err, alert.ErrUnknownMessage), errors.Is(err, alert.ErrUnknownAlert):
		return "This alert is no longer known to chatwarden."
	case errors.Is(err, alert.ErrReasonRequired):
		return "A false-positive mark needs a reason."
	}
	return ""
}

// decide resolves the clicker and checks the action; it returns the reply
// for a refusal ("" when allowed) and an error when the decision could not
// be made (Slack or the store unreachable).
func (h *Handler) decide(ctx context.Context, now time.Time, c *click) (string, error) {
	p, err := h.o.Directory.Resolve(ctx, c.cb.User.ID, c.cb.Team.ID, now)
	if err != nil {
		if msg := refusal(err); msg != "" {
			return msg, nil
		}
		return "", err
	}
	c.person = p
	if err := h.o.Authorize(ctx, now, c.action()); err != nil {
		if msg := refusal(err); msg != "" {
			return msg, nil
		}
		return "", err
	}
	return "", nil
}

// apply audits and applies an allowed action. The audit row comes first:
// an action the trail cannot record is not taken.
func (h *Handler) apply(ctx context.Context, now time.Time, c *click) error {
	if err := h.audit(ctx, now, c, auditApplied, "authorized"); err != nil {
		h.reply(ctx, c, "chatwarden could not record your action in its audit trail, so it was not applied. Try again.")
		return err
	}
	err := h.o.Act(ctx, now, c.action())
	if err != nil {
		if msg := refusal(err); msg != "" { // changed since Authorize
			_ = h.audit(ctx, now, c, auditRefused, "refused")
			h.reply(ctx, c, msg)
			return nil
		}
		h.log.Error("applying slack action", "action", c.kind, "message", c.msgID, "err", err)
		_ = h.audit(ctx, now, c, auditFailed, "failed")
		return err
	}
	h.log.Info("slack action applied", "action", c.kind, "message", c.msgID, "alert", c.alert,
		"slack_user", c.cb.User.ID, "user", c.person.Name)
	return nil
}

// refuse audits a refused click and tells the clicker why, visible to them
// only.
func (h *Handler) refuse(ctx context.Context, now time.Time, c *click, msg string) {
	h.log.Warn("slack action refused", "action", c.kind, "message", c.msgID, "slack_user", c.cb.User.ID,
		"user", c.person.Name, "why", msg)
	_ = h.audit(ctx, now, c, auditRefused, "refused: "+msg)
	h.reply(ctx, c, msg)
}

// reply sends an ephemeral message to the clicker in the channel of the
// click (chat.postEphemeral).
func (h *Handler) reply(ctx context.Context, c *click, msg string) {
	if h.o.Client == nil || c.cb.Channel.ID == "" {
		return
	}
	if _, err := h.o.Client.api.PostEphemeralContext(ctx, c.cb.Channel.ID, c.cb.User.ID, slack.MsgOptionText(msg, false)); err != nil {
		h.log.Warn("sending an ephemeral reply", "err", err)
	}
}
