package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatwarden/chatwarden/alert"
	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/internal/slackfake"
	"github.com/chatwarden/chatwarden/internal/storetest"
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
