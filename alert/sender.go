package alert

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/chatwarden/chatwarden/store"
)

// lookupMargin widens the channel-history look-up before a post's intent
// time, for clock skew between us and Slack.
const lookupMargin = 2 * time.Minute

// Deliver sends, for every channel whose rate limit allows it at now, the
// oldest message with a revision Slack does not show yet: a first post
// (after recording the intent, and after looking for an earlier post whose
// answer was lost) or an update of the posted message. It returns how many
// messages it delivered; failures are retried by later calls with backoff,
// honouring Slack's Retry-After.
func (d *Dispatcher) Deliver(ctx context.Context, now time.Time) (int, error) {
	if d.poster == nil {
		return 0, nil
	}
	if err := d.loadOnce(ctx, now); err != nil {
		return 0, err
	}
	d.mu.Lock()
	var due []*msgState
	for _, ms := range d.msgs {
		if ms.row.Rev > ms.row.SentRev && !ms.inflight && !now.Before(ms.nextTry) {
			due = append(due, ms)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		a, b := due[i].row, due[j].row
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	})
	var pick []*msgState
	taken := map[string]bool{}
	for _, ms := range due {
		ch := ms.row.Channel
		if taken[ch] || now.Before(d.chanNext[ch]) {
			continue
		}
		taken[ch] = true
		ms.inflight = true
		pick = append(pick, ms)
	}
	d.mu.Unlock()
	sent := 0
	var errs []error
	for _, ms := range pick {
		if err := d.deliverOne(ctx, now, ms); err != nil {
			errs = append(errs, fmt.Errorf("delivering message %s: %w", ms.row.ID, err))
			continue
		}
		sent++
	}
	return sent, errors.Join(errs...)
}

// deliverOne sends one message. It renders under d.mu, calls Slack with no
// lock held, and takes d.step (then d.mu) for the bookkeeping that changes
// the message's row, releasing d.mu while that row is written.
func (d *Dispatcher) deliverOne(ctx context.Context, now time.Time, ms *msgState) error {
	d.mu.Lock()
	ch := ms.row.Channel
	msg := d.render(ms)
	rev := ms.row.Rev
	ts, posted := ms.row.TS, ms.row.PostedChannel
	needIntent := ts == "" && ms.row.IntentAt.IsZero()
	d.mu.Unlock()
	if needIntent {
		// Record the intent before the first post, so that after a crash we
		// know to look for the message before posting again.
		if err := d.recordIntent(ctx, now, ms); err != nil {
			return fmt.Errorf("recording intent to post: %w", err)
		}
	}
	d.mu.Lock()
	intent, uncertain := ms.row.IntentAt, ms.uncertain
	d.mu.Unlock()

	cctx, cancel := context.WithTimeout(ctx, d.cfg.Slack.Timeout)
	defer cancel()
	if ts == "" && uncertain {
		c, t, err := d.poster.Find(cctx, ch, msg.ID, intent.Add(-lookupMargin))
		if err != nil {
			d.m.sendErrors.WithLabelValues("find").Inc()
			d.fail(now, ms, "find", err, false, "", "")
			return fmt.Errorf("looking up an earlier post: %w", err)
		}
		d.m.messages.WithLabelValues("find").Inc()
		if t != "" {
			d.m.lookups.WithLabelValues("found").Inc()
			ts, posted = t, c
		} else {
			d.m.lookups.WithLabelValues("absent").Inc()
		}
	}
	op := "update"
	if ts == "" {
		op = "post"
		d.mu.Lock()
		fence := d.fence
		d.mu.Unlock()
		if fence != nil {
			// A member whose share moved on (paused past the session
			// timeout) must not post what the new owner posts.
			if err := fence(cctx); err != nil {
				d.fail(now, ms, "fence", err, false, "", "")
				return fmt.Errorf("checking that the alert group is still ours: %w", err)
			}
		}
		c, t, err := d.poster.Post(cctx, ch, msg)
		if err != nil {
			d.fail(now, ms, op, err, true, "", "")
			return fmt.Errorf("posting: %w", err)
		}
		ts, posted = t, c
	} else if err := d.poster.Update(cctx, posted, ts, msg); err != nil {
		d.fail(now, ms, op, err, false, ts, posted) // keep a found ts
		return fmt.Errorf("updating: %w", err)
	}
	d.m.messages.WithLabelValues(op).Inc()

	d.step.Lock()
	defer d.step.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if op == "post" && ms.row.Kind == string(KindGroup) && !ms.firstQueue.IsZero() {
		d.m.notifyLatency.Observe(now.Sub(ms.firstQueue).Seconds())
	}
	ms.inflight, ms.uncertain, ms.attempts, ms.nextTry = false, false, 0, time.Time{}
	ms.row.TS, ms.row.PostedChannel, ms.row.SentRev = ts, posted, max(ms.row.SentRev, rev)
	d.chanNext[ch] = now.Add(d.cfg.Slack.PerChannelInterval)
	ms.row.Version, ms.row.UpdatedAt = d.nextVersion(now), now
	row := ms.row
	d.mu.Unlock()
	err := d.st.PutAlertMessages(ctx, []store.AlertMessage{row})
	d.mu.Lock()
	if err != nil {
		// Slack shows it; the ts is kept in memory and written by a later Tick.
		ms.dirty = true
		d.m.storeErrors.Inc()
		d.log.Warn("recording a delivered message; will retry", "message", ms.row.ID, "err", err)
	}
	d.m.unsent.Set(float64(d.unsentLocked()))
	d.forgetDone()
	return nil
}

