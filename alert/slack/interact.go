package slack

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
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
	// Tenants returns the tenants of the alerts an action is about
	// ((*alert.Dispatcher).ActionTenants), recorded in its audit rows so
	// that an admin limited to tenants sees the clicks on their alerts;
	// nil (or an error) records none (rows for admins of every tenant).
	Tenants func(ctx context.Context, now time.Time, a alert.Action) ([]string, error)
	Log     *slog.Logger
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

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}
