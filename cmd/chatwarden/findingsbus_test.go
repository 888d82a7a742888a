package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatwarden/chatwarden/alert"
	"github.com/chatwarden/chatwarden/dashboards"
	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/internal/slackfake"
	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/internal/subproc"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// busEnv is one findings-bus test's Kafka topic and group, ClickHouse
// database and Slack workspace.
type busEnv struct {
	c     Config
	s     *store.Store
	slack *slackfake.Server
	log   *syncBuffer
}

const busChannel = "C0BUS"

func newBusEnv(t *testing.T) *busEnv {
	t.Helper()
	ic := testTopics(t, "fbus", 1, 1, 1)
	ic.SessionTimeout = 6 * time.Second
	fc := ingest.FindingsConfig{Transport: ingest.FindingsKafka, Topic: ic.Group + "-findings", Group: ic.Group + "-alert",
		Partitions: 6, Linger: 20 * time.Millisecond}
	t.Cleanup(func() { _ = ingest.DeleteTopics(context.Background(), ic, fc.Topic) })
	sl := slackfake.New(nil)
	t.Cleanup(sl.Close)
	ch := storetest.Config(t)
	c := Config{ClickHouse: ch, Ingest: ic, Findings: fc, Alert: alert.Config{DefaultChannel: busChannel,
		Slack: alert.SlackConfig{Token: "xoxb-bus-test", APIURL: sl.URL(), PerChannelInterval: time.Millisecond}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return &busEnv{c: c, s: storetest.Open(t, ch), slack: sl, log: &syncBuffer{}}
}

// busMember is one serve's alerting, a member of the alert consumer group.
type busMember struct {
	name   string
	al     alerting
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// start wires alerting as serve does (findings.transport kafka) and runs
// its component until stop.
func (e *busEnv) start(t *testing.T, name string, c Config) *busMember {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelInfo})).With("member", name)
	al, err := wireAlert(t.Context(), c, e.s, reg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	m := &busMember{name: name, al: al, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- al.component.run(ctx) }()
	t.Cleanup(func() { m.stop(t) })
	return m
}

// stop cancels the member and waits until it left the group.
func (m *busMember) stop(t *testing.T) {
	t.Helper()
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.cancel = nil
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("member %s: %v", m.name, err)
		}
	case <-time.After(exitWait):
		t.Fatalf("member %s did not stop within %s", m.name, exitWait)
	}
	_ = m.al.close()
}

