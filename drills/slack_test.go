//go:build drills

package drills

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/slack-go/slack/slacktest"
)

// fakeSlack is a Slack workspace on slack-go's slacktest server that
// chatwarden serve (a subprocess) talks to through alert.slack.api_url:
// chat.postMessage, chat.update and conversations.history, each message
// kept with its metadata (the alert message id), and a fault switch that
// answers 500 or 429 with Retry-After instead.
type fakeSlack struct {
	srv *slacktest.Server

	mu      sync.Mutex
	seq     int
	msgs    map[string][]*slackMsg // by channel
	calls   map[string]int         // by method, including failed ones
	failed  map[int]int            // injected failures by status
	fault   func(method string) (status, retryAfter int)
	updates int
}

type slackMsg struct {
	TS, Text, Blocks, Metadata string
}

func newFakeSlack(t *testing.T) *fakeSlack {
	t.Helper()
	f := &fakeSlack{msgs: map[string][]*slackMsg{}, calls: map[string]int{}, failed: map[int]int{}}
	f.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", f.post)
		c.Handle("/chat.update", f.update)
		c.Handle("/conversations.history", f.history)
	})
	f.srv.Start()
	t.Cleanup(f.srv.Stop)
	return f
}

func (f *fakeSlack) url() string { return f.srv.GetAPIURL() }

func (f *fakeSlack) setFault(fn func(method string) (status, retryAfter int)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = fn
}

func slackForm(r *http.Request) url.Values {
	b, _ := io.ReadAll(r.Body)
	v, _ := url.ParseQuery(string(b))
	if len(v) == 0 {
		v = r.URL.Query()
	}
	return v
}

// injected answers with the fault for method, if any; f.mu is held.
func (f *fakeSlack) injected(w http.ResponseWriter, method string) bool {
	f.calls[method]++
	if f.fault == nil {
		return false
	}
	status, retry := f.fault(method)
	switch {
	case status == http.StatusTooManyRequests:
		w.Header().Set("Retry-After", fmt.Sprint(retry))
		w.WriteHeader(status)
	case status != 0:
		http.Error(w, "slack is down", status)
	default:
		return false
	}
	f.failed[status]++
	return true
}

func (f *fakeSlack) post(w http.ResponseWriter, r *http.Request) {
	v := slackForm(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.injected(w, "post") {
		return
	}
	f.seq++
	ch := v.Get("channel")
	m := &slackMsg{TS: fmt.Sprintf("%d.%06d", 1700000000+f.seq, f.seq), Text: v.Get("text"),
		Blocks: v.Get("blocks"), Metadata: v.Get("metadata")}
	f.msgs[ch] = append(f.msgs[ch], m)
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": ch, "ts": m.TS})
}

func (f *fakeSlack) update(w http.ResponseWriter, r *http.Request) {
	v := slackForm(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.injected(w, "update") {
		return
	}
	ch, ts := v.Get("channel"), v.Get("ts")
	for _, m := range f.msgs[ch] {
		if m.TS == ts {
			m.Text, m.Blocks = v.Get("text"), v.Get("blocks")
			f.updates++
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": ch, "ts": ts, "text": m.Text})
			return
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "message_not_found"})
}

func (f *fakeSlack) history(w http.ResponseWriter, r *http.Request) {
	v := slackForm(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.injected(w, "history") {
		return
	}
	out := []map[string]any{}
	list := f.msgs[v.Get("channel")]
	for i := len(list) - 1; i >= 0; i-- { // newest first, like Slack
		m := list[i]
		o := map[string]any{"type": "message", "ts": m.TS, "text": m.Text}
		if m.Blocks != "" {
			o["blocks"] = json.RawMessage(m.Blocks)
		}
		if m.Metadata != "" {
			o["metadata"] = json.RawMessage(m.Metadata)
		}
		out = append(out, o)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "messages": out, "has_more": false})
}

// postsByMessage counts posts per alert message id (from the metadata).
func (f *fakeSlack) postsByMessage() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for _, list := range f.msgs {
		for _, m := range list {
			var md struct {
				Payload map[string]any `json:"event_payload"`
			}
			_ = json.Unmarshal([]byte(m.Metadata), &md)
			id, _ := md.Payload["message_id"].(string)
			out[id]++
		}
	}
	return out
}

// postsMentioning counts, per actor, the posted messages whose text or
// blocks name it.
func (f *fakeSlack) postsMentioning(actors []string) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for _, list := range f.msgs {
		for _, m := range list {
			for _, a := range actors {
				if strings.Contains(m.Text, a) || strings.Contains(m.Blocks, a) {
					out[a]++
				}
			}
		}
	}
	return out
}

// stats returns the calls received and the failures injected.
func (f *fakeSlack) stats() (calls map[string]int, failed map[int]int, posts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	calls, failed = map[string]int{}, map[int]int{}
	for k, v := range f.calls {
		calls[k] = v
	}
	for k, v := range f.failed {
		failed[k] = v
	}
	for _, l := range f.msgs {
		posts += len(l)
	}
	return calls, failed, posts
}
