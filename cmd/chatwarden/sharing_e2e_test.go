package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/dashboards"
	"github.com/chatwarden/chatwarden/internal/slackfake"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/sim"
)

// TestSimulatedSharingAndPIIEndToEnd (issue 14 items 2-4 on the local
// stack): the simulator's traffic — normal shares with the allow-listed
// processors, a share_new_destination attack, the payload PII windows — goes
// through the real broker into serve (ingest.pii: pseudonymize, the first
// tenant's allow-list as eval-matrix configures it) and ClickHouse: the
// attack's share reaches Slack as destination_allowlist naming its
// destination, the producers' payload PII as pii_in_payload with masked
// values only; the breach assessment of the sharing alert (/api/incidents)
// says data left, to that destination; the weekly report's "data shared
// with third parties" lists the processors and the attack's destination.
func TestSimulatedSharingAndPIIEndToEnd(t *testing.T) {
	t.Parallel()
	le := newLeakEnv(t)
	keyFile := le.writeKey(t, "pseudonym.key", "73696d2d65326520746573742d6b65792d30313233343536373839616263646566")
	var slackMu sync.Mutex
	var slackMsgs []string
	rec := slackfake.New(func(a slackfake.Arrival) {
		slackMu.Lock()
		slackMsgs = append(slackMsgs, a.Text+"\n"+a.Blocks)
		slackMu.Unlock()
	})
	defer rec.Close()
	token, tok, err := dashboards.NewToken("e2e", dashboards.RoleResponder)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := le.config(t, "chatwarden.yaml", "pseudonym:\n  key_file: "+keyFile, fmt.Sprintf(`  pii: pseudonymize
serve:
  addr: 127.0.0.1:0
detect:
  destinations:
    tenants:
      default: [%s]
alert:
  default_channel: C0E2E
  group_wait: 1s
  slack:
    token: xoxb-e2e-test
    signing_secret: e2e-test-signing-secret
    api_url: %s
dashboards:
  tokens:
    - name: e2e
      role: responder
      id: %q
      sha256: %q
`, strings.Join(sim.Destinations, ", "), rec.URL(), tok.ID, tok.SHA256))

	// 80 minutes of the simulated platform, ending now: a compact attack
	// schedule (share_new_destination 15 minutes in) and the payload PII
	// windows at 40% and 70% of the span.
	now := time.Now().UTC()
	g, err := sim.New(sim.Config{Seed: 4, Start: now.Add(-85 * time.Minute), Duration: 80 * time.Minute, Actors: 30,
		Tenants: []string{"default"}, Attacks: []string{sim.KindShareNewDestination}, Compact: true,
		Warmup: 15 * time.Minute, AttackEvery: time.Minute, PayloadPII: true})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var attackDest string
	// The weeks whose report must list a destination: the attack's, and
	// the support desk's when the 80 minutes hold one of its shares (the
	// agents share during their shifts, so that depends on the time of
	// day the test runs; at night there is none).
	wantShared := map[string]map[string]bool{}
	var b sim.Batch
	for g.Next(&b) {
		for i := range b.Lines {
			v := string(b.Value(i))
			lines = append(lines, v)
			var e struct {
				TS          time.Time `json:"ts"`
				Destination string    `json:"destination"`
			}
			if json.Unmarshal([]byte(v), &e) != nil || e.Destination == "" {
				continue
			}
			attack := !slices.Contains(sim.Destinations, e.Destination)
			if attack {
				attackDest = e.Destination
			}
			if attack || e.Destination == sim.DestBPO {
				w := isoWeek(e.TS)
				if wantShared[w] == nil {
					wantShared[w] = map[string]bool{}
				}
				wantShared[w][e.Destination] = true
			}
		}
	}
	var shares, piiWins int
	for _, l := range g.Labels() {
		switch l.Kind {
		case sim.KindShareNewDestination:
			shares++
		case sim.KindPayloadPII:
			piiWins++
		}
	}
	if attackDest == "" || shares != 1 || piiWins != 2 {
		t.Fatalf("simulated: attack destination %q, %d share labels, %d payload PII labels; want one attack, two windows", attackDest, shares, piiWins)
	}
	lines = withPIIEvents(t, lines, g.Labels())

	sv := serveInProcess(t, cfgFile, slog.LevelInfo)
	base := sv.base
	le.produce(t, lines...)

	var slackText string
	for deadline := time.Now().Add(progressWait); ; time.Sleep(250 * time.Millisecond) {
		slackMu.Lock()
		slackText = strings.Join(slackMsgs, "\n")
		slackMu.Unlock()
		if strings.Contains(slackText, "destination_allowlist") && strings.Contains(slackText, attackDest) &&
			strings.Contains(slackText, "Payload PII") && strings.Contains(slackText, "email in `resource.id`") &&
			strings.Contains(slackText, "card in `resource.id`") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within %s Slack got no destination_allowlist alert for %s and no pii_in_payload alerts of both producers; messages:\n%.4000s",
				progressWait, attackDest, slackText)
		}
	}
	if regexp.MustCompile(`4000\d{12}|customer\d+@example\.org`).MatchString(slackText) {
		t.Errorf("a raw payload PII value reached Slack")
	}

	get := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
	var alerts struct {
		Alerts []models.Alert `json:"alerts"`
	}
	get("/api/alerts?since=24h", &alerts)
	id := ""
	for _, a := range alerts.Alerts {
		if a.Detector == "destination_allowlist" {
			id = a.ID
		}
	}
	if id == "" {
		t.Fatalf("no destination_allowlist alert on /api/alerts: %+v", alerts.Alerts)
	}
	var inc struct {
		DataLeft bool `json:"data_left"`
		Facts    struct {
			Destinations []struct {
				Destination string `json:"destination"`
			} `json:"destinations"`
		} `json:"facts"`
	}
	get("/api/incidents/"+id, &inc)
	if !inc.DataLeft || !slices.ContainsFunc(inc.Facts.Destinations, func(d struct {
		Destination string `json:"destination"`
	}) bool {
		return d.Destination == attackDest
	}) {
		t.Errorf("breach assessment of %s: data_left %t, destinations %+v; want %s", id, inc.DataLeft, inc.Facts.Destinations, attackDest)
	}
	type shared struct {
		Tenant      string `json:"tenant"`
		Destination string `json:"destination"`
		Records     uint64 `json:"records"`
	}
	// The alerts above can come before the last of the 80 minutes'
	// events is stored: read the weekly reports until they list every
	// destination they must.
	var got map[string][]shared
	for deadline := time.Now().Add(progressWait); ; time.Sleep(500 * time.Millisecond) {
		got = map[string][]shared{}
		missing := ""
		for week, dests := range wantShared {
			var weekly struct {
				Shared []shared `json:"shared"`
			}
			get("/api/reports/weekly?week="+week, &weekly)
			got[week] = weekly.Shared
			for d := range dests {
				if !slices.ContainsFunc(weekly.Shared, func(s shared) bool { return s.Destination == d && s.Records > 0 }) {
					missing = week + " " + d
				}
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within %s the weekly reports' data shared with third parties %+v lack %s (want %v)", progressWait, got, missing, wantShared)
		}
	}
	t.Logf("attack destination %s, alert %s, incident destinations %+v, weekly shared %+v", attackDest, id, inc.Facts.Destinations, got)
	sv.stop(t)
}

