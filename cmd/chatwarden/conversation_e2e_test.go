package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/slackfake"
)

// botCall is one access.v1 line of bot va-e2e's conversation conv.
func botCall(id, conv, tool, store, action string, fields []string, records int, ts time.Time) string {
	m := map[string]any{"event_id": id, "ts": ts.Format(time.RFC3339Nano), "tenant": "acme",
		"actor": map[string]any{"id": "va-e2e", "type": "bot", "role": "assistant"}, "action": action, "store": store,
		"resource": map[string]any{"type": "record"}, "records": records, "fields": fields, "purpose": "support", "tool": tool,
		"conversation": map[string]any{"id": conv, "subject_id": "cust-" + conv}}
	if store != "vector_index" && action != "search" {
		m["subject_id"] = "cust-" + conv
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestConversationShapeEndToEnd (issue 14 item 1) runs serve on the real
// broker and ClickHouse with a short conversation_shape warm-up (20
// conversations, hold 1 s, idle 2 s): a bot's ordinary conversations, then
// a prompt-injected one (a knowledge-base search, then six profile searches
// of 12 records); a conversation_shape alert on that conversation reaches
// Slack with its call sequence, the profile searches marked improbable, and
// none of the ordinary conversations raises one.
func TestConversationShapeEndToEnd(t *testing.T) {
	t.Parallel()
	le := newLeakEnv(t)
	keyFile := le.writeKey(t, "pseudonym.key", "636f6e766572736174696f6e2d7368617065652d746573742d6b65792d303132")
	var slackMu sync.Mutex
	var slackMsgs []string
	rec := slackfake.New(func(a slackfake.Arrival) {
		slackMu.Lock()
		slackMsgs = append(slackMsgs, a.Text+"\n"+a.Blocks)
		slackMu.Unlock()
	})
	defer rec.Close()
	cfgFile := le.config(t, "chatwarden.yaml", "pseudonym:\n  key_file: "+keyFile, fmt.Sprintf(`serve:
  addr: 127.0.0.1:0
detect:
  conversations:
    min_conversations: 20
    history: 40
    hold: 1s
    idle: 2s
alert:
  default_channel: C0CONV
  group_wait: 1s
  slack:
    token: xoxb-conv-test
    signing_secret: conv-test-signing-secret
    api_url: %s
`, rec.URL()))
	sv := serveInProcess(t, cfgFile, slog.LevelDebug)
	logs := sv.logs

	// 40 ordinary conversations two minutes apart, three hours ago: idle
	// at once, so each is learned when its batch is judged
	start := time.Now().UTC().Add(-3 * time.Hour)
	var lines []string
	n := 0
	for i := range 40 {
		conv := fmt.Sprintf("c%02d", i)
		at := start.Add(time.Duration(i) * 2 * time.Minute)
		calls := [][]any{{"search_kb", "vector_index", "search", []string{"transcript_text"}, 3 + i%4},
			{"lookup_order", "orders", "read", []string{"order_history"}, 1 + i%3},
			{"get_profile", "crm", "read", []string{"email", "name"}, 1}}
		for k := range 2 + i%2 {
			c := calls[(i+k)%3]
			n++
			lines = append(lines, botCall(fmt.Sprintf("e%03d", n), conv, c[0].(string), c[1].(string), c[2].(string), c[3].([]string), c[4].(int),
				at.Add(time.Duration(k)*10*time.Second)))
		}
	}
	le.produce(t, lines...)
	le.waitStored(t, uint64(n), 0)
	// the injected conversation, after the others were judged
	at := start.Add(90 * time.Minute)
	attack := []string{botCall("x0", "cx", "search_kb", "vector_index", "search", []string{"transcript_text"}, 4, at)}
	for k := 1; k <= 6; k++ {
		attack = append(attack, botCall(fmt.Sprintf("x%d", k), "cx", "get_profile", "crm", "search",
			[]string{"address", "email", "name", "phone"}, 12, at.Add(time.Duration(k)*5*time.Second)))
	}
	le.produce(t, attack...)
	le.waitStored(t, uint64(n+len(attack)), 0)

	var slackText string
	for deadline := time.Now().Add(progressWait); ; time.Sleep(200 * time.Millisecond) {
		slackMu.Lock()
		slackText = strings.Join(slackMsgs, "\n")
		slackMu.Unlock()
		if strings.Contains(slackText, "conversation_shape") && strings.Contains(slackText, "Conversation calls") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no conversation_shape alert in Slack within %s; messages:\n%s\nlog:\n%s", progressWait, slackText, logs)
		}
	}
	for _, want := range []string{"conversation cx", "get_profile search crm [address,email,name,phone] x12", ":warning: *improbable*"} {
		if !strings.Contains(slackText, want) {
			t.Errorf("the Slack alert does not show %q:\n%s", want, slackText)
		}
	}
	if strings.Contains(slackText, "conversation c0") || strings.Contains(slackText, "conversation c1") {
		t.Errorf("an ordinary conversation raised conversation_shape:\n%s", slackText)
	}
	sv.stop(t)
}
