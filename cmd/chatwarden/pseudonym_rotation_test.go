package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/dashboards"
)

// TestPseudonymKeyRotation follows docs/security.md "Pseudonymization key
// rotation": events are ingested under key 1; the config is rotated to key
// 2 with key 1 kept in old_keys; more events of the same customer are
// ingested by serve under key 2. A look-up by the raw customer id (the
// dashboards API, `chatwarden history`, `chatwarden dsar`) finds the events
// under both keys; without the old key only the new ones are found.
func TestPseudonymKeyRotation(t *testing.T) {
	t.Parallel()
	le := newLeakEnv(t)
	k1 := le.writeKey(t, "key1", "1111111111111111111111111111111111111111111111111111111111111111")
	k2 := le.writeKey(t, "key2", "2222222222222222222222222222222222222222222222222222222222222222")
	const customer = "cust-rotated-77"
	token, tok, err := dashboards.NewToken("rot", dashboards.RoleResponder)
	if err != nil {
		t.Fatal(err)
	}
	dash := fmt.Sprintf("serve:\n  addr: 127.0.0.1:0\ndashboards:\n  tokens:\n    - name: rot\n      role: responder\n      id: %q\n      sha256: %q\n", tok.ID, tok.SHA256)
	cfg1 := le.config(t, "v1.yaml", "pseudonym:\n  key_file: "+k1, "")
	cfg2 := le.config(t, "v2.yaml", "pseudonym:\n  key_file: "+k2+"\n  key_id: \"2\"\n  old_keys:\n    - id: \"1\"\n      key_file: "+k1, dash)
	cfgNoOld := le.config(t, "v2-no-old.yaml", "pseudonym:\n  key_file: "+k2+"\n  key_id: \"2\"", "")
	quiet := slog.New(slog.DiscardHandler)
	now := time.Now().UTC().Add(-time.Minute)

	// Key 1: `chatwarden ingest`.
	le.produce(t, event("rot-old", "agent-r", "human", customer, "", "", "", now.Add(-time.Hour)))
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- runIngest(ctx, &env{stdout: io.Discard, stderr: io.Discard, log: quiet}, []string{"-config", cfg1})
	}()
	le.waitStored(t, 1, 0)
	stop()
	if err := <-done; err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}

	// Key 2, key 1 kept as old: `chatwarden serve`.
	le.produce(t, event("rot-new", "agent-r", "human", customer, "", "", "", now))
	logs := &syncBuffer{}
	ctx, stop = context.WithCancel(t.Context())
	defer stop()
	go func() {
		done <- runServe(ctx, &env{stdout: io.Discard, stderr: io.Discard, log: slog.New(slog.NewTextHandler(logs, nil))},
			[]string{"-config", cfg2})
	}()
	le.waitStored(t, 2, 0)
	var base string
	for deadline := time.Now().Add(progressWait); base == ""; time.Sleep(100 * time.Millisecond) {
		if m := regexp.MustCompile(`msg="http listening" addr=(\S+)`).FindStringSubmatch(logs.String()); m != nil {
			base = "http://" + m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("serve not listening:\n%s", logs)
		}
	}
	api := func(path, body string) string { // a look-up by customer id is a POST
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	var rep struct {
		Subjects []string `json:"subject_pseudonyms"`
		Events   uint64   `json:"events"`
	}
	// The customer's pseudonyms in tenant acme: tenant-scoped under key 2
	// and key 1, then pre-tenant under key 2 and key 1.
	if err := json.Unmarshal([]byte(api("/api/subjects", `{"subject":"`+customer+`","tenant":"acme"}`)), &rep); err != nil || rep.Events != 2 || len(rep.Subjects) != 4 ||
		!strings.HasPrefix(rep.Subjects[0], "t2") || !strings.HasPrefix(rep.Subjects[1], "t1") ||
		!strings.HasPrefix(rep.Subjects[2], "p2") || !strings.HasPrefix(rep.Subjects[3], "p1") {
		t.Errorf("API data-subject report after rotation: %+v %v, want 2 events under t2, t1, p2, p1 pseudonyms", rep, err)
	}
	hist := api("/api/history", `{"subject":"`+customer+`","tenant":"acme","since":"3h"}`)
	if !strings.Contains(hist, `"rot-old"`) || !strings.Contains(hist, `"rot-new"`) {
		t.Errorf("API history after rotation misses an event: %.400s", hist)
	}
	stop()
	if err := <-done; err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}

	// The CLI, with and without the old key.
	cli := func(run func(context.Context, *env, []string) error, args ...string) string {
		var out syncBuffer
		if err := run(t.Context(), &env{stdout: &out, stderr: io.Discard, log: quiet}, args); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String()
	}
	for _, tc := range []struct {
		name, cfg string
		want      []string
		notWant   []string
	}{
		{"history with old key", cfg2, []string{`"rot-old"`, `"rot-new"`}, nil},
		{"history without old key", cfgNoOld, []string{`"rot-new"`}, []string{`"rot-old"`}},
	} {
		out := cli(runHistory, "-config", tc.cfg, "-subject", customer, "-tenant", "acme", "-since", "3h", "-format", "json", "-as", "test")
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: %s missing from %.300s", tc.name, w, out)
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(out, w) {
				t.Errorf("%s: %s found: the check cannot tell key versions apart", tc.name, w)
			}
		}
	}
	var dsar struct {
		Events uint64 `json:"events"`
	}
	out := cli(runDSAR, "-config", cfg2, "-subject", customer, "-tenant", "acme", "-format", "json", "-as", "test")
	if err := json.Unmarshal([]byte(out), &dsar); err != nil || dsar.Events != 2 {
		t.Errorf("dsar after rotation: %d events (%v), want 2: %.300s", dsar.Events, err, out)
	}
}