// metric returns the sum of a metric's samples (matching label value lv
// when not empty) in the member's registry.
func (m *busMember) metric(t *testing.T, name, lv string) float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, s := range mf.GetMetric() {
			if lv != "" {
				for _, l := range s.GetLabel() {
					if l.GetValue() != lv {
						continue next
					}
				}
			}
			switch {
			case s.GetCounter() != nil:
				sum += s.GetCounter().GetValue()
			case s.GetGauge() != nil:
				sum += s.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// busFinding is a critical event-rule finding on actor (posted at once).
func busFinding(actor string, now time.Time) models.Finding {
	return models.Finding{Detector: "bulk_access", Tenant: "acme", ActorID: actor, ActorType: models.ActorHuman,
		WindowStart: now, WindowEnd: now, DetectedAt: now, Severity: models.SeverityCritical, Score: 10,
		Summary: "bulk export by " + actor, Evidence: models.Evidence{Metric: "records", Observed: 50000, Baseline: 1000,
			BaselineSource: "rule", Records: 50000, Subjects: 50000, EventIDs: []string{"ev-" + actor}}}
}

// postsPerActor counts the Slack posts naming each of actors, and the
// posts in all.
func (e *busEnv) postsPerActor(actors []string) (per map[string]int, total int) {
	msgs := e.slack.Messages(busChannel)
	per = map[string]int{}
	for _, m := range msgs {
		for _, a := range actors {
			if strings.Contains(m.Text+string(m.Blocks), a) {
				per[a]++
			}
		}
	}
	return per, len(msgs)
}

// lag is the alert consumer group's lag over the findings topic.
func (e *busEnv) lag(t *testing.T, group string) int64 {
	t.Helper()
	pls, err := ingest.GroupLag(t.Context(), e.c.Ingest, group, e.c.Findings.Topic)
	if err != nil {
		return -1
	}
	var n int64
	for _, p := range pls {
		n += p.Lag
	}
	return n
}

// TestFindingsBusMemberLeavesMidStream: two serves' alerting share the
// alert consumer group over a findings topic of 6 partitions, one
// ClickHouse database and one Slack workspace. Findings on 60 actors
// stream in; when both members have posted, one is stopped mid-stream (its
// context cancelled: it gives its groups up and leaves the group) and the
// other takes its partitions over. Every actor's alert is posted exactly
// once. Then a new group (a fresh consumer group id) reads every finding
// again from the start, as after a lost commit: it takes every alert
// group over from ClickHouse and posts nothing more.
func TestFindingsBusMemberLeavesMidStream(t *testing.T) {
	t.Parallel()
	e := newBusEnv(t)
	a := e.start(t, "a", e.c)
	b := e.start(t, "b", e.c)
	waitFor(t, progressWait, "both members own partitions", func() bool {
		return a.metric(t, "chatwarden_findings_partitions_owned", "") > 0 && b.metric(t, "chatwarden_findings_partitions_owned", "") > 0
	})
	actors := make([]string, 60)
	for i := range actors {
		actors[i] = fmt.Sprintf("fbus-actor-%03d", i)
	}
	send := a.al.notify // the producer is the same in every serve
	now := time.Now().UTC()
	for _, actor := range actors[:20] {
		if err := send(t.Context(), busFinding(actor, now)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, progressWait, "both members posted", func() bool {
		return a.metric(t, "chatwarden_alert_slack_calls_total", "post") > 0 && b.metric(t, "chatwarden_alert_slack_calls_total", "post") > 0
	})
	// Stream the rest while b stops.
	var wg sync.WaitGroup
	sendErr := make(chan error, 1)
	wg.Go(func() {
		for i, actor := range actors[20:] {
			if err := send(t.Context(), busFinding(actor, time.Now().UTC())); err != nil {
				sendErr <- err
				return
			}
			if i%5 == 0 {
				time.Sleep(50 * time.Millisecond) // a stream, not one batch
			}
		}
	})
	b.stop(t)
	wg.Wait()
	select {
	case err := <-sendErr:
		t.Fatal(err)
	default:
	}
	waitFor(t, progressWait, "every actor posted and every finding committed", func() bool {
		per, _ := e.postsPerActor(actors)
		return len(per) == len(actors) && e.lag(t, e.c.Findings.Group) == 0
	})
	check := func(when string) {
		t.Helper()
		per, total := e.postsPerActor(actors)
		for _, actor := range actors {
			if per[actor] != 1 {
				t.Errorf("%s: %s posted %d times, want 1", when, actor, per[actor])
			}
		}
		if total != len(actors) {
			t.Errorf("%s: %d posts, want %d", when, total, len(actors))
		}
	}
	check("after the hand-over")
	if got := a.metric(t, "chatwarden_findings_consumed_total", ""); got < 40 {
		t.Errorf("the survivor handled %v findings, want at least the 40 sent after the other stopped", got)
	}
	a.stop(t)

	// Every finding read again by a new group.
	c2 := e.c
	c2.Findings.Group += "-replay"
	r := e.start(t, "replay", c2)
	waitFor(t, progressWait, "the replay group handled every finding", func() bool {
		return r.metric(t, "chatwarden_findings_consumed_total", "") >= float64(len(actors)) && e.lag(t, c2.Findings.Group) == 0
	})
	if dup := r.metric(t, "chatwarden_alert_duplicate_findings_total", ""); dup != float64(len(actors)) {
		t.Errorf("the replay folded %v findings as duplicates, want %d", dup, len(actors))
	}
	// It took every alert group over from ClickHouse.
	if g := r.metric(t, "chatwarden_alert_groups_owned", ""); g != float64(len(actors)) {
		t.Errorf("the replay member holds %v alert groups, want %d", g, len(actors))
	}
	r.stop(t)
	check("after the replay")
}

// actorsCovering returns n actor ids (prefix-000, prefix-001, ...) that,
// as keys of tenant's findings, land on every one of partitions partitions
// (n >= partitions).
func actorsCovering(prefix, tenant string, n, partitions int) []string {
	var out []string
	hit := map[int]bool{}
	for i := 0; len(out) < n; i++ {
		a := fmt.Sprintf("%s-%03d", prefix, i)
		p := ingest.FindingPartition(ingest.FindingKey(tenant, a), partitions)
		if hit[p] && len(hit) < partitions && n-len(out) <= partitions-len(hit) {
			continue // keep room for the partitions not hit yet
		}
		hit[p] = true
		out = append(out, a)
	}
	return out
}

// serveEvents is a JSONL batch: a bulk export of 50,000 records by each
// of exporters (the bulk_access event rule), and denied reads by denied
// (count of them, for the denied_burst window detector).
func serveEvents(prefix string, now time.Time, exporters []string, denied string, count int) string {
	var b strings.Builder
	for i, a := range exporters {
		fmt.Fprintf(&b, `{"event_id":"%s-x-%d","ts":%q,"tenant":"acme","actor":{"id":%q,"type":"human","role":"agent"},"action":"export","store":"crm","resource":{"type":"customer_profile"},"records":50000,"fields":["email"]}`+"\n",
			prefix, i, now.Format(time.RFC3339Nano), a)
	}
	for i := range count {
		fmt.Fprintf(&b, `{"event_id":"%s-d-%d","ts":%q,"tenant":"acme","actor":{"id":%q,"type":"human","role":"agent"},"action":"read","store":"crm","resource":{"type":"customer_profile"},"result":"denied","fields":["email"]}`+"\n",
			prefix, i, now.Format(time.RFC3339Nano), denied)
	}
	return b.String()
}

// servePost is the chatwarden_alert_slack_calls_total{op="post"} of a
// serve's /metrics page (-1 when it does not answer).
func servePost(t *testing.T, addr string) float64 {
	t.Helper()
	return scrape(t, addr, `chatwarden_alert_slack_calls_total{op="post"}`)
}

// scrape returns the value of the sample line starting with series on
// addr's /metrics (0 when absent, -1 when the page does not answer).
func scrape(t *testing.T, addr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// TestFindingsBusServeKilled runs two `chatwarden serve` processes with
// findings.transport kafka on one ClickHouse database and one Slack
// workspace. Bulk exports by actors covering every partition of the
// findings topic alert through both; then one serve is SIGKILLed and more
// bulk exports, and a burst of denied reads (the denied_burst window
// detector), stream in: the survivor takes the dead one's partitions over
// after the session timeout. Every alert is in Slack exactly once, the
// event rules' and the window detector's findings both went through the
// topic (the dispatcher is reached by nothing else in this mode), and no
// message id was posted twice.
func TestFindingsBusServeKilled(t *testing.T) {
	t.Parallel()
	e := newBusEnv(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := subproc.Env("CHATWARDEN_PSEUDONYM_KEY=" + hex.EncodeToString(key))
	ic, fc := e.c.Ingest, e.c.Findings
	config := func(name string) (file, addr string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		ln.Close()
		y := fmt.Sprintf(`clickhouse:
  addr: %s
  database: %s
ingest:
  brokers: [%s]
  access_topic: %s
  consent_topic: %s
  dead_letter_topic: %s
  group: %s
  session_timeout: 6s
  linger: 50ms
findings:
  transport: kafka
  topic: %s
  group: %s
  partitions: %d
serve:
  addr: %s
detect:
  window: 10s
  severities:
    bulk_access: critical
alert:
  default_channel: %s
  group_wait: 1s
  slack:
    token: xoxb-bus-test
    api_url: %s
    per_channel_interval: 1ms
`, e.c.ClickHouse.Addr, e.c.ClickHouse.Database, strings.Join(ic.Brokers, ", "), ic.AccessTopic, ic.ConsentTopic,
			ic.DeadLetterTopic, ic.Group, fc.Topic, fc.Group, fc.Partitions, addr, busChannel, e.slack.URL())
		file = filepath.Join(t.TempDir(), name+".yaml")
		if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return file, addr
	}
	fileA, addrA := config("a")
	fileB, addrB := config("b")
	a := subproc.Start(t, "serve-a", chatwardenBinary(t), env, "serve", "-config", fileA)
	b := subproc.Start(t, "serve-b", chatwardenBinary(t), env, "serve", "-config", fileB)
	t.Cleanup(func() {
		if !a.Exited() {
			_ = a.Stop(t, syscall.SIGTERM, exitWait)
		}
		if t.Failed() {
			t.Logf("serve-a:\n%s\nserve-b:\n%s", a.Tail(60), b.Tail(60))
		}
	})
	owned := `chatwarden_findings_partitions_owned`
	waitFor(t, progressWait, "both serves own findings partitions", func() bool {
		return scrape(t, addrA, owned) > 0 && scrape(t, addrB, owned) > 0 && scrape(t, addrA, owned)+scrape(t, addrB, owned) == float64(fc.Partitions)
	})
	produce := func(lines string) {
		t.Helper()
		prod, err := ingest.NewProducer(ic, "")
		if err != nil {
			t.Fatal(err)
		}
		defer prod.Close()
		if _, err := prod.ProduceJSONL(t.Context(), strings.NewReader(lines), 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	first := actorsCovering("kill-before", "acme", 12, fc.Partitions)
	produce(serveEvents("p1", time.Now().UTC(), first, "", 0))
	waitFor(t, progressWait, "both serves posted the first bulk exports", func() bool {
		per, _ := e.postsPerActor(first)
		return len(per) == len(first) && servePost(t, addrA) > 0 && servePost(t, addrB) > 0
	})
	if err := b.Stop(t, syscall.SIGKILL, exitWait); err == nil {
		t.Fatal("serve-b exited cleanly after SIGKILL")
	}
	second := actorsCovering("kill-after", "acme", 12, fc.Partitions)
	const denier = "kill-denier"
	produce(serveEvents("p2", time.Now().UTC(), second, denier, 40))
	all := append(append(append([]string(nil), first...), second...), denier)
	t.Cleanup(func() {
		if t.Failed() {
			per, total := e.postsPerActor(all)
			var missing []string
			for _, a := range all {
				if per[a] == 0 {
					missing = append(missing, a)
				}
			}
			t.Logf("%d posts; not posted: %v; findings group lag %d; survivor /metrics: produced %v consumed %v partitions %v",
				total, missing, e.lag(t, fc.Group), scrape(t, addrA, "chatwarden_findings_produced_total"),
				scrape(t, addrA, "chatwarden_findings_consumed_total"), scrape(t, addrA, owned))
		}
	})
	waitFor(t, progressWait, "every alert posted after the kill, every finding committed", func() bool {
		per, _ := e.postsPerActor(all)
		return len(per) == len(all) && e.lag(t, fc.Group) == 0
	})
	per, _ := e.postsPerActor(all)
	for _, actor := range all {
		if per[actor] != 1 {
			t.Errorf("%s posted %d times, want 1", actor, per[actor])
		}
	}
	ids := map[string]int{}
	for _, m := range e.slack.Messages(busChannel) {
		ids[string(m.Metadata)]++
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("message %s posted %d times", id, n)
		}
	}
	for _, m := range e.slack.Messages(busChannel) {
		if strings.Contains(m.Text+string(m.Blocks), denier) && !strings.Contains(string(m.Blocks)+m.Text, "denied") {
			t.Errorf("the message on %s is not the denied_burst alert: %.300s", denier, m.Text)
		}
	}
	if got := scrape(t, addrA, "chatwarden_findings_produced_total"); got < float64(len(second)) {
		t.Errorf("the survivor produced %v findings to the topic, want at least %d", got, len(second))
	}
}

// TestFindingsConfigValidated: a bad findings section is an error naming
// the field.
func TestFindingsConfigValidated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"transport", "findings:\n  transport: carrier-pigeon\n", "findings.transport"},
		{"topic name", "findings:\n  transport: kafka\n  topic: 'a b'\n", "findings.topic"},
		{"topic reused", "findings:\n  transport: kafka\n  topic: chatwarden.access.v1\n", "findings.topic"},
		{"group reused", "ingest:\n  group: g1\nfindings:\n  transport: kafka\n  group: g1\n", "findings.group"},
		{"partitions", "findings:\n  partitions: 5000\n", "findings.partitions"},
		{"max batch", "findings:\n  max_batch: -1\n", "findings.max_batch"},
		{"linger", "findings:\n  linger: 5s\n", "findings.linger"},
		{"unknown key", "findings:\n  transprot: kafka\n", "transprot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var c Config
			err := decodeStrict([]byte(tc.yaml), &c)
			if err == nil {
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%q: error %v, want one naming %s", tc.yaml, err, tc.want)
			}
		})
	}
	var c Config
	if err := decodeStrict([]byte("findings:\n  transport: kafka\n  partitions: 6\n"), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("a valid findings section: %v", err)
	}
}

// TestFindingsBusForwardsActions: with two members, a responder's
// acknowledgement (the web buttons' path; Slack's clicks take the same
// one) reaches one serve whatever alert it is on. On an alert the other
// member dispatches it is checked, sent through the findings topic, and
// applied by the owner: every alert ends acknowledged, by the responder,
// and nothing is posted again. A role that may not act is refused at once
// by the member the click reached.
func TestFindingsBusForwardsActions(t *testing.T) {
	t.Parallel()
	e := newBusEnv(t)
	a := e.start(t, "a", e.c)
	b := e.start(t, "b", e.c)
	waitFor(t, progressWait, "both members own partitions", func() bool {
		return a.metric(t, "chatwarden_findings_partitions_owned", "") > 0 && b.metric(t, "chatwarden_findings_partitions_owned", "") > 0
	})
	actors := actorsCovering("fwd", "acme", 12, e.c.Findings.Partitions)
	now := time.Now().UTC()
	for _, actor := range actors {
		if err := a.al.notify(t.Context(), busFinding(actor, now)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, progressWait, "every actor posted", func() bool {
		per, _ := e.postsPerActor(actors)
		return len(per) == len(actors)
	})
	rows, err := e.s.ActiveAlerts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(actors) {
		t.Fatalf("%d active alerts, want %d", len(rows), len(actors))
	}
	manager := dashboards.ActionRequest{Action: string(alert.ActionAcknowledge), User: "mia", Role: dashboards.RoleManager}
	for _, r := range rows {
		req := manager
		req.AlertID = r.Alert.ID
		if err := a.al.actions.Act(t.Context(), req, time.Now()); !errors.Is(err, dashboards.ErrActionNotAllowed) {
			t.Fatalf("a manager's acknowledgement of %s: %v, want refused", r.Alert.ID, err)
		}
		req.User, req.Role = "ann", dashboards.RoleSecOps
		if err := a.al.actions.Act(t.Context(), req, time.Now()); err != nil {
			t.Fatalf("acknowledging %s through member a: %v", r.Alert.ID, err)
		}
	}
	if a.metric(t, "chatwarden_alert_actions_forwarded_total", "") == 0 {
		t.Fatal("member a forwarded no action, but b owns some of the actors")
	}
	waitFor(t, progressWait, "every alert acknowledged", func() bool {
		rows, err := e.s.ActiveAlerts(t.Context())
		if err != nil {
			return false
		}
		for _, r := range rows {
			if r.Alert.Status != models.StatusAcknowledged {
				return false
			}
		}
		return len(rows) == len(actors)
	})
	rows, _ = e.s.ActiveAlerts(t.Context())
	for _, r := range rows {
		if r.Alert.UpdatedBy != "web:ann" {
			t.Errorf("alert %s acknowledged by %q, want web:ann", r.Alert.ID, r.Alert.UpdatedBy)
		}
	}
	if per, total := e.postsPerActor(actors); total != len(actors) {
		t.Errorf("%d posts after the acknowledgements, want %d (%v)", total, len(actors), per)
	}
}
