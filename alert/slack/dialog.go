package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/chatwarden/chatwarden/alert"
)

// The false-positive dialog: its callback id, and the block and action ids
// of its reason field.
const (
	FalsePositiveCallback = "cw_false_positive"
	ReasonBlockID         = "cw_reason"
	ReasonActionID        = "reason"
)

// fpMeta is what the dialog carries to its submission.
type fpMeta struct {
	Message string `json:"m"`
	Alert   string `json:"a"`
	Channel string `json:"c"`
}

// openReasonDialog asks for the reason of a false-positive mark
// (views.open with the click's trigger id).
func (h *Handler) openReasonDialog(ctx context.Context, c *click) error {
	if h.o.Client == nil {
		return errors.New("no Slack client to open the dialog with")
	}
	meta, _ := json.Marshal(fpMeta{Message: c.msgID, Alert: c.alert, Channel: c.cb.Channel.ID})
	input := slack.NewPlainTextInputBlockElement(plain("Why is this not a breach? Ticket, change, who confirmed it."), ReasonActionID)
	input.Multiline = true
	input.MinLength = 10
	input.MaxLength = alert.MaxReasonLen
	days := int(h.o.FalsePositiveFor.Hours() / 24)
	text := fmt.Sprintf("Mark alert %s as a false positive. Its detector stays quiet for this actor for %d days, and the mark, "+
		"your name and this reason go to chatwarden's audit trail.", code(c.alert), days)
	view := slack.ModalViewRequest{
		Type: slack.VTModal, CallbackID: FalsePositiveCallback, PrivateMetadata: string(meta),
		Title: plain("False positive"), Submit: plain("Mark"), Close: plain("Cancel"),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(mrkdwn(text), nil, nil),
			slack.NewInputBlock(ReasonBlockID, plain("Reason"), nil, input),
		}},
	}
	_, err := h.o.Client.api.OpenViewContext(ctx, c.cb.TriggerID, view)
	return err
}

// submission handles the false-positive dialog's submit: the same checks
// again (the submitter, the role, now with the reason), then the mark. A
// refusal is shown in the dialog.
func (h *Handler) submission(w http.ResponseWriter, ctx context.Context, now time.Time, cb *slack.InteractionCallback) {
	if cb.View.CallbackID != FalsePositiveCallback {
		w.WriteHeader(http.StatusOK)
		return
	}
	var m fpMeta
	if err := json.Unmarshal([]byte(cb.View.PrivateMetadata), &m); err != nil || m.Alert == "" {
		http.Error(w, "bad dialog metadata", http.StatusBadRequest)
		return
	}
	if cb.Channel.ID == "" {
		cb.Channel.ID = m.Channel
	}
	c := &click{cb: cb, kind: alert.ActionFalsePositive, msgID: m.Message, alert: m.Alert,
		reason: strings.TrimSpace(cb.View.State.Values[ReasonBlockID][ReasonActionID].Value)}
	dialogError := func(msg string) {
		writeJSON(w, map[string]any{"response_action": "errors", "errors": map[string]string{ReasonBlockID: msg}})
	}
	if c.reason == "" {
		dialogError("A false-positive mark needs a reason.")
		return
	}
	msg, err := h.decide(ctx, now, c)
	switch {
	case err != nil:
		h.log.Error("deciding a slack false-positive mark", "alert", c.alert, "err", err)
		dialogError("chatwarden could not check your permission right now. Try again.")
		return
	case msg != "":
		h.log.Warn("slack action refused", "action", c.kind, "alert", c.alert, "slack_user", cb.User.ID, "why", msg)
		_ = h.audit(ctx, now, c, auditRefused, "refused: "+msg)
		dialogError(msg)
		return
	}
	if err := h.audit(ctx, now, c, auditApplied, "authorized"); err != nil {
		dialogError("chatwarden could not record the mark in its audit trail, so it was not applied. Try again.")
		return
	}
	if err := h.o.Act(ctx, now, c.action()); err != nil {
		h.log.Error("applying a slack false-positive mark", "alert", c.alert, "err", err)
		_ = h.audit(ctx, now, c, auditFailed, "failed")
		if msg := refusal(err); msg != "" {
			dialogError(msg)
			return
		}
		dialogError("chatwarden could not apply the mark. Try again.")
		return
	}
	h.log.Info("slack action applied", "action", c.kind, "alert", c.alert, "slack_user", cb.User.ID, "user", c.person.Name)
	w.WriteHeader(http.StatusOK) // an empty 200 closes the dialog
}