// recordIntent writes that ms is about to be posted for the first time.
func (d *Dispatcher) recordIntent(ctx context.Context, now time.Time, ms *msgState) error {
	d.step.Lock()
	defer d.step.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	ms.row.IntentAt = now
	ms.row.Version, ms.row.UpdatedAt = d.nextVersion(now), now
	row := ms.row
	d.mu.Unlock()
	err := d.st.PutAlertMessages(ctx, []store.AlertMessage{row})
	d.mu.Lock()
	if err != nil {
		ms.row.IntentAt = time.Time{}
		d.m.storeErrors.Inc()
		d.failLocked(now, ms, "intent", err, false)
		return err
	}
	return nil
}

// fail records a failed Slack call (see failLocked); a non-empty ts is a
// post found before the call and is kept.
func (d *Dispatcher) fail(now time.Time, ms *msgState, op string, err error, posting bool, ts, posted string) {
	d.step.Lock()
	defer d.step.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if ts != "" {
		ms.row.TS, ms.row.PostedChannel = ts, posted
	}
	d.failLocked(now, ms, op, err, posting)
}

// failLocked records a failed Slack call: it backs off (honouring a
// server-given wait for the channel) and remembers whether a post might have
// gone through.
func (d *Dispatcher) failLocked(now time.Time, ms *msgState, op string, err error, posting bool) {
	ms.inflight = false
	ms.attempts++
	retryAfter, notSent := classify(err)
	if posting && !notSent {
		ms.uncertain = true
	}
	d.m.sendErrors.WithLabelValues(op).Inc()
	wait := backoff(ms.attempts)
	if retryAfter > 0 {
		d.m.rateLimited.Inc()
		wait = retryAfter
		if next := now.Add(retryAfter); next.After(d.chanNext[ms.row.Channel]) {
			d.chanNext[ms.row.Channel] = next
		}
	}
	ms.nextTry = now.Add(wait)
	d.log.Warn("slack call failed; will retry", "op", op, "message", ms.row.ID, "channel", ms.row.Channel,
		"attempt", ms.attempts, "retry_in", wait, "err", err)
}

// backoff is 1s, 2s, 4s ... capped at 60s.
func backoff(attempt int) time.Duration {
	if attempt > 6 {
		return time.Minute
	}
	return min(time.Second<<max(attempt-1, 0), time.Minute)
}
