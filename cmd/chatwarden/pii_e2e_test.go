package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/slackfake"
	"github.com/chatwarden/chatwarden/models"
)

// TestPayloadPIIEndToEnd (issue 14 item 4) runs serve with ingest.pii:
// pseudonymize on the real broker and ClickHouse and sends it an event
// with a card number in resource.id and one with an e-mail address in
// tool, between clean events: both are stored (pseudonymized), a
// pii_in_payload alert against the producer store (crm) reaches Slack with
// the fields, kinds and masked values, status counts them per producer,
// /metrics per store and kind, and the raw values are nowhere: not in the
// log, /metrics, Slack or any ClickHouse table.
func TestPayloadPIIEndToEnd(t *testing.T) {
	t.Parallel()
	le := newLeakEnv(t)
	const card, email = "4111111111111111", "jane.doe@example.com"
	keyFile := le.writeKey(t, "pseudonym.key", "706969652d65326520746573742d6b65792d3031323334353637383961626364")
	var slackMu sync.Mutex
	var slackMsgs []string
	rec := slackfake.New(func(a slackfake.Arrival) {
		slackMu.Lock()
		slackMsgs = append(slackMsgs, a.Text+"\n"+a.Blocks)
		slackMu.Unlock()
	})
	defer rec.Close()
	cfgFile := le.config(t, "chatwarden.yaml", "pseudonym:\n  key_file: "+keyFile, fmt.Sprintf(`  pii: pseudonymize
serve:
  addr: 127.0.0.1:0
alert:
  default_channel: C0PII
  group_wait: 1s
  slack:
    token: xoxb-pii-test
    signing_secret: pii-test-signing-secret
    api_url: %s
`, rec.URL()))

	sv := serveInProcess(t, cfgFile, slog.LevelDebug)
	base, logs := sv.base, sv.logs

	now := time.Now().UTC()
	le.produce(t,
		event("clean-1", "agent-p", "human", "cust-1", "r-1", "", "", now.Add(-30*time.Second)),
		event("pii-card", "agent-p", "human", "cust-2", card, "", "", now.Add(-20*time.Second)),
		event("pii-email", "bot-p", "bot", "cust-3", "r-3", "cust-3", email, now.Add(-10*time.Second)),
		event("clean-2", "agent-p", "human", "cust-4", "r-4", "", "", now.Add(-5*time.Second)),
	)
	le.waitStored(t, 4, 0)
	// The two PII events may be stored in two batches, each raising its
	// finding: wait until Slack shows both fields (the second finding
	// updates the alert's message), not only the first.
	wants := []string{"pii_in_payload", "card in `resource.id`: `" + models.MaskPII(card) + "`", "email in `tool`: `" + models.MaskPII(email) + "`", "crm"}
	var slackText string
	for deadline := time.Now().Add(progressWait); ; time.Sleep(200 * time.Millisecond) {
		slackMu.Lock()
		slackText = strings.Join(slackMsgs, "\n")
		slackMu.Unlock()
		missing := ""
		for _, want := range wants {
			if !strings.Contains(slackText, want) {
				missing = want
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pii_in_payload alert in Slack does not show %q within %s; messages:\n%s\nlog:\n%s", missing, progressWait, slackText, logs)
		}
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metricsText := string(b)
	for _, want := range []string{`chatwarden_ingest_pii_total{kind="card",store="crm"} 1`, `chatwarden_ingest_pii_total{kind="email",store="crm"} 1`} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	sv.stop(t)

	var status syncBuffer
	if err := runStatus(t.Context(), &env{stdout: &status, stderr: io.Discard, log: slog.New(slog.DiscardHandler)}, []string{"-config", cfgFile}); err != nil {
		t.Fatalf("status: %v\n%s", err, status.String())
	}
	if !strings.Contains(status.String(), "payload pii  stored pseudonymized per producer store") || !strings.Contains(status.String(), "crm=2") {
		t.Errorf("status does not count the two pseudonymized events of crm:\n%s", status.String())
	}

	tables := dumpTables(t, le.ch)
	places := map[string]string{"log": logs.String() + sv.stdout.String() + sv.stderr.String(), "metrics": metricsText,
		"slack": slackText, "clickhouse": tables, "status": status.String()}
	for where, text := range places {
		for _, s := range []string{card, email, "jane.doe", "example.com"} {
			if i := strings.Index(text, s); i >= 0 {
				t.Errorf("%s contains %q: ...%s...", where, s, text[max(0, i-200):min(len(text), i+len(s)+50)])
			}
		}
	}
	// The finding is stored with the masked values (the search above
	// could have found the raw ones).
	if !strings.Contains(tables, "pii_in_payload") || !strings.Contains(tables, models.MaskPII(card)) {
		t.Errorf("clickhouse holds no pii_in_payload finding with the masked card")
	}
}
