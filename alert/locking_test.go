package alert

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// finishes runs fn in a goroutine and fails the test if it has not returned
// within a minute: fn must not wait for the blocked call the test holds.
func finishes(t *testing.T, what string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s waited for the blocked store call", what)
	}
}

func bareFinding(detector, actor string, sev models.Severity, at time.Time) models.Finding {
	f := testFinding(detector, actor, sev, at)
	f.Evidence.Subjects, f.Evidence.Records, f.Evidence.Categories = 0, 0, nil
	return f
}

// TestSlowExposureBlocksNoOne: while the blast-radius query of one Notify
// hangs, a responder's action, another Notify, the timers, delivery and
// Unsent go on.
func TestSlowExposureBlocksNoOne(t *testing.T) {
	ctx := t.Context()
	entered, release := make(chan struct{}), make(chan struct{})
	exposure := func(ctx context.Context, _, actor string, _, _ time.Time) (uint64, uint64, []string, error) {
		if actor == "slow" {
			close(entered)
			select {
			case <-release:
			case <-ctx.Done():
				return 0, 0, nil, ctx.Err()
			}
		}
		return 7, 70, []string{"email"}, nil
	}
	st, poster := newMemStore(), &fakePoster{}
	d := newTestDispatcher(t, Config{DefaultChannel: "C1"}, st, Options{Poster: poster, Exposure: exposure})
	if err := d.Notify(ctx, t0, bareFinding("volume_spike", "a1", models.SeverityHigh, t0)); err != nil {
		t.Fatal(err)
	}
	step(t, d, t0)
	a1 := d.byFP[models.Fingerprint("volume_spike", "acme", "a1")]

	slow := make(chan error, 1)
	go func() {
		slow <- d.Notify(ctx, t0.Add(time.Second), bareFinding("volume_spike", "slow", models.SeverityHigh, t0))
	}()
	<-entered
	now := t0.Add(10 * time.Second)
	finishes(t, "ActOnAlert", func() error { return d.ActOnAlert(ctx, now, a1, ActionAcknowledge, "ann", RoleSecOps, "") })
	finishes(t, "Notify of an open alert", func() error {
		return d.Notify(ctx, now, bareFinding("volume_spike", "a1", models.SeverityHigh, now.Add(time.Minute)))
	})
	finishes(t, "Tick", func() error { return d.Tick(ctx, now) })
	finishes(t, "Deliver", func() error { _, err := d.Deliver(ctx, now); return err })
	finishes(t, "Unsent", func() error { d.Unsent(); return nil })
	close(release)
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	rows, err := st.ActiveAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]store.AlertRow{}
	for _, r := range rows {
		got[r.Alert.ActorID] = r
	}
	if r := got["slow"]; r.Alert.Latest.Evidence.Subjects != 7 {
		t.Errorf("the slow alert's blast radius = %+v, want 7 subjects", r.Alert.Latest.Evidence)
	}
	if r := got["a1"]; r.Alert.Status != models.StatusAcknowledged {
		t.Errorf("a1 is %s, want acknowledged", r.Alert.Status)
	}
	if _, updates := poster.counts(); updates != 1 {
		t.Errorf("%d updates, want 1 (a1's message shows the acknowledgement)", updates)
	}
}

// updatePoster reports each Slack update on a channel.
type updatePoster struct {
	*fakePoster
	updated chan struct{}
}

func (p *updatePoster) Update(ctx context.Context, channel, ts string, m *Message) error {
	err := p.fakePoster.Update(ctx, channel, ts, m)
	p.updated <- struct{}{}
	return err
}

// TestBlockedWriteBlocksNoReader: while a Notify's write to ClickHouse
// hangs, Unsent answers and an update already due reaches Slack (its
// result is recorded once the write is through).
func TestBlockedWriteBlocksNoReader(t *testing.T) {
	ctx := t.Context()
	var blocking atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	st := newMemStore()
	st.hold = func(ctx context.Context, method string) error {
		if method != "PutAlerts" || !blocking.CompareAndSwap(true, false) {
			return nil
		}
		close(entered)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	poster := &updatePoster{fakePoster: &fakePoster{}, updated: make(chan struct{}, 10)}
	d := newTestDispatcher(t, Config{DefaultChannel: "C1"}, st, Options{Poster: poster})
	if err := d.Notify(ctx, t0, testFinding("volume_spike", "a1", models.SeverityHigh, t0)); err != nil {
		t.Fatal(err)
	}
	step(t, d, t0)
	now := t0.Add(10 * time.Second)
	a1 := d.byFP[models.Fingerprint("volume_spike", "acme", "a1")]
	if err := d.ActOnAlert(ctx, now, a1, ActionAcknowledge, "ann", RoleSecOps, ""); err != nil {
		t.Fatal(err)
	}
	if n := d.Unsent(); n != 1 {
		t.Fatalf("%d unsent messages, want 1 (a1's acknowledged message)", n)
	}

	blocking.Store(true)
	blocked := make(chan error, 1)
	go func() { blocked <- d.Notify(ctx, now, testFinding("volume_spike", "a2", models.SeverityHigh, now)) }()
	<-entered
	finishes(t, "Unsent", func() error {
		if n := d.Unsent(); n != 1 {
			t.Errorf("%d unsent messages during the blocked write, want 1", n)
		}
		return nil
	})
	delivered := make(chan error, 1)
	go func() { _, err := d.Deliver(ctx, now); delivered <- err }()
	select {
	case <-poster.updated:
	case <-time.After(time.Minute):
		t.Fatal("the due update did not reach Slack while a write was blocked")
	}
	close(release)
	for _, c := range []chan error{blocked, delivered} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := st.OpenAlertMessages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if contains(m.AlertIDs, a1) && m.SentRev != m.Rev {
			t.Errorf("a1's message: sent rev %d of %d, want the update recorded", m.SentRev, m.Rev)
		}
	}
}
