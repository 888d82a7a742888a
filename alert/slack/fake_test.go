package slack_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/slack-go/slack/slacktest"
)

// fakeSlack is a Slack workspace on slack-go's slacktest server with the
// handlers slacktest lacks: chat.update, conversations.history with blocks
// and metadata, unique ts per post, and fault injection (429 with
// Retry-After, 500, a post whose answer is lost).
type fakeSlack struct {
	srv *slacktest.Server

	mu        sync.Mutex
	seq       int
	channels  map[string][]*fakeMsg
	posts     int
	updates   int
	histories int
	calls     map[string]int
	// users is the workspace's people for users.info, by Slack id.
	users map[string]fakeUser
	// views are the dialogs opened (views.open), ephemerals the replies
	// sent (chat.postEphemeral).
	views      []fakeView
	ephemerals []fakeEphemeral
	// fault decides, per call, whether to fail it: method is "post",
	// "update" or "history". status 429 answers with Retry-After
	// retryAfter; status 500 fails; lost=true records a post but answers 500.
	fault func(method string) (status, retryAfter int, lost bool)
}

type fakeUser struct {
	Email string
	Guest bool
}

type fakeView struct {
	TriggerID string
	View      map[string]any
}

type fakeEphemeral struct {
	Channel, User, Text string
}

type fakeMsg struct {
	TS       string          `json:"ts"`
	Text     string          `json:"text"`
	Blocks   json.RawMessage `json:"blocks,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Updates  int             `json:"-"`
}

func newFakeSlack(t *testing.T) *fakeSlack {
	t.Helper()
	f := &fakeSlack{channels: map[string][]*fakeMsg{}, calls: map[string]int{}, users: map[string]fakeUser{}}
	f.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", f.post)
		c.Handle("/chat.update", f.update)
		c.Handle("/conversations.history", f.history)
		c.Handle("/users.info", f.userInfo)
		c.Handle("/views.open", f.viewsOpen)
		c.Handle("/chat.postEphemeral", f.postEphemeral)
	})
	f.srv.Start()
	t.Cleanup(f.srv.Stop)
	return f
}

func (f *fakeSlack) url() string { return f.srv.GetAPIURL() }

func form(r *http.Request) url.Values {
	b, _ := io.ReadAll(r.Body)
	v, _ := url.ParseQuery(string(b))
	if len(v) == 0 {
		v = r.URL.Query()
	}
	return v
}

// injected applies the fault for method; it returns true when it answered.
func (f *fakeSlack) injected(w http.ResponseWriter, method string) (answered, lost bool) {
	f.calls[method]++
	if f.fault == nil {
		return false, false
	}
	status, retry, lost := f.fault(method)
	switch {
	case lost:
		return false, true
	case status == http.StatusTooManyRequests:
		w.Header().Set("Retry-After", fmt.Sprint(retry))
		w.WriteHeader(status)
		return true, false
	case status != 0:
		http.Error(w, "slack is down", status)
		return true, false
	}
	return false, false
}

func (f *fakeSlack) post(w http.ResponseWriter, r *http.Request) {
	v := form(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	answered, lost := f.injected(w, "post")
	if answered {
		return
	}
	f.seq++
	ch := v.Get("channel")
	m := &fakeMsg{TS: fmt.Sprintf("%d.%06d", 1700000000+f.seq, f.seq), Text: v.Get("text")}
	if b := v.Get("blocks"); b != "" {
		m.Blocks = json.RawMessage(b)
	}
	if md := v.Get("metadata"); md != "" {
		m.Metadata = json.RawMessage(md)
	}
	f.channels[ch] = append(f.channels[ch], m)
	f.posts++
	if lost {
		http.Error(w, "connection reset", http.StatusBadGateway)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": ch, "ts": m.TS})
}

func (f *fakeSlack) update(w http.ResponseWriter, r *http.Request) {
	v := form(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	if answered, _ := f.injected(w, "update"); answered {
		return
	}
	ch, ts := v.Get("channel"), v.Get("ts")
	for _, m := range f.channels[ch] {
		if m.TS == ts {
			m.Text, m.Blocks, m.Updates = v.Get("text"), json.RawMessage(v.Get("blocks")), m.Updates+1
			f.updates++
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": ch, "ts": ts, "text": m.Text})
			return
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "message_not_found"})
}

func (f *fakeSlack) history(w http.ResponseWriter, r *http.Request) {
	v := form(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	if answered, _ := f.injected(w, "history"); answered {
		return
	}
	f.histories++
	msgs := []map[string]any{}
	list := f.channels[v.Get("channel")]
	for i := len(list) - 1; i >= 0; i-- { // newest first, like Slack
		m := list[i]
		o := map[string]any{"type": "message", "ts": m.TS, "text": m.Text}
		if m.Blocks != nil {
			o["blocks"] = m.Blocks
		}
		if m.Metadata != nil {
			o["metadata"] = m.Metadata
		}
		msgs = append(msgs, o)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "messages": msgs, "has_more": false})
}

// snapshot returns the number of posts and updates and, per channel, the
// messages (copies).
func (f *fakeSlack) counts() (posts, updates int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.posts, f.updates
}

func (f *fakeSlack) messages(ch string) []fakeMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeMsg
	for _, m := range f.channels[ch] {
		out = append(out, *m)
	}
	return out
}

func (f *fakeSlack) setFault(fn func(method string) (int, int, bool)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = fn
}

// userInfo answers users.info from f.users (user_not_found otherwise).
func (f *fakeSlack) userInfo(w http.ResponseWriter, r *http.Request) {
	v := form(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["users.info"]++
	id := v.Get("user")
	u, ok := f.users[id]
	if !ok {
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "user_not_found"})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "user": map[string]any{"id": id, "name": "n-" + id,
		"is_restricted": u.Guest, "is_ultra_restricted": false, "profile": map[string]any{"email": u.Email}}})
}

// viewsOpen records a dialog (views.open, a JSON body); the trigger id must
// be set.
func (f *fakeSlack) viewsOpen(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TriggerID string         `json:"trigger_id"`
		View      map[string]any `json:"view"`
	}
	err := json.NewDecoder(r.Body).Decode(&req)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case err != nil || req.View == nil:
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_arguments"})
		return
	case req.TriggerID == "":
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_trigger_id"})
		return
	}
	f.views = append(f.views, fakeView{TriggerID: req.TriggerID, View: req.View})
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "view": map[string]any{"id": fmt.Sprintf("V%d", len(f.views))}})
}

// postEphemeral records an ephemeral reply (chat.postEphemeral).
func (f *fakeSlack) postEphemeral(w http.ResponseWriter, r *http.Request) {
	v := form(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ephemerals = append(f.ephemerals, fakeEphemeral{Channel: v.Get("channel"), User: v.Get("user"), Text: v.Get("text")})
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "message_ts": "1700000000.000001"})
}

func (f *fakeSlack) setUser(id string, u fakeUser) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[id] = u
}

func (f *fakeSlack) opened() []fakeView {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeView(nil), f.views...)
}

func (f *fakeSlack) replies() []fakeEphemeral {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeEphemeral(nil), f.ephemerals...)
}
