package alert

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// historyPoster is a fakePoster whose Find searches the posts by message
// id, as a channel-history look-up does; onPost runs after each post.
type historyPoster struct {
	fakePoster
	onPost func(m *Message)
	finds  atomic.Int32
}

func (h *historyPoster) Post(ctx context.Context, channel string, m *Message) (string, string, error) {
	c, ts, err := h.fakePoster.Post(ctx, channel, m)
	if h.onPost != nil {
		h.onPost(m)
	}
	return c, ts, err
}

func (h *historyPoster) Find(_ context.Context, _ string, id string, _ time.Time) (string, string, error) {
	h.finds.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.posts {
		if p.msg.ID == id {
			return p.channel, p.ts, nil
		}
	}
	return "", "", nil
}

// postsByActor counts the posts naming each actor.
func (h *historyPoster) postsByActor() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := map[string]int{}
	for _, p := range h.posts {
		n[p.msg.ActorID]++
	}
	return n
}

// TestOwnSplitsGroupsAndHandsOver runs two dispatchers on one store, each
// owning half of the actors (as two members of the alert consumer group
// do): each folds and posts only its own actors' alerts. One of them then
// dies between posting to Slack and recording the message's ts (the store
// refuses the write), gives its groups up, and the other takes every group
// over: it finds the post in the channel's history and updates it instead
// of posting again, and a redelivery of every finding posts nothing.
func TestOwnSplitsGroupsAndHandsOver(t *testing.T) {
	t.Parallel()
	st := newMemStore()
	var failPuts atomic.Bool
	st.hold = func(_ context.Context, method string) error {
		if method == "PutAlertMessages" && failPuts.Load() {
			return errors.New("clickhouse away")
		}
		return nil
	}
	poster := &historyPoster{}
	cfg := Config{DefaultChannel: "C1", Slack: SlackConfig{PerChannelInterval: time.Millisecond}}
	a := newTestDispatcher(t, cfg, st, Options{Poster: poster})
	b := newTestDispatcher(t, cfg, st, Options{Poster: poster})
	actors := make([]string, 10)
	var fs []models.Finding
	for i := range actors {
		actors[i] = fmt.Sprintf("actor-%02d", i)
		f := testFinding("bulk_access", actors[i], models.SeverityCritical, t0)
		f.Evidence.BaselineSource, f.Evidence.EventIDs = "rule", []string{"ev-" + actors[i]}
		fs = append(fs, f)
	}
	ownsA := func(tenant, actor string) bool {
		if tenant != "acme" {
			return true // chatwarden's own alerts and the digest
		}
		return actor < "actor-05"
	}
	ownsB := func(tenant, actor string) bool { return !ownsA(tenant, actor) }
	ctx := t.Context()
	if err := a.Own(ctx, t0, ownsA, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Own(ctx, t0, ownsB, nil); err != nil {
		t.Fatal(err)
	}
	deliver := func(from time.Time) {
		for at := from; at.Before(from.Add(2 * time.Second)); at = at.Add(100 * time.Millisecond) {
			for _, d := range []*Dispatcher{a, b} {
				if err := d.Tick(ctx, at); err != nil {
					t.Fatalf("tick: %v", err)
				}
				if _, err := d.Deliver(ctx, at); err != nil {
					t.Fatalf("deliver: %v", err)
				}
			}
		}
	}
	// Both see every finding but actor-09's: a misrouted one is not folded
	// in by the dispatcher that does not own it, which says so.
	for _, d := range []*Dispatcher{a, b} {
		if err := d.Notify(ctx, t0, fs[:9]...); !errors.Is(err, ErrNotOwner) {
			t.Fatalf("Notify with findings of the other's groups: %v, want ErrNotOwner", err)
		}
	}
	deliver(t0)
	// actor-09's post reaches Slack, but its ts is not recorded.
	poster.onPost = func(*Message) { failPuts.Store(true) }
	if err := b.Notify(ctx, t0, fs[9]); err != nil {
		t.Fatal(err)
	}
	for at := t0.Add(2 * time.Second); at.Before(t0.Add(3 * time.Second)); at = at.Add(100 * time.Millisecond) {
		_, _ = b.Deliver(ctx, at) // the ts write fails
	}
	poster.onPost = nil
	got := poster.postsByActor()
	for _, actor := range actors {
		if got[actor] != 1 {
			t.Fatalf("actor %s: %d posts before the hand-over, want 1 (posts %v)", actor, got[actor], got)
		}
	}
	if a.Unsent() != 0 {
		t.Fatalf("A has %d unsent messages", a.Unsent())
	}
	b.Release(ctx, t0.Add(3*time.Second)) // its write of actor-09's ts fails too
	failPuts.Store(false)
	if err := b.Notify(ctx, t0, fs...); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("Notify on a released dispatcher: %v, want ErrNotOwner", err)
	}
	if n := b.Unsent(); n != 0 {
		t.Fatalf("released B folded findings in: %d unsent messages", n)
	}

	// A takes every group over.
	now := t0.Add(4 * time.Second)
	if err := a.Own(ctx, now, nil, nil); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	groups := len(a.groups)
	a.mu.Unlock()
	if groups != len(actors) {
		t.Fatalf("A holds %d groups after the hand-over, want %d", groups, len(actors))
	}
	if err := a.Notify(ctx, now, fs...); err != nil { // redelivered
		t.Fatal(err)
	}
	for at := now; at.Before(now.Add(2 * time.Second)); at = at.Add(100 * time.Millisecond) {
		if err := a.Tick(ctx, at); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Deliver(ctx, at); err != nil {
			t.Fatal(err)
		}
	}
	got = poster.postsByActor()
	var twice []string
	for _, actor := range actors {
		if got[actor] != 1 {
			twice = append(twice, fmt.Sprintf("%s=%d", actor, got[actor]))
		}
	}
	if len(twice) > 0 {
		t.Fatalf("posts per actor after the hand-over, want 1 each: %s", strings.Join(twice, " "))
	}
	if poster.finds.Load() == 0 {
		t.Fatal("the new owner never looked the unrecorded post up in Slack's history")
	}
	if a.Unsent() != 0 {
		t.Fatalf("%d messages still unsent after the hand-over", a.Unsent())
	}
	// The found post's ts is recorded now.
	for _, m := range st.msgs {
		if m.ActorID == "actor-09" && m.TS == "" {
			t.Fatalf("message %s of actor-09 has no ts after the hand-over", m.ID)
		}
	}
}

