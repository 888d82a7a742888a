package slack

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/chatwarden/chatwarden/alert"
)

// ReplayWindow is how old a signed request may be (Slack's 5 minutes); a
// signature seen within it is a replay.
const ReplayWindow = 5 * time.Minute

// maxBody bounds an interactivity request.
const maxBody = 1 << 20

// ActFunc applies a responder's action; (*alert.Dispatcher).Act is one.
type ActFunc func(ctx context.Context, now time.Time, a alert.Action) error

// Handler is the interactivity endpoint (mounted at /slack/interactivity):
// it verifies Slack's signature (signing secret, 5-minute window,
// constant-time comparison), rejects replays, and applies button clicks.
type Handler struct {
	secret string
	act    ActFunc
	log    *slog.Logger
	// Now is the clock for the replay memory and actions (default time.Now);
	// slack-go checks the timestamp window against the system clock.
	Now func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time
}

// NewHandler returns the endpoint. With an empty secret every request is
// rejected (Slack interactivity is off).
func NewHandler(secret string, act ActFunc, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{secret: secret, act: act, log: log, Now: time.Now, seen: map[string]time.Time{}}
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
	if h.secret == "" {
		http.Error(w, "interactivity is not configured", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	sv, err := slack.NewSecretsVerifier(r.Header, h.secret)
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
	var errs []error
	for _, a := range cb.ActionCallback.BlockActions {
		kind := alert.ActionKind(a.ActionID)
		known := false
		for _, k := range alert.Actions {
			known = known || k == kind
		}
		if !known {
			continue // link buttons (investigate, report) need nothing
		}
		err := h.act(r.Context(), now, alert.Action{Kind: kind, MessageID: a.Value, User: cb.User.ID,
			UserName: cb.User.Name})
		switch {
		case errors.Is(err, alert.ErrUnknownMessage):
			h.log.Warn("slack action on an unknown message", "action", kind, "message", a.Value)
		case err != nil:
			h.log.Error("applying slack action", "action", kind, "message", a.Value, "err", err)
			errs = append(errs, err)
		default:
			h.log.Info("slack action applied", "action", kind, "message", a.Value, "user", cb.User.ID)
		}
	}
	if len(errs) > 0 {
		http.Error(w, "could not apply the action; try again", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}
