package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/chatwarden/chatwarden/alert"
	"github.com/chatwarden/chatwarden/store"
)

// ReplayWindow is how old a signed request may be (Slack's 5 minutes); a
// signature seen within it is a replay.
const ReplayWindow = 5 * time.Minute

// maxBody bounds an interactivity request.
const maxBody = 1 << 20

// The false-positive dialog: its callback id, and the block and action ids
// of its reason field.
const (
	FalsePositiveCallback = "cw_false_positive"
	ReasonBlockID         = "cw_reason"
	ReasonActionID        = "reason"
)

// ActFunc applies a responder's action; (*alert.Dispatcher).Act is one, and
// (*alert.Dispatcher).Authorize checks one without applying it.
type ActFunc func(ctx context.Context, now time.Time, a alert.Action) error

// AuditFunc appends one row to the audit trail ((*store.Store).InsertAudit).
// An error means the action it records must not be applied.
type AuditFunc func(ctx context.Context, e store.AuditEntry) error

// HandlerOptions are the interactivity endpoint's collaborators.
type HandlerOptions struct {
	// Secret is the signing secret; empty rejects every request.
	Secret string
	// Act applies an action; Authorize checks one (the false-positive
	// button opens its dialog only for someone allowed to submit it).
	Act, Authorize ActFunc
	// Directory maps Slack users to chatwarden users; nil refuses every
	// click.
	Directory *Directory
	// Client opens the false-positive dialog (views.open) and sends the
	// ephemeral replies (chat.postEphemeral); nil: no dialog can open, so
	// no false-positive mark can be made from Slack.
	Client *Client
	// Audit records every click, applied or refused; required.
	Audit AuditFunc
	// FalsePositiveFor is how long a mark lasts, shown in the dialog.
	FalsePositiveFor time.Duration
	Log              *slog.Logger
}

// Handler is the interactivity endpoint (mounted at /slack/interactivity):
// it verifies Slack's signature (signing secret, 5-minute window,
// constant-time comparison), rejects replays, maps the clicking Slack user
// to a chatwarden user and role, refuses everybody else with an ephemeral
// reply, asks for a reason before a false-positive mark (a dialog), audits
// every click, and applies what is allowed.
type Handler struct {
	o   HandlerOptions
	log *slog.Logger
	// Now is the clock for the replay memory and actions (default time.Now);
	// slack-go checks the timestamp window against the system clock.
	Now func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time
}

// NewHandler returns the endpoint.
func NewHandler(o HandlerOptions) (*Handler, error) {
	if o.Act == nil || o.Authorize == nil || o.Audit == nil {
		return nil, errors.New("slack interactivity: Act, Authorize and Audit are required")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{o: o, log: log, Now: time.Now, seen: map[string]time.Time{}}, nil //nolint:forbidigo // Now is an exported field the caller replaces; the wall clock is the production default for signature freshness
}

// replayed remembers sig and reports whether it was seen within the window.
func (h *Handler) replayed(sig string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, at := range h.seen {
		if now.Sub(at) > 2*ReplayWindow {
			delete(h.seen, k)
		}
	}
	if _, ok := h.seen[sig]; ok {
		return true
	}
	h.seen[sig] = now
	return false
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if h.o.Secret == "" {
		http.Error(w, "interactivity is not configured", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	sv, err := slack.NewSecretsVerifier(r.Header, h.o.Secret)
	if err != nil {
		h.log.Warn("rejected slack request", "reason", "bad or stale signature headers", "err", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	_, _ = sv.Write(body)
	if err := sv.Ensure(); err != nil {
		h.log.Warn("rejected slack request", "reason", "signature mismatch")
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	now := h.Now()
	if h.replayed(r.Header.Get("X-Slack-Signature"), now) {
		h.log.Warn("rejected slack request", "reason", "replay")
		http.Error(w, "replayed request", http.StatusUnauthorized)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	switch cb.Type {
	case slack.InteractionTypeViewSubmission:
		h.submission(w, r.Context(), now, &cb)
	default:
		h.blockActions(w, r.Context(), now, &cb)
	}
}

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
	p, err := h.o.Directory.Resolve(ctx, c.cb.User.ID, now)
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

// blockActions handles button presses.
func (h *Handler) blockActions(w http.ResponseWriter, ctx context.Context, now time.Time, cb *slack.InteractionCallback) {
	var errs []error
	for _, a := range cb.ActionCallback.BlockActions {
		c := &click{cb: cb, kind: alert.ActionKind(a.ActionID), msgID: a.Value}
		known := false
		for _, k := range alert.Actions {
			known = known || k == c.kind
		}
		if !known {
			continue // link buttons (investigate, report) need nothing
		}
		if c.kind == alert.ActionFalsePositive {
			// The button carries "<message id>|<alert id>": the mark is
			// for the alert the message shows first, never its group.
			c.msgID, c.alert, _ = strings.Cut(a.Value, "|")
			if c.alert == "" {
				h.refuse(ctx, now, c, "This message predates per-alert false-positive marks: mark the alert from its web page.")
				continue
			}
		}
		msg, err := h.decide(ctx, now, c)
		switch {
		case err != nil:
			h.log.Error("deciding a slack action", "action", c.kind, "message", c.msgID, "err", err)
			errs = append(errs, err)
			continue
		case msg != "":
			h.refuse(ctx, now, c, msg)
			continue
		}
		if c.kind == alert.ActionFalsePositive {
			if err := h.openReasonDialog(ctx, c); err != nil {
				h.log.Error("opening the false-positive dialog", "alert", c.alert, "err", err)
				errs = append(errs, err)
			}
			continue // applied on submission, with the reason
		}
		if err := h.apply(ctx, now, c); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		http.Error(w, "could not apply the action; try again", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
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

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}