// TestReleasedDispatcherOwnsNothing: after Release, no self-monitoring, no
// digest and no findings; Act on an alert of a group another dispatcher
// owns is refused with ErrNotOwner.
func TestReleasedDispatcherOwnsNothing(t *testing.T) {
	t.Parallel()
	st := newMemStore()
	poster := &historyPoster{}
	var mu sync.Mutex
	var selfCalls int
	owner := newTestDispatcher(t, Config{DefaultChannel: "C1"}, st, Options{Poster: poster})
	other := newTestDispatcher(t, Config{DefaultChannel: "C1"}, st, Options{Poster: poster,
		Sources: func(context.Context, time.Time) (map[string]time.Time, error) {
			mu.Lock()
			selfCalls++
			mu.Unlock()
			return nil, nil
		}})
	ctx := t.Context()
	f := testFinding("bulk_access", "actor-1", models.SeverityCritical, t0)
	f.Evidence.BaselineSource = "rule"
	if err := owner.Notify(ctx, t0, f); err != nil {
		t.Fatal(err)
	}
	step(t, owner, t0.Add(time.Second))
	if posts, _ := poster.counts(); posts != 1 {
		t.Fatalf("%d posts, want 1", posts)
	}
	other.Release(ctx, t0)
	step(t, other, t0.Add(2*time.Second))
	if err := other.Notify(ctx, t0, f); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("Notify on a released dispatcher: %v, want ErrNotOwner", err)
	}
	mu.Lock()
	calls := selfCalls
	mu.Unlock()
	if calls != 0 {
		t.Fatalf("a released dispatcher ran self-monitoring %d times", calls)
	}
	var msgID string
	for id := range st.msgs {
		msgID = id
	}
	err := other.Act(ctx, t0.Add(3*time.Second), Action{Kind: ActionAcknowledge, MessageID: msgID, User: "U1", UserName: "ann",
		Identity: "ann", Role: "secops"})
	if !errors.Is(err, ErrNotOwner) {
		t.Fatalf("Act on another dispatcher's alert: %v, want ErrNotOwner", err)
	}
	if err := owner.Act(ctx, t0.Add(3*time.Second), Action{Kind: ActionAcknowledge, MessageID: msgID, User: "U1", UserName: "ann",
		Identity: "ann", Role: "secops"}); err != nil {
		t.Fatalf("Act on the owner: %v", err)
	}
	if posts, _ := poster.counts(); posts != 1 {
		t.Fatalf("%d posts, want 1", posts)
	}
}

// TestFencedDispatcherDoesNotPost: while the fence says the share may have
// moved on, a first post is not made (and not marked uncertain); once it
// passes again, the message is posted once.
func TestFencedDispatcherDoesNotPost(t *testing.T) {
	t.Parallel()
	st := newMemStore()
	poster := &historyPoster{}
	d := newTestDispatcher(t, Config{DefaultChannel: "C1"}, st, Options{Poster: poster})
	var moved atomic.Bool
	moved.Store(true)
	fence := func(context.Context) error {
		if moved.Load() {
			return errors.New("generation ended")
		}
		return nil
	}
	ctx := t.Context()
	if err := d.Own(ctx, t0, nil, fence); err != nil {
		t.Fatal(err)
	}
	f := testFinding("bulk_access", "actor-1", models.SeverityCritical, t0)
	f.Evidence.BaselineSource = "rule"
	if err := d.Notify(ctx, t0, f); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Deliver(ctx, t0); err == nil {
		t.Fatal("Deliver posted past a failing fence")
	}
	if posts, _ := poster.counts(); posts != 0 {
		t.Fatalf("%d posts past a failing fence", posts)
	}
	moved.Store(false)
	for at := t0.Add(time.Second); at.Before(t0.Add(5 * time.Second)); at = at.Add(500 * time.Millisecond) {
		step(t, d, at)
	}
	if posts, _ := poster.counts(); posts != 1 {
		t.Fatalf("%d posts once the fence passes, want 1", posts)
	}
	if poster.finds.Load() != 0 {
		t.Fatal("a fenced attempt was taken for an uncertain post")
	}
}
