package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
	_ "time/tzdata" // digest.tz works on hosts without a zoneinfo database

	"github.com/chatwarden/chatwarden/store"
)

// digestLate is how late a missed digest slot is still posted (after a
// restart or outage); later than that, the week's digest is skipped.
const digestLate = 24 * time.Hour

// DigestSlot returns the latest scheduled digest time at or before now: the
// configured weekday and time of day in the configured time zone.
func (d *Dispatcher) DigestSlot(now time.Time) time.Time {
	t := now.In(d.loc)
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, d.loc)
	for i := 0; i < 8; i++ {
		slot := day.Add(d.digestAt)
		if day.Weekday() == d.digestWD && !slot.After(t) {
			return slot
		}
		day = day.AddDate(0, 0, -1)
	}
	return time.Time{} // unreachable: a week has every weekday
}

// digestWeek returns the Monday 00:00 that starts the week before slot: the
// week the digest summarizes.
func (d *Dispatcher) digestWeek(slot time.Time) time.Time {
	day := time.Date(slot.Year(), slot.Month(), slot.Day(), 0, 0, 0, 0, d.loc).AddDate(0, 0, -7)
	for day.Weekday() != time.Monday {
		day = day.AddDate(0, 0, -1)
	}
	return day
}

// scheduleDigest posts the digest of the current slot once: the message id
// is derived from the slot and persisted, so a restart does not post again.
func (d *Dispatcher) scheduleDigest(ctx context.Context, now time.Time) error {
	if d.cfg.Digest.Channel == "" || d.digestFn == nil {
		return nil
	}
	slot := d.DigestSlot(now)
	if slot.IsZero() || now.Sub(slot) > digestLate {
		return nil
	}
	id := "digest-" + slot.Format("2006-01-02")
	d.mu.Lock()
	done := d.digestDone[id] || !d.ownsSelfLocked() // one dispatcher of a group of them posts it
	d.mu.Unlock()
	if done {
		return nil
	}
	rows, err := d.st.AlertMessagesByID(ctx, []string{id})
	if err != nil {
		d.m.storeErrors.Inc()
		return fmt.Errorf("looking up digest %s: %w", id, err)
	}
	if len(rows) > 0 {
		d.mu.Lock()
		d.digestDone[id] = true
		d.mu.Unlock()
		return nil
	}
	week := d.digestWeek(slot)
	dg, err := d.digestFn(ctx, week)
	if err != nil {
		// Retried on the next tick; report failures are rare and cheap to retry.
		return fmt.Errorf("building digest of week %s: %w", week.Format("2006-01-02"), err)
	}
	if dg.Week.IsZero() {
		dg.Week = week
	}
	d.step.Lock()
	defer d.step.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.digestDone[id] {
		return nil
	}
	if d.poster == nil {
		d.log.Info("weekly digest (Slack is off)", "week", week.Format("2006-01-02"), "title", dg.Title, "sections", len(dg.Sections))
		d.digestDone[id] = true
		return nil
	}
	body, err := json.Marshal(messageBody{Digest: &dg})
	if err != nil {
		return fmt.Errorf("encoding digest: %w", err)
	}
	p := newPlan()
	p.putMsg(d, now, store.AlertMessage{ID: id, Kind: string(KindDigest), Channel: d.cfg.Digest.Channel,
		GroupKey: "digest", Rev: 1, Closed: true, CreatedAt: now, Body: string(body)})
	if err := d.commit(ctx, p); err != nil {
		return fmt.Errorf("persisting digest %s: %w", id, err)
	}
	d.digestDone[id] = true
	d.m.digests.Inc()
	d.poke()
	return nil
}
