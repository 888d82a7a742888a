package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// groupKey names the aggregation group of (channel, tenant, actor).
func groupKey(channel, tenant, actor string) string {
	return channel + "|" + tenant + "|" + actor
}

func (d *Dispatcher) addToGroup(channel string, a *alertState, now, flushAt time.Time) *group {
	k := groupKey(channel, a.row.Alert.Tenant, a.row.Alert.ActorID)
	g := d.groups[k]
	if g == nil {
		g = &group{key: k, channel: channel, tenant: a.row.Alert.Tenant, actor: a.row.Alert.ActorID,
			created: now, nextFlush: flushAt}
		d.groups[k] = g
	}
	if !contains(g.alertIDs, a.row.Alert.ID) {
		g.alertIDs = append(g.alertIDs, a.row.Alert.ID)
	}
	return g
}

// groupHash summarizes what a group message shows, so that an unchanged
// group is not re-sent.
func (d *Dispatcher) groupHash(g *group) string {
	var b strings.Builder
	for _, id := range g.alertIDs {
		a := d.alerts[id]
		if a == nil {
			continue
		}
		r := a.row
		// An open-window finding replaced by its window's own finding
		// (issue 12) changes what the message shows: it is updated once.
		fmt.Fprintf(&b, "%s %s %d %s %t %t;", id, r.Alert.Status, r.Alert.Severity, r.MutedBy, !r.EscalatedAt.IsZero(),
			r.Alert.Latest.OpenWindow)
	}
	return b.String()
}

func shortHash(s string) string {
	h := fnv.New64a()
	h.Write([]byte(s))
	return strconv.FormatUint(h.Sum64(), 36)
}

// flushDue evaluates every group whose timer is due at now.
func (d *Dispatcher) flushDue(ctx context.Context, now time.Time) error { //nolint:gocognit // the group timers (group_wait, group_interval, repeat_interval) decided in one loop, as Alertmanager's aggrGroup does
	p := newPlan()
	var notified []*group
	type upd struct {
		g          *group
		hash       string
		notify     bool
		drop       bool
		remindedAt time.Time
	}
	var ups []upd
	keys := make([]string, 0, len(d.groups))
	for k := range d.groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := d.groups[k]
		if now.Before(g.nextFlush) {
			continue
		}
		h := d.groupHash(g)
		firing, done := false, true
		for _, id := range g.alertIDs {
			a := d.alerts[id]
			if a == nil {
				continue
			}
			s := a.row.Alert.Status
			if !terminal(s) {
				done = false
			}
			if (s == models.StatusOpen || s == models.StatusEscalated) && a.row.MutedBy == "" {
				firing = true
			}
		}
		u := upd{g: g, hash: h}
		switch {
		case g.msgID == "" && done:
			u.drop = true // everything ended before anyone was told
		case g.msgID == "" && firing:
			u.notify = true
		case g.msgID == "":
			// only muted alerts so far: nothing to say yet
		case h != g.hash:
			u.notify, u.drop = true, done
		case firing && now.Sub(g.lastNotify) >= d.cfg.RepeatInterval:
			u.notify, u.remindedAt = true, now
		}
		if u.notify {
			if d.poster == nil {
				d.logGroup(g, now)
			} else {
				var m store.AlertMessage
				if ms := d.msgs[g.msgID]; ms != nil {
					m = ms.row
				} else {
					m = store.AlertMessage{ID: "g" + shortHash(g.key) + "-" + strconv.FormatInt(now.UnixNano(), 36),
						Kind: string(KindGroup), Channel: g.channel, GroupKey: g.key, Tenant: g.tenant, ActorID: g.actor,
						CreatedAt: now}
					g.msgID = m.ID
				}
				m.AlertIDs = append([]string(nil), g.alertIDs...)
				m.Rev++
				m.Closed = done
				if !u.remindedAt.IsZero() {
					b, _ := json.Marshal(messageBody{RemindedAt: u.remindedAt})
					m.Body = string(b)
				}
				p.putMsg(d, now, m)
				notified = append(notified, g)
			}
		}
		ups = append(ups, u)
	}
	p.after = append(p.after, func() {
		for _, u := range ups {
			g := u.g
			g.nextFlush = now.Add(d.cfg.GroupInterval)
			if u.notify {
				g.hash, g.lastNotify = u.hash, now
			}
			if u.drop {
				delete(d.groups, g.key)
			}
		}
	})
	if err := d.commit(ctx, p); err != nil {
		for _, g := range notified {
			if ms := d.msgs[g.msgID]; ms == nil {
				g.msgID = "" // the message row was not written: create it next time
			}
		}
		return fmt.Errorf("persisting group notifications: %w", err)
	}
	if len(notified) > 0 {
		d.poke()
	}
	return nil
}

// logGroup is the notification when Slack is off.
func (d *Dispatcher) logGroup(g *group, now time.Time) {
	for _, id := range g.alertIDs {
		a := d.alerts[id]
		if a == nil {
			continue
		}
		r := a.row.Alert
		d.log.Info("alert (Slack is off)", "alert", r.ID, "detector", r.Detector, "tenant", r.Tenant, "actor", r.ActorID,
			"severity", r.Severity, "status", r.Status, "muted_by", a.row.MutedBy, "findings", r.Findings,
			"summary", r.Latest.Summary, "channel", g.channel)
	}
}
