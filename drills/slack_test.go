//go:build drills

package drills

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/chatwarden/chatwarden/internal/slackfake"
)

// fakeSlack is the Slack workspace stand-in (internal/slackfake) that
// chatwarden serve (a subprocess) talks to through alert.slack.api_url,
// with the drills' counts over its messages.
type fakeSlack struct{ *slackfake.Server }

func newFakeSlack(t *testing.T) *fakeSlack {
	t.Helper()
	s := slackfake.New(nil)
	t.Cleanup(s.Close)
	return &fakeSlack{s}
}

// postsByMessage counts posts per alert message id (from the metadata).
func (f *fakeSlack) postsByMessage() map[string]int {
	out := map[string]int{}
	for _, list := range f.All() {
		for _, m := range list {
			var md struct {
				Payload map[string]any `json:"event_payload"`
			}
			_ = json.Unmarshal(m.Metadata, &md)
			id, _ := md.Payload["message_id"].(string)
			out[id]++
		}
	}
	return out
}

// postsMentioning counts, per actor, the posted messages whose text or
// blocks name it.
func (f *fakeSlack) postsMentioning(actors []string) map[string]int {
	out := map[string]int{}
	for _, list := range f.All() {
		for _, m := range list {
			for _, a := range actors {
				if strings.Contains(m.Text, a) || strings.Contains(string(m.Blocks), a) {
					out[a]++
				}
			}
		}
	}
	return out
}

// stats returns the calls received, the failures injected and the
// messages posted.
func (f *fakeSlack) stats() (calls map[string]int, failed map[int]int, posts int) {
	calls, failed = f.Calls()
	for _, l := range f.All() {
		posts += len(l)
	}
	return calls, failed, posts
}
