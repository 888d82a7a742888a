package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/dashboards"
	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/internal/slackfake"
	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/store"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// servedProc is `chatwarden serve` running in the test's process.
type servedProc struct {
	base           string // http://host:port of its listener
	logs           *syncBuffer
	stdout, stderr *syncBuffer
	ctx            context.Context
	cancel         context.CancelFunc
	done           chan error // runServe's result
}

// serveInProcess runs serve on cfgFile, logging at level, and waits until its
// HTTP listener is up; a serve that stops first fails the test. The serve
// is stopped when the test ends if the test has not stopped it.
func serveInProcess(t *testing.T, cfgFile string, level slog.Level) *servedProc {
	t.Helper()
	sv := &servedProc{logs: &syncBuffer{}, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	sv.ctx, sv.cancel = context.WithCancel(t.Context())
	t.Cleanup(sv.cancel)
	logger := slog.New(slog.NewTextHandler(sv.logs, &slog.HandlerOptions{Level: level}))
	go func() {
		sv.done <- runServe(sv.ctx, &env{stdout: sv.stdout, stderr: sv.stderr, log: logger}, []string{"-config", cfgFile})
	}()
	addrRE := regexp.MustCompile(`msg="http listening" addr=(\S+)`)
	for deadline := time.Now().Add(progressWait); sv.base == ""; time.Sleep(100 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(sv.logs.String()); m != nil {
			sv.base = "http://" + m[1]
		}
		select {
		case err := <-sv.done:
			t.Fatalf("serve stopped: %v\n%s", err, sv.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not listening after %s:\n%s", progressWait, sv.logs)
		}
	}
	return sv
}

// stop stops serve; it fails the test if serve does not stop in time or
// stops with an error of its own.
func (sv *servedProc) stop(t *testing.T) {
	t.Helper()
	sv.cancel()
	select {
	case err := <-sv.done:
		if err != nil && sv.ctx.Err() == nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(exitWait):
		t.Fatalf("serve did not stop within %s", exitWait)
	}
}

// leakEnv is one test's topics, database, key files and config writer.
type leakEnv struct {
	ic    ingest.Config
	ch    store.Config
	store *store.Store
	dir   string
}

func newLeakEnv(t *testing.T) *leakEnv {
	t.Helper()
	ic := testTopics(t, "test", 2, 1, 1)
	ic.SessionTimeout = 6 * time.Second
	ch := storetest.Config(t)
	return &leakEnv{ic: ic, ch: ch, store: storetest.Open(t, ch), dir: t.TempDir()}
}

// writeKey writes a key file and returns its path.
func (le *leakEnv) writeKey(t *testing.T, name, hexKey string) string {
	t.Helper()
	p := filepath.Join(le.dir, name)
	if err := os.WriteFile(p, []byte(hexKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// config writes a config file with the given pseudonym and extra sections.
func (le *leakEnv) config(t *testing.T, name, pseudonymYAML, extra string) string {
	t.Helper()
	y := fmt.Sprintf("clickhouse:\n  addr: %s\n  database: %s\n%s\ningest:\n  brokers: [%s]\n  access_topic: %s\n  consent_topic: %s\n  dead_letter_topic: %s\n  group: %s\n  session_timeout: 6s\n  linger: 50ms\n%s",
		le.ch.Addr, le.ch.Database, pseudonymYAML, strings.Join(le.ic.Brokers, ", "), le.ic.AccessTopic, le.ic.ConsentTopic,
		le.ic.DeadLetterTopic, le.ic.Group, extra)
	p := filepath.Join(le.dir, name)
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// produce sends JSONL lines (raw, as a producer writes them).
func (le *leakEnv) produce(t *testing.T, lines ...string) {
	t.Helper()
	prod, err := ingest.NewProducer(le.ic, "")
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := prod.ProduceJSONL(t.Context(), strings.NewReader(strings.Join(lines, "\n")+"\n"), 0, nil); err != nil {
		t.Fatal(err)
	}
}

// waitStored waits until the database holds events events and dead dead
// letters, in every table their INSERT fills: ClickHouse writes a
// materialized view's rows after the events table's, as parts of their own,
// so a count of events can see rows that events_by_subject (the look-ups by
// customer) and event_ids (ingest's duplicate check) do not show yet.
// TestPseudonymKeyRotation read a data-subject report of 1 event right
// after the events table held 2 (about 1 run in 3 under load).
func (le *leakEnv) waitStored(t *testing.T, events uint64, dead uint64) {
	t.Helper()
	deadline := time.Now().Add(progressWait)
	for {
		sum, err := le.store.Summary(t.Context())
		var dl uint64
		for _, n := range sum.DeadLetters {
			dl += n
		}
		var withSubject, bySubject uint64
		if err == nil && sum.Events >= events && dl >= dead && sum.DistinctIDs >= sum.Events {
			withSubject = storetest.Count(t, le.ch, "SELECT count() FROM events WHERE subject_id != ''")
			bySubject = storetest.Count(t, le.ch, "SELECT count() FROM events_by_subject")
			if bySubject >= withSubject {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d events (%d ids, %d of %d in events_by_subject) and %d dead letters stored, want %d and %d (err %v)",
				progressWait, sum.Events, sum.DistinctIDs, bySubject, withSubject, dl, events, dead, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// dumpTables returns every row of every table of the database, as
// clickhouse-client prints them (TSV), table by table.
func dumpTables(t *testing.T, ch store.Config) string {
	t.Helper()
	host, port, _ := strings.Cut(ch.Addr, ":")
	client := func(q string) string {
		out, err := exec.CommandContext(t.Context(), "clickhouse-client", "--host", host, "--port", port, "--database", ch.Database,
			"--query", q).CombinedOutput()
		if err != nil {
			t.Fatalf("clickhouse-client %q: %v\n%s", q, err, out)
		}
		return string(out)
	}
	var all strings.Builder
	tables := strings.Fields(client("SELECT name FROM system.tables WHERE database = currentDatabase() AND engine NOT LIKE '%View' FORMAT TSV"))
	if len(tables) < 5 {
		t.Fatalf("only %d tables in %s: %v", len(tables), ch.Database, tables)
	}
	for _, tb := range tables {
		fmt.Fprintf(&all, "== %s\n%s", tb, client("SELECT * FROM `"+tb+"` FORMAT TSV"))
	}
	return all.String()
}

func event(id, actor, actorType, subject, resource, convSubject, tool string, ts time.Time) string {
	m := map[string]any{"event_id": id, "ts": ts.Format(time.RFC3339Nano), "tenant": "acme",
		"actor": map[string]any{"id": actor, "type": actorType, "role": "assistant"}, "action": "read", "store": "crm",
		"resource": map[string]any{"type": "customer_profile", "id": resource}, "subject_id": subject, "records": 1,
		"fields": []string{"email", "name"}, "purpose": "support", "tool": tool,
		"conversation": map[string]any{"id": "conv-" + id, "subject_id": convSubject}}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestNoRawCustomerIDOrKeyLeaks runs serve (ingest, event rules, window
// detection, alerting to slacktest, dashboards) with a known key on raw
// customer ids, looks a customer up by raw id through the API, and then
// searches the log (debug level), /metrics, every Slack message and every
// ClickHouse table for the raw ids and the key: none may appear. The
// pseudonyms must appear (the data is there, hashed).
func TestNoRawCustomerIDOrKeyLeaks(t *testing.T) {
	t.Parallel()
	le := newLeakEnv(t)
	const keyHex = "4b6e6f776e2d746573742d6b65792d666f722d6c65616b2d636865636b732121" // "Known-test-key-for-leak-checks!!"
	keyFile := le.writeKey(t, "pseudonym.key", keyHex)
	raw := []string{"RAWCUST-victim-0001", "RAWCUST-authenticated-0002", "RAWRES-record-0003", "RAWCUST-consent-0004", "RAWCUST-dead-0005"}

	var slackMu sync.Mutex
	var slackMsgs []string
	rec := slackfake.New(func(a slackfake.Arrival) {
		slackMu.Lock()
		slackMsgs = append(slackMsgs, a.Text+"\n"+a.Blocks)
		slackMu.Unlock()
	})
	defer rec.Close()
	token, tok, err := dashboards.NewToken("leak-test", dashboards.RoleResponder)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := le.config(t, "chatwarden.yaml", "pseudonym:\n  key_file: "+keyFile, fmt.Sprintf(`serve:
  addr: 127.0.0.1:0
detect:
  severities:
    bot_cross_customer: critical
alert:
  default_channel: C0LEAK
  group_wait: 1s
  slack:
    token: xoxb-leak-test
    signing_secret: leak-test-signing-secret
    api_url: %s
dashboards:
  tokens:
    - name: leak-test
      role: responder
      id: %q
      sha256: %q
`, rec.URL(), tok.ID, tok.SHA256))

	sv := serveInProcess(t, cfgFile, slog.LevelDebug)
	base, logs := sv.base, sv.logs

	now := time.Now().UTC()
	le.produce(t,
		// A bot reads a customer other than its conversation's: an event rule alerts to Slack.
		event("leak-1", "bot-leak", "bot", raw[0], raw[2], raw[1], "lookup_customer", now.Add(-5*time.Second)),
		event("leak-2", "agent-leak", "human", raw[0], raw[2], "", "", now.Add(-time.Minute)),
		event("leak-3", "agent-leak", "human", raw[3], "", "", "", now.Add(-2*time.Minute)),
		`{"schema":"consent.v1","ts":"`+now.Add(-time.Hour).Format(time.RFC3339)+`","subject_id":"`+raw[3]+`","purpose":"marketing","granted":false}`,
		// A malformed message holding a raw id: dead-lettered.
		`{"event_id":"leak-bad","ts":"`+now.Format(time.RFC3339)+`","actor":{"id":"x","type":"human"},"action":"steal","store":"crm","resource":{"type":"t"},"subject_id":"`+raw[4]+`"}`,
	)
	le.waitStored(t, 3, 1)
	for deadline := time.Now().Add(progressWait); ; time.Sleep(200 * time.Millisecond) {
		slackMu.Lock()
		n := len(slackMsgs)
		slackMu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Slack message within %s; log:\n%s", progressWait, logs)
		}
	}

	// A responder looks the customer up by the raw id: found, and the
	// audit trail records only pseudonyms.
	get := func(path string) string {
		method, body := http.MethodGet, ""
		if p, b, ok := strings.Cut(path, " "); ok { // "path JSON": a POST look-up
			method, path, body = http.MethodPost, p, b
		}
		req, _ := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return string(b)
	}
	var rep struct {
		Events uint64 `json:"events"`
	}
	subjectReq := `/api/subjects {"subject":"` + raw[0] + `","tenant":"acme"}`
	if err := json.Unmarshal([]byte(get(subjectReq)), &rep); err != nil || rep.Events != 2 {
		t.Fatalf("data-subject report by raw id: %d events (%v), want 2: %s", rep.Events, err, get(subjectReq))
	}
	var hist struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal([]byte(get(`/api/history {"subject":"`+raw[0]+`","tenant":"acme","since":"2h"}`)), &hist); err != nil || len(hist.Events) != 2 {
		t.Fatalf("history by raw id: %d events (%v), want 2", len(hist.Events), err)
	}
	metricsText := get("/metrics")
	if !strings.Contains(metricsText, "chatwarden_ingest_") {
		t.Fatalf("/metrics has no ingest metrics:\n%.500s", metricsText)
	}

	sv.stop(t)

	p, err := (Config{Pseudonym: PseudonymConfig{KeyFile: keyFile}}).pseudonymizer()
	if err != nil {
		t.Fatal(err)
	}
	tables := dumpTables(t, le.ch)
	slackMu.Lock()
	slackText := strings.Join(slackMsgs, "\n")
	slackMu.Unlock()
	places := map[string]string{"log": logs.String() + sv.stdout.String() + sv.stderr.String(), "metrics": metricsText,
		"slack": slackText, "clickhouse": tables}
	secrets := append([]string{keyHex, strings.ToUpper(keyHex), "Known-test-key-for-leak-checks"}, raw...)
	for where, text := range places {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				i := strings.Index(text, s)
				t.Errorf("%s contains %q: ...%s...", where, s, text[max(0, i-200):min(len(text), i+len(s)+50)])
			}
		}
	}
	// The data is there, as pseudonyms: the search above could have found it.
	for _, r := range raw[:4] {
		if !strings.Contains(tables, p.HashTenant("acme", r)) {
			t.Errorf("clickhouse holds no pseudonym of %s", r)
		}
	}
	if !strings.Contains(slackText, "bot-leak") {
		t.Errorf("the Slack messages are not about the bot: %.300s", slackText)
	}
	t.Logf("searched %d bytes of log, %d of metrics, %d of Slack messages, %d of ClickHouse rows",
		len(places["log"]), len(metricsText), len(slackText), len(tables))
}
