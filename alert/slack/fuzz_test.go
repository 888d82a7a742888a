package slack_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/alert"
)

// FuzzInteractivity sends arbitrary, correctly signed bodies to the
// interactivity endpoint: as the form's payload (raw false) or as the whole
// form body (raw true). The handler must not panic, must answer 200, 400 or
// 500, and may only apply known actions, with the clicking user and the
// button's value passed through unchanged. Seeds: testdata/fuzz/FuzzInteractivity.
func FuzzInteractivity(f *testing.F) {
	f.Add(`{"type":"block_actions","user":{"id":"U1","name":"ann"},"actions":[{"action_id":"acknowledge","block_id":"cw-actions","value":"g1-abc","type":"button"}]}`, false)
	f.Add(`{"type":"block_actions","user":{"id":"U1"},"actions":[{"action_id":"investigate","type":"button","url":"https://x"}]}`, false)
	f.Add(`{"type":"block_actions","actions":[{"action_id":"escalate","value":"<!channel>"},{"action_id":"false_positive","value":""}]}`, false)
	f.Add(`{"type":"view_submission","view":{"state":{"values":{"a":{"b":{"type":"plain_text_input","value":"x"}}}}}}`, false)
	f.Add(`{"actions":[{"action_id":"acknowledge","value":1}]}`, false)
	f.Add(`{"actions":{"action_id":"acknowledge"}}`, false)
	f.Add(`[]`, false)
	f.Add(`null`, false)
	f.Add(``, false)
	f.Add(`payload=%7B%22actions%22%3A%5B%5D%7D`, true)
	f.Add(`payload=%ZZ&payload=x`, true)
	f.Add(`a=1;b=2&payload=`, true)
	f.Add("payload=\xff\xfe", true)
	f.Add("{\"type\":\"block_actions\",\"actions\":[{\"action_id\":\"acknowledge\",\"value\":\"\xff\xfe\"}]}", false)
	f.Fuzz(func(t *testing.T, body string, raw bool) {
		if !raw {
			body = url.Values{"payload": {body}}.Encode()
		}
		var acts []alert.Action
		act := func(_ context.Context, _ time.Time, a alert.Action) error {
			acts = append(acts, a)
			if a.MessageID == "fail" {
				return alert.ErrUnknownMessage
			}
			return nil
		}
		h := newTestHandler(t, act)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, signed(secret, time.Now(), body))
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusInternalServerError:
		default:
			t.Fatalf("status %d for a correctly signed body", w.Code)
		}
		if w.Code == http.StatusBadRequest && len(acts) > 0 {
			t.Fatalf("rejected the request (400) but applied %v", acts)
		}
		form, _ := url.ParseQuery(body)
		for _, a := range acts {
			if !slices.Contains(alert.Actions, a.Kind) {
				t.Fatalf("applied unknown action %q", a.Kind)
			}
			if !payloadHolds(form.Get("payload"), a.MessageID) {
				t.Fatalf("message id %q is not from the payload", a.MessageID)
			}
		}
		// The same body again is a replay, whatever it holds.
		w = httptest.NewRecorder()
		n := len(acts)
		req := signed(secret, time.Now(), body)
		req.Header.Set("X-Slack-Signature", "v0=00")
		h.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized || len(acts) != n {
			t.Fatalf("a wrongly signed request got %d and applied %d actions", w.Code, len(acts)-n)
		}
	})
}

// payloadHolds reports whether the JSON text s could hold the string v: a
// cheap check that a message id came from the payload. JSON escapes
// (\u0041, \/) may spell v differently, so any escape in s is accepted;
// encoding/json decodes invalid UTF-8 as U+FFFD, so s is compared as it
// decodes.
func payloadHolds(s, v string) bool {
	s = strings.Map(func(r rune) rune { return r }, s) // each invalid byte becomes U+FFFD, as in encoding/json
	return strings.Contains(s, v) || strings.Contains(s, `\`)
}
