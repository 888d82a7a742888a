// Package slackfake is the one Slack workspace stand-in of the tests, the
// drills and the benchmarks: slack-go's slacktest server with the Web API
// methods chatwarden calls that slacktest lacks or answers too simply —
// chat.postMessage (a unique ts per post, blocks and metadata kept),
// chat.update, conversations.history (newest first, with blocks and
// metadata), users.info, views.open and chat.postEphemeral — a fault switch
// (429 with Retry-After, 5xx, a post recorded but its answer lost), call
// counts, and an optional callback that gets every post and update with its
// arrival time (chatwarden-bench latency). Point alert.slack.api_url at
// URL().
package slackfake

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/slack-go/slack/slacktest"
)

// Msg is a message as the workspace holds it.
type Msg struct {
	TS       string          `json:"ts"`
	Text     string          `json:"text"`
	Blocks   json.RawMessage `json:"blocks,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	// Updates counts the chat.update calls the message received.
	Updates int `json:"-"`
}

// Arrival is one chat.postMessage or chat.update call, as the callback of
// New sees it.
type Arrival struct {
	// At is when the request reached the server.
	At      time.Time
	Method  string // "chat.postMessage" or "chat.update"
	Channel string
	TS      string
	// Text is the fallback text and Blocks the Block Kit JSON of the message.
	Text   string
	Blocks string
}

// User is a person of the workspace, for users.info.
type User struct {
	Email string
	Guest bool
	// TeamID is the user's home workspace ("" leaves team_id out);
	// Stranger marks a user of another organisation (is_stranger).
	TeamID   string
	Stranger bool
}

// View is a dialog opened with views.open.
type View struct {
	TriggerID string
	View      map[string]any
}

// Ephemeral is a reply sent with chat.postEphemeral.
type Ephemeral struct {
	Channel, User, Text string
}

// Fault is what the fault switch answers a call with: Status 429 with
// Retry-After RetryAfter seconds, another non-zero Status as an HTTP error,
// or, for a post, Lost: the message is recorded but the answer is a 502.
// The zero Fault lets the call through.
type Fault struct {
	Status, RetryAfter int
	Lost               bool
}

// Server is the workspace.
type Server struct {
	srv    *slacktest.Server
	onCall func(Arrival)

	mu         sync.Mutex
	seq        int
	channels   map[string][]*Msg
	posts      int
	updates    int
	histories  int
	calls      map[string]int // by method ("post", "update", "history", "users.info"), failed ones included
	failed     map[int]int    // injected failures by status
	users      map[string]User
	views      []View
	ephemerals []Ephemeral
	fault      func(method string) Fault
}

// New starts a workspace on 127.0.0.1; onCall (may be nil) is called for
// every post and update, from the server's goroutine. Close stops it.
func New(onCall func(Arrival)) *Server {
	s := &Server{onCall: onCall, channels: map[string][]*Msg{}, calls: map[string]int{}, failed: map[int]int{},
		users: map[string]User{}}
	s.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", s.post)
		c.Handle("/chat.update", s.update)
		c.Handle("/conversations.history", s.history)
		c.Handle("/users.info", s.userInfo)
		c.Handle("/views.open", s.viewsOpen)
		c.Handle("/chat.postEphemeral", s.postEphemeral)
	})
	s.srv.Start()
	return s
}

// URL is the API base URL to configure as alert.slack.api_url.
func (s *Server) URL() string { return s.srv.GetAPIURL() }

// Close shuts the server down.
func (s *Server) Close() { s.srv.Stop() }

// SetFault sets the fault switch (nil: no faults). method is "post",
// "update" or "history".
func (s *Server) SetFault(fn func(method string) Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = fn
}

// SetUser adds or replaces a person of the workspace (users.info).
func (s *Server) SetUser(id string, u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[id] = u
}

// Counts returns the posts and updates received (not the failed ones).
func (s *Server) Counts() (posts, updates int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.posts, s.updates
}

// Histories returns the conversations.history calls answered.
func (s *Server) Histories() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.histories
}

// Calls returns the calls received by method, failed ones included, and
// the failures injected by status.
func (s *Server) Calls() (calls map[string]int, failed map[int]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls), maps.Clone(s.failed)
}

// Messages returns copies of the messages of channel ch, oldest first.
func (s *Server) Messages(ch string) []Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Msg
	for _, m := range s.channels[ch] {
		out = append(out, *m)
	}
	return out
}

// All returns copies of every channel's messages.
func (s *Server) All() map[string][]Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]Msg{}
	for ch, list := range s.channels {
		for _, m := range list {
			out[ch] = append(out[ch], *m)
		}
	}
	return out
}

// Views returns the dialogs opened.
func (s *Server) Views() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]View(nil), s.views...)
}

// Ephemerals returns the ephemeral replies sent.
func (s *Server) Ephemerals() []Ephemeral {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Ephemeral(nil), s.ephemerals...)
}

func form(r *http.Request) url.Values {
	b, _ := io.ReadAll(r.Body)
	v, _ := url.ParseQuery(string(b))
	if len(v) == 0 {
		v = r.URL.Query()
	}
	return v
}

func reply(w http.ResponseWriter, v any) { _ = json.NewEncoder(w).Encode(v) }

// injected counts the call and applies the fault for method; answered is
// true when it answered the call. s.mu is held.
func (s *Server) injected(w http.ResponseWriter, method string) (answered, lost bool) {
	s.calls[method]++
	if s.fault == nil {
		return false, false
	}
	f := s.fault(method)
	switch {
	case f.Lost:
		return false, true
	case f.Status == http.StatusTooManyRequests:
		w.Header().Set("Retry-After", fmt.Sprint(f.RetryAfter))
		w.WriteHeader(f.Status)
	case f.Status != 0:
		http.Error(w, "slack is down", f.Status)
	default:
		return false, false
	}
	s.failed[f.Status]++
	return true, false
}

// arrived hands a post or update to the callback, outside the lock.
func (s *Server) arrived(a Arrival) {
	if s.onCall != nil {
		s.onCall(a)
	}
}

func (s *Server) post(w http.ResponseWriter, r *http.Request) {
	at := time.Now() // the arrival wall time is what a measurement reads
	v := form(r)
	s.mu.Lock()
	answered, lost := s.injected(w, "post")
	if answered {
		s.mu.Unlock()
		return
	}
	s.seq++
	ch := v.Get("channel")
	m := &Msg{TS: fmt.Sprintf("%d.%06d", 1700000000+s.seq, s.seq), Text: v.Get("text")}
	if b := v.Get("blocks"); b != "" {
		m.Blocks = json.RawMessage(b)
	}
	if md := v.Get("metadata"); md != "" {
		m.Metadata = json.RawMessage(md)
	}
	s.channels[ch] = append(s.channels[ch], m)
	s.posts++
	s.mu.Unlock()
	s.arrived(Arrival{At: at, Method: "chat.postMessage", Channel: ch, TS: m.TS, Text: m.Text, Blocks: v.Get("blocks")})
	if lost {
		http.Error(w, "connection reset", http.StatusBadGateway)
		return
	}
	reply(w, map[string]any{"ok": true, "channel": ch, "ts": m.TS})
}

func (s *Server) update(w http.ResponseWriter, r *http.Request) {
	at := time.Now() // the arrival wall time is what a measurement reads
	v := form(r)
	s.mu.Lock()
	if answered, _ := s.injected(w, "update"); answered {
		s.mu.Unlock()
		return
	}
	ch, ts := v.Get("channel"), v.Get("ts")
	var found *Msg
	for _, m := range s.channels[ch] {
		if m.TS == ts {
			m.Text, m.Blocks, m.Updates = v.Get("text"), json.RawMessage(v.Get("blocks")), m.Updates+1
			s.updates++
			found = m
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		reply(w, map[string]any{"ok": false, "error": "message_not_found"})
		return
	}
	s.arrived(Arrival{At: at, Method: "chat.update", Channel: ch, TS: ts, Text: v.Get("text"), Blocks: v.Get("blocks")})
	reply(w, map[string]any{"ok": true, "channel": ch, "ts": ts, "text": v.Get("text")})
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	v := form(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if answered, _ := s.injected(w, "history"); answered {
		return
	}
	s.histories++
	msgs := []map[string]any{}
	list := s.channels[v.Get("channel")]
	for i := len(list) - 1; i >= 0; i-- { // newest first, like Slack
		m := list[i]
		o := map[string]any{"type": "message", "ts": m.TS, "text": m.Text}
		if len(m.Blocks) > 0 {
			o["blocks"] = m.Blocks
		}
		if len(m.Metadata) > 0 {
			o["metadata"] = m.Metadata
		}
		msgs = append(msgs, o)
	}
	reply(w, map[string]any{"ok": true, "messages": msgs, "has_more": false})
}

// userInfo answers users.info from the workspace's people (user_not_found
// otherwise).
func (s *Server) userInfo(w http.ResponseWriter, r *http.Request) {
	v := form(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls["users.info"]++
	id := v.Get("user")
	u, ok := s.users[id]
	if !ok {
		reply(w, map[string]any{"ok": false, "error": "user_not_found"})
		return
	}
	reply(w, map[string]any{"ok": true, "user": map[string]any{"id": id, "name": "n-" + id, "team_id": u.TeamID,
		"is_restricted": u.Guest, "is_ultra_restricted": false, "is_stranger": u.Stranger, "profile": map[string]any{"email": u.Email}}})
}

// viewsOpen records a dialog (views.open, a JSON body); the trigger id must
// be set.
func (s *Server) viewsOpen(w http.ResponseWriter, r *http.Request) {
	var req struct {
		TriggerID string         `json:"trigger_id"`
		View      map[string]any `json:"view"`
	}
	err := json.NewDecoder(r.Body).Decode(&req)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil || req.View == nil:
		reply(w, map[string]any{"ok": false, "error": "invalid_arguments"})
		return
	case req.TriggerID == "":
		reply(w, map[string]any{"ok": false, "error": "invalid_trigger_id"})
		return
	}
	s.views = append(s.views, View{TriggerID: req.TriggerID, View: req.View})
	reply(w, map[string]any{"ok": true, "view": map[string]any{"id": fmt.Sprintf("V%d", len(s.views))}})
}

// postEphemeral records an ephemeral reply (chat.postEphemeral).
func (s *Server) postEphemeral(w http.ResponseWriter, r *http.Request) {
	v := form(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ephemerals = append(s.ephemerals, Ephemeral{Channel: v.Get("channel"), User: v.Get("user"), Text: v.Get("text")})
	reply(w, map[string]any{"ok": true, "message_ts": "1700000000.000001"})
}