// isoWeek is t's ISO week as the weekly report names it (2026-W49).
func isoWeek(t time.Time) string {
	y, w := t.ISOWeek()
	return fmt.Sprintf("%d-W%02d", y, w)
}

// withPIIEvents returns lines with, for each payload PII window of labels
// that no event of its store falls in, one event of that store moved into
// the window and carrying the window's kind of value in resource.id, as
// the simulator's bad release writes it (e-mail for the CRM, a Luhn-valid
// card number on the 4000 prefix for orders). The simulated 30 actors may
// not touch a store in those minutes at night or on a weekend (the CRM's
// window is 5 minutes long, and where it falls depends on when the test
// runs), and the test must not depend on the time of day.
func withPIIEvents(t *testing.T, lines []string, labels []sim.Label) []string {
	t.Helper()
	type access struct {
		TS       time.Time `json:"ts"`
		Store    string    `json:"store"`
		Resource struct {
			ID string `json:"id"`
		} `json:"resource"`
	}
	for _, l := range labels {
		if l.Kind != sim.KindPayloadPII {
			continue
		}
		var donor string
		in := false
		for _, line := range lines {
			var a access
			if json.Unmarshal([]byte(line), &a) != nil || a.Store != l.ActorID || a.Resource.ID == "" {
				continue
			}
			if !a.TS.Before(l.Start) && a.TS.Before(l.End) {
				in = true
				break
			}
			if donor == "" {
				donor = line
			}
		}
		if in {
			continue
		}
		if donor == "" {
			t.Fatalf("simulated: no event of store %s to carry payload PII label %s", l.ActorID, l.ID)
		}
		ev := map[string]any{}
		dec := json.NewDecoder(strings.NewReader(donor))
		dec.UseNumber()
		if err := dec.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		value := "customer42@example.org"
		if l.ActorID == "orders" {
			value = "4000000000000002"
		}
		res, ok := ev["resource"].(map[string]any)
		if !ok {
			t.Fatalf("simulated event without a resource object: %s", donor)
		}
		res["id"] = value
		ev["event_id"] = "e2e-" + l.ID
		ev["ts"] = l.Start.Add(time.Minute).Format(time.RFC3339)
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("no %s event in payload PII window %s: added %s", l.ActorID, l.ID, b)
		lines = append(lines, string(b))
	}
	return lines
}
