package alert

import (
	"context"
	"errors"
	"time"
)

// ErrNotOwner is returned (wrapped) by Notify for findings, and by Act
// (with no Options.Forward) and ActForwarded for an alert, whose group
// another dispatcher of the alert consumer group dispatches: folding or
// applying them here would race with that dispatcher's state.
var ErrNotOwner = errors.New("alert group is dispatched by another chatwarden instance")

// OwnsFunc reports whether this dispatcher dispatches the alert groups of
// (tenant, actor). Several dispatchers sharing one store split the groups
// between them with it (in serve: the partitions of the findings topic a
// member of the alert consumer group is assigned); every (tenant, actor)
// must be owned by exactly one of them at a time.
type OwnsFunc func(tenant, actor string) bool

// FenceFunc checks, before a message is posted for the first time, that
// this dispatcher still owns its share of the alert groups (in serve: that
// the consumer-group generation that assigned it is still current). An
// error means it may have moved to another dispatcher: nothing is posted
// (the attempt is retried later, and stops when the share is released).
type FenceFunc func(ctx context.Context) error

// selfKey is the (tenant, actor) whose owner also runs self-monitoring and
// the weekly digest, and owns every alert of SelfTenant: one dispatcher of
// the group does that work.
const selfKeyActor = ""

// ownsLocked reports whether the dispatcher's scope holds (tenant, actor);
// d.mu or d.step is held (Own and Release change the scope under both). Without a scope (the single-process default) it holds
// everything.
func (d *Dispatcher) ownsLocked(tenant, actor string) bool {
	if d.owns == nil {
		return true
	}
	if tenant == "" || tenant == SelfTenant {
		// chatwarden's alerts about itself and the digest (no tenant) go
		// with the self-monitoring duty.
		return d.owns(SelfTenant, selfKeyActor)
	}
	return d.owns(tenant, actor)
}

// ownsSelfLocked reports whether this dispatcher runs self-monitoring and
// the weekly digest; d.mu is held.
func (d *Dispatcher) ownsSelfLocked() bool { return d.ownsLocked(SelfTenant, selfKeyActor) }

// Own makes the dispatcher dispatch only the alert groups owns accepts:
// it writes what it has not yet written (delivery results), forgets its
// state and reads the state of the owned groups back from the store
// (active alerts, live messages, and each message's intent to post, so that
// a post whose answer was lost is looked up in Slack's history before it is
// posted again). Call it when a consumer-group generation hands this member
// its partitions, before the generation's findings are notified and before
// Run. A nil owns owns everything; fence (nil: none) is checked before each
// first post. An error means the state could not be read; it is read again
// on the next Notify, Tick or Deliver.
func (d *Dispatcher) Own(ctx context.Context, now time.Time, owns OwnsFunc, fence FenceFunc) error {
	d.step.Lock()
	defer d.step.Unlock()
	d.mu.Lock()
	d.writeDirty(ctx, now)
	d.resetLocked()
	d.owns, d.fence = owns, fence
	d.mu.Unlock()
	d.m.ownerChanges.Inc()
	return d.ensureLoaded(ctx, now)
}

// Release gives up every alert group: it writes what it has not yet written
// and forgets its state, and until the next Own it owns nothing (Notify,
// Tick and Deliver do nothing). Call it after Run returned, when the
// generation that assigned the groups ends, so that the member the groups
// move to reads the complete state. Writes get a few seconds even when
// ctx has ended.
func (d *Dispatcher) Release(ctx context.Context, now time.Time) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	d.step.Lock()
	defer d.step.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writeDirty(wctx, now)
	for _, ms := range d.msgs {
		if ms.dirty {
			d.log.Warn("releasing alert groups with a delivery result not recorded; the next owner looks the message up in Slack",
				"message", ms.row.ID)
		}
	}
	d.resetLocked()
	d.owns, d.fence = func(string, string) bool { return false }, nil
	d.loaded = true // nothing to load: nothing is owned
	d.m.ownerChanges.Inc()
}

// resetLocked forgets the in-memory state; d.step and d.mu are held. The
// version counter is kept, so that versions keep growing.
func (d *Dispatcher) resetLocked() {
	d.loaded = false
	d.alerts = map[string]*alertState{}
	d.byFP = map[string]string{}
	d.groups = map[string]*group{}
	d.msgs = map[string]*msgState{}
	d.chanNext = map[string]time.Time{}
	d.digestDone = map[string]bool{}
	d.selfNext = time.Time{}
	d.lagSamples = nil
	d.m.groupsOwned.Set(0)
}

// RunOwning is Run for one share of the alert groups: it takes the groups
// owns accepts over (Own with fence, retried with backoff until it
// succeeds or ctx ends), calls ready, runs the timers and deliveries until ctx ends, and
// gives the groups up (Release) before it returns. A consumer-group member
// calls it once per generation with the generation's context.
func (d *Dispatcher) RunOwning(ctx context.Context, owns OwnsFunc, fence FenceFunc, ready func()) error {
	defer func() { d.Release(ctx, d.clock()) }()
	backoff := 200 * time.Millisecond
	for {
		err := d.Own(ctx, d.clock(), owns, fence)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		d.log.Warn("taking over alert groups: reading their state failed; retrying", "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	if ready != nil {
		ready()
	}
	return d.Run(ctx)
}
