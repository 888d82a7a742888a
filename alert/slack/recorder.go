package slack

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/slack-go/slack/slacktest"
)

// Arrival is one chat.postMessage or chat.update call a Recorder received.
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

// Recorder is a Slack workspace stand-in on slack-go's slacktest server for
// measurements (chatwarden-bench latency): it answers chat.postMessage,
// chat.update (which slacktest lacks) and conversations.history, and hands
// every post and update to a callback with its arrival time. Point
// alert.slack.api_url at URL().
type Recorder struct {
	srv    *slacktest.Server
	onCall func(Arrival)

	mu   sync.Mutex
	seq  int
	msgs map[string][]Arrival // by channel
}

// NewRecorder starts a Recorder on 127.0.0.1; onCall (may be nil) is
// called for every post and update, from the server's goroutine.
func NewRecorder(onCall func(Arrival)) *Recorder {
	r := &Recorder{onCall: onCall, msgs: map[string][]Arrival{}}
	r.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", r.post)
		c.Handle("/chat.update", r.update)
		c.Handle("/conversations.history", r.history)
	})
	r.srv.Start()
	return r
}

// URL is the API base URL to configure as alert.slack.api_url.
func (r *Recorder) URL() string { return r.srv.GetAPIURL() }

// Stop shuts the server down.
func (r *Recorder) Stop() { r.srv.Stop() }

func recorderForm(req *http.Request) url.Values {
	b, _ := io.ReadAll(req.Body)
	v, _ := url.ParseQuery(string(b))
	if len(v) == 0 {
		v = req.URL.Query()
	}
	return v
}

func (r *Recorder) post(w http.ResponseWriter, req *http.Request) {
	at := time.Now() //nolint:forbidigo // a stand-in for Slack that measures: the arrival wall time is its output
	v := recorderForm(req)
	r.mu.Lock()
	r.seq++
	a := Arrival{At: at, Method: "chat.postMessage", Channel: v.Get("channel"),
		TS: fmt.Sprintf("%d.%06d", at.Unix(), r.seq), Text: v.Get("text"), Blocks: v.Get("blocks")}
	r.msgs[a.Channel] = append(r.msgs[a.Channel], a)
	r.mu.Unlock()
	if r.onCall != nil {
		r.onCall(a)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": a.Channel, "ts": a.TS})
}

func (r *Recorder) update(w http.ResponseWriter, req *http.Request) {
	at := time.Now() //nolint:forbidigo // a stand-in for Slack that measures: the arrival wall time is its output
	v := recorderForm(req)
	a := Arrival{At: at, Method: "chat.update", Channel: v.Get("channel"), TS: v.Get("ts"),
		Text: v.Get("text"), Blocks: v.Get("blocks")}
	r.mu.Lock()
	found := false
	for i, m := range r.msgs[a.Channel] {
		if m.TS == a.TS {
			r.msgs[a.Channel][i].Text, r.msgs[a.Channel][i].Blocks = a.Text, a.Blocks
			found = true
		}
	}
	r.mu.Unlock()
	if !found {
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "message_not_found"})
		return
	}
	if r.onCall != nil {
		r.onCall(a)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": a.Channel, "ts": a.TS, "text": a.Text})
}

func (r *Recorder) history(w http.ResponseWriter, req *http.Request) {
	v := recorderForm(req)
	r.mu.Lock()
	list := r.msgs[v.Get("channel")]
	msgs := make([]map[string]any, 0, len(list))
	for i := len(list) - 1; i >= 0; i-- { // newest first, like Slack
		msgs = append(msgs, map[string]any{"type": "message", "ts": list[i].TS, "text": list[i].Text})
	}
	r.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "messages": msgs, "has_more": false})
}
