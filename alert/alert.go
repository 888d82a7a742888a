// Package alert turns findings into alerts and delivers them, modelled on
// Prometheus Alertmanager: a fingerprint per (detector, tenant, actor);
// aggregation groups per (channel, tenant, actor) with group_wait,
// group_interval and repeat_interval timers (a group holding a high or
// critical alert waits urgent_group_wait, default 0, before its first
// message, so a window detector's finding is not held 30 s); dedupe; inhibition (a critical
// alert on an actor mutes the lower ones on that actor); silences shared
// with detection through the suppressions register; routing by severity,
// detector, tenant and actor type; escalation of unacknowledged critical
// alerts; a weekly digest; and alerts about chatwarden itself.
//
// Persistence comes first: every alert, state change and message intent is
// written to ClickHouse before anything is sent, and a sender delivers what
// is unsent, so that a restart or a Slack outage loses nothing. A message is
// posted once and updated in place afterwards. Time is always an argument:
// Notify, Tick and Deliver take now, so a simulated clock drives the tests.
//
// The Slack specifics (Block Kit, slack-go, request signatures) live in
// alert/slack behind the Poster interface declared here.
package alert

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// MessageKind says what a Slack message is for.
type MessageKind string

// The message kinds.
const (
	KindGroup      MessageKind = "group"
	KindEscalation MessageKind = "escalation"
	KindDigest     MessageKind = "digest"
)

// AlertView is an alert as a message shows it.
type AlertView struct {
	models.Alert
	// MutedBy names the silence ("suppression id") or inhibiting alert
	// ("inhibited:<id>") that keeps the alert quiet; empty if none.
	MutedBy     string
	AckedAt     time.Time
	EscalatedAt time.Time
}

// Muted reports whether the alert is kept quiet.
func (v *AlertView) Muted() bool { return v.MutedBy != "" }

// Message is what one Slack message shows: an alert group, an escalation or
// a weekly digest. Poster implementations render it.
type Message struct {
	// ID identifies the message across retries and restarts; a rendering
	// carries it where a channel-history look-up can find it.
	ID   string
	Kind MessageKind
	// Rev is the content revision being delivered.
	Rev     uint32
	Tenant  string
	ActorID string
	// Alerts are the group's alerts, worst first; at most MaxListed are
	// listed and the rest counted.
	Alerts    []AlertView
	MaxListed int
	// EscalationChannel is where escalations go (shown in the original
	// message once an alert is escalated).
	EscalationChannel string
	// EscalateAfter is the acknowledgement deadline of critical alerts.
	EscalateAfter time.Duration
	// RemindedAt is set when the message was re-notified after
	// repeat_interval with alerts still firing.
	RemindedAt time.Time
	// InvestigateURL links to the investigate page for the actor and window.
	InvestigateURL string
	// Closed means every alert reached a final state; no buttons are shown.
	Closed bool
	// Digest is the weekly summary, for KindDigest.
	Digest *Digest
}

// Poster delivers messages. alert/slack implements it with slack-go.
type Poster interface {
	// Post posts m to channel and returns the channel id and ts of the new
	// message. An error is a *DeliveryError when the implementation can
	// tell whether the message certainly was not posted.
	Post(ctx context.Context, channel string, m *Message) (channelID, ts string, err error)
	// Update replaces the message at (channelID, ts) with m.
	Update(ctx context.Context, channelID, ts string, m *Message) error
	// Find looks in channel's history since the given time for a message
	// carrying messageID (posted by an attempt whose answer was lost). It
	// returns ts "" when there is none.
	Find(ctx context.Context, channel, messageID string, since time.Time) (channelID, ts string, err error)
}

// DeliveryError classifies a failed Slack call.
type DeliveryError struct {
	Err error
	// RetryAfter is the server-given wait (HTTP 429); zero if none.
	RetryAfter time.Duration
	// NotSent is true when the message certainly was not posted (the server
	// answered with an error), false when the outcome is unknown (timeout,
	// broken connection).
	NotSent bool
}

func (e *DeliveryError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("rate limited, retry after %s: %v", e.RetryAfter, e.Err)
	}
	return e.Err.Error()
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// classify returns the server-given wait and whether the call certainly had
// no effect.
func classify(err error) (retryAfter time.Duration, notSent bool) {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.RetryAfter, de.NotSent
	}
	return 0, false
}

// Digest is the weekly summary the report package supplies.
type Digest struct {
	// Title is the headline, e.g. "Weekly breach-risk summary".
	Title string `json:"title"`
	// Week is the Monday the summarized week starts.
	Week time.Time `json:"week"`
	// Sections are titled lists of lines (plain text; they are escaped).
	Sections []DigestSection `json:"sections"`
	// URL links to the full report.
	URL string `json:"url,omitempty"`
}

// DigestSection is one titled part of a digest.
type DigestSection struct {
	Title string   `json:"title"`
	Lines []string `json:"lines"`
}

// DigestFunc builds the digest of the week starting at week (a Monday 00:00
// in the configured time zone). The report package supplies it.
type DigestFunc func(ctx context.Context, week time.Time) (Digest, error)

// LagFunc returns the ingest consumer group's total lag in messages.
type LagFunc func(ctx context.Context) (int64, error)

// SourcesFunc returns the newest event time per data store over events at
// or after since (store.LastEventByStore).
type SourcesFunc func(ctx context.Context, since time.Time) (map[string]time.Time, error)

// UnownedShard is a detection shard that has had no owner for longer than
// Limit: its last owner reported at LastOwned (zero: never since this
// instance started watching, at Since).
type UnownedShard struct {
	Shard     int
	LastOwned time.Time
	Since     time.Time
	Limit     time.Duration
}

// UnownedFunc returns the detection shards that have had no owner for
// longer than their limit at now (none: every shard is owned).
type UnownedFunc func(ctx context.Context, now time.Time) ([]UnownedShard, error)

// ExposureFunc returns what an actor touched in [from, to]: distinct
// customers, records and data categories (store.ActorExposure). It fills the
// blast radius of an alert whose finding carries none.
type ExposureFunc func(ctx context.Context, tenant, actor string, from, to time.Time) (subjects, records uint64, categories []string, err error)

// Self-monitoring detector names.
const (
	DetectorSourceSilent      = "self_source_silent"
	DetectorConsumerLag       = "self_consumer_lag"
	DetectorSilenceEverything = "self_silence_everything"
	// DetectorMassSuppression: one person silenced or marked false positive
	// alerts on more than self.suppress_actors_per_day actors in 24 hours
	// (the alert's actor is "person:<user>").
	DetectorMassSuppression = "self_mass_suppression"
	// DetectorShardUnowned: a detection shard has had no owner (no serve
	// instance reported evaluating it) for longer than two windows (the
	// alert's actor is "detect-shard:<n>").
	DetectorShardUnowned = "self_shard_unowned"
	// SelfTenant is the tenant of chatwarden's alerts about itself.
	SelfTenant = "chatwarden"
)

func isSelf(detector string) bool {
	return detector == DetectorSourceSilent || detector == DetectorConsumerLag || detector == DetectorSilenceEverything ||
		detector == DetectorMassSuppression || detector == DetectorShardUnowned
}
