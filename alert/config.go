package alert

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// Config is the alerting section of the configuration file. The zero value
// plus a channel works; WithDefaults fills the rest.
type Config struct {
	// GroupWait is how long a new group waits for more alerts before its
	// first message (default 30s). Critical event-rule alerts skip it, and
	// groups holding an urgent alert wait UrgentGroupWait instead.
	GroupWait time.Duration `yaml:"group_wait"`
	// UrgentGroupWait replaces GroupWait for the first message of a group
	// that holds an alert at or above UrgentSeverity (default 0: notified at
	// once, so a window detector's high finding reaches Slack within a
	// detection cycle instead of 30 s later). Storms still collapse: later
	// alerts on the same actor join the group and update its one message
	// every GroupInterval. Set it equal to GroupWait to turn it off.
	UrgentGroupWait time.Duration `yaml:"urgent_group_wait"`
	// UrgentSeverity is the least severity that takes UrgentGroupWait
	// (default high).
	UrgentSeverity *models.Severity `yaml:"urgent_severity"`
	// GroupInterval is how long a group waits before updating its message
	// with changed alerts (default 5m).
	GroupInterval time.Duration `yaml:"group_interval"`
	// RepeatInterval is how long before a still-firing, unacknowledged group
	// is re-notified (its message updated and marked as a reminder) (default 4h).
	RepeatInterval time.Duration `yaml:"repeat_interval"`
	// ResolveTimeout resolves an alert that received no finding for this long
	// (default 1h).
	ResolveTimeout time.Duration `yaml:"resolve_timeout"`
	// EscalateAfter: a critical alert not acknowledged this long after it
	// opened is escalated (default 15m).
	EscalateAfter time.Duration `yaml:"escalate_after"`
	// EscalationChannel receives escalations (default: the default channel).
	EscalationChannel string `yaml:"escalation_channel"`
	// DefaultChannel receives alerts that no route matches. Channels are
	// Slack channel ids (C0123...), which message look-ups need.
	DefaultChannel string `yaml:"default_channel"`
	// Routes send alerts to channels; the first route that matches wins
	// unless it says continue.
	Routes []Route `yaml:"routes"`
	// EventRules names detectors whose critical alerts skip group_wait, in
	// addition to every finding whose evidence baseline_source is "rule".
	EventRules []string `yaml:"event_rules"`
	// InvestigateURL is the dashboards' base URL; messages link to
	// <base>/investigate?actor=...&tenant=...&from=...&to=...
	InvestigateURL string `yaml:"investigate_url"`
	// MaxListed bounds the alerts one group message lists (default 10); the
	// rest are summarized as a count.
	MaxListed int `yaml:"max_listed"`
	// FalsePositiveFor is how long a false-positive mark suppresses the
	// pattern (default 720h, 30 days; at most 8760h). A mark never lasts
	// for ever: the actor's detector comes back and is judged again.
	FalsePositiveFor time.Duration `yaml:"false_positive_for"`
	// SendEvery is how often the dispatcher evaluates timers and delivers
	// (default 250ms).
	SendEvery time.Duration `yaml:"send_every"`
	// Slack configures delivery; no token means Slack is off.
	Slack SlackConfig `yaml:"slack"`
	// Digest schedules the weekly summary.
	Digest DigestConfig `yaml:"digest"`
	// Self configures self-monitoring alerts.
	Self SelfConfig `yaml:"self"`
}

// Route matches alerts to a Slack channel. An empty matcher list matches
// anything.
type Route struct {
	Channel string `yaml:"channel"`
	// MinSeverity matches alerts at least this severe.
	MinSeverity *models.Severity   `yaml:"min_severity"`
	Severities  []models.Severity  `yaml:"severities"`
	Detectors   []string           `yaml:"detectors"`
	Tenants     []string           `yaml:"tenants"`
	ActorTypes  []models.ActorType `yaml:"actor_types"`
	// Continue goes on matching later routes after this one.
	Continue bool `yaml:"continue"`
}

// SlackConfig says how to reach Slack.
type SlackConfig struct {
	// Token is the bot token (xoxb-...); TokenFile reads it from a file.
	// With neither, Slack is off: alerts reach ClickHouse and the log only.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// SigningSecret verifies interactivity requests; SigningSecretFile reads
	// it from a file. Without it the interactivity endpoint rejects everything.
	SigningSecret     string `yaml:"signing_secret"`
	SigningSecretFile string `yaml:"signing_secret_file"`
	// APIURL overrides Slack's API base URL (tests point it at slacktest).
	APIURL string `yaml:"api_url"`
	// PerChannelInterval is the least time between two messages to one
	// channel (default 1s: Slack allows about one message per second).
	PerChannelInterval time.Duration `yaml:"per_channel_interval"`
	// Timeout bounds one Slack API call (default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// Users maps Slack user ids to chatwarden users (dashboards.users), whose
	// role decides what the buttons may do. A Slack user not listed here is
	// matched by the e-mail address Slack's users.info reports (scope
	// users:read.email) against dashboards.users[].email; guests never are.
	// Anybody else's clicks are refused.
	Users []SlackUser `yaml:"users"`
}

// SlackUser links one Slack user to a chatwarden user.
type SlackUser struct {
	// SlackID is the Slack user id (U0123...).
	SlackID string `yaml:"slack_id"`
	// User is the chatwarden user name (a dashboards.users entry).
	User string `yaml:"user"`
}

// DigestConfig schedules the weekly digest.
type DigestConfig struct {
	// Channel receives the digest; empty turns the digest off.
	Channel string `yaml:"channel"`
	// Weekday and At set the slot (default monday 09:00) in TZ (default UTC).
	Weekday string `yaml:"weekday"`
	At      string `yaml:"at"`
	TZ      string `yaml:"tz"`
}

// SelfConfig configures the alerts chatwarden raises about itself.
type SelfConfig struct {
	// CheckEvery is how often the checks run (default 1m).
	CheckEvery time.Duration `yaml:"check_every"`
	// SourceSilentAfter: a store with events in the last SourceLookback
	// whose newest event is older than this is silent (default 15m).
	SourceSilentAfter time.Duration `yaml:"source_silent_after"`
	// SourceLookback is how far back a store counts as a source (default 24h).
	SourceLookback time.Duration `yaml:"source_lookback"`
	// LagChecks consecutive growing samples of consumer lag, the last above
	// LagMin, raise an alert (defaults 5 and 10000).
	LagChecks int   `yaml:"lag_checks"`
	LagMin    int64 `yaml:"lag_min"`
	// SuppressActorsPerDay: one person who silences or marks false positive
	// alerts on more than this many distinct actors within 24 hours raises
	// a self-monitoring alert (default 5).
	SuppressActorsPerDay int `yaml:"suppress_actors_per_day"`
}

// MaxFalsePositiveFor is the longest false_positive_for accepted.
const MaxFalsePositiveFor = 365 * 24 * time.Hour

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.GroupWait, 30*time.Second)
	if c.UrgentSeverity == nil {
		high := models.SeverityHigh
		c.UrgentSeverity = &high
	}
	def(&c.GroupInterval, 5*time.Minute)
	def(&c.RepeatInterval, 4*time.Hour)
	def(&c.ResolveTimeout, time.Hour)
	def(&c.EscalateAfter, 15*time.Minute)
	def(&c.SendEvery, 250*time.Millisecond)
	def(&c.Slack.PerChannelInterval, time.Second)
	def(&c.Slack.Timeout, 10*time.Second)
	def(&c.Self.CheckEvery, time.Minute)
	def(&c.Self.SourceSilentAfter, 15*time.Minute)
	def(&c.Self.SourceLookback, 24*time.Hour)
	def(&c.FalsePositiveFor, 30*24*time.Hour)
	if c.Self.SuppressActorsPerDay <= 0 {
		c.Self.SuppressActorsPerDay = 5
	}
	if c.EscalationChannel == "" {
		c.EscalationChannel = c.DefaultChannel
	}
	if c.MaxListed <= 0 {
		c.MaxListed = 10
	}
	if c.Self.LagChecks <= 0 {
		c.Self.LagChecks = 5
	}
	if c.Self.LagMin <= 0 {
		c.Self.LagMin = 10000
	}
	if c.Digest.Weekday == "" {
		c.Digest.Weekday = "monday"
	}
	if c.Digest.At == "" {
		c.Digest.At = "09:00"
	}
	if c.Digest.TZ == "" {
		c.Digest.TZ = "UTC"
	}
	return c
}

// Validate names the first bad field of every section it finds wrong.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("alert.%s: "+format, append([]any{field}, args...)...))
	}
	for name, d := range map[string]time.Duration{
		"group_wait": c.GroupWait, "urgent_group_wait": c.UrgentGroupWait, "group_interval": c.GroupInterval, "repeat_interval": c.RepeatInterval,
		"resolve_timeout": c.ResolveTimeout, "escalate_after": c.EscalateAfter, "send_every": c.SendEvery,
		"slack.per_channel_interval": c.Slack.PerChannelInterval, "slack.timeout": c.Slack.Timeout,
		"self.check_every": c.Self.CheckEvery, "self.source_silent_after": c.Self.SourceSilentAfter,
		"self.source_lookback": c.Self.SourceLookback, "false_positive_for": c.FalsePositiveFor,
	} {
		if d < 0 {
			bad(name, "%s is negative", d)
		}
	}
	seen := map[string]bool{}
	for i, u := range c.Slack.Users {
		switch {
		case u.SlackID == "" || strings.ContainsAny(u.SlackID, " \t\n"):
			bad(fmt.Sprintf("slack.users[%d].slack_id", i), "%q must be a Slack user id (U0123...)", u.SlackID)
		case seen[u.SlackID]:
			bad(fmt.Sprintf("slack.users[%d].slack_id", i), "%q appears twice", u.SlackID)
		}
		seen[u.SlackID] = true
		if u.User == "" {
			bad(fmt.Sprintf("slack.users[%d].user", i), "required: the chatwarden user (dashboards.users[].name)")
		}
	}
	if c.FalsePositiveFor > MaxFalsePositiveFor {
		bad("false_positive_for", "%s is longer than %s: a false-positive mark must expire", c.FalsePositiveFor, MaxFalsePositiveFor)
	}
	if c.Self.SuppressActorsPerDay < 0 {
		bad("self.suppress_actors_per_day", "%d is negative", c.Self.SuppressActorsPerDay)
	}
	if c.UrgentGroupWait > c.GroupWait {
		bad("urgent_group_wait", "%s is longer than group_wait %s", c.UrgentGroupWait, c.GroupWait)
	}
	if c.RepeatInterval < c.GroupInterval {
		bad("repeat_interval", "%s is shorter than group_interval %s", c.RepeatInterval, c.GroupInterval)
	}
	if c.Slack.Token != "" && c.Slack.TokenFile != "" {
		bad("slack.token", "set token or token_file, not both")
	}
	if c.Slack.SigningSecret != "" && c.Slack.SigningSecretFile != "" {
		bad("slack.signing_secret", "set signing_secret or signing_secret_file, not both")
	}
	if c.Slack.APIURL != "" {
		if u, err := url.Parse(c.Slack.APIURL); err != nil || u.Scheme == "" || u.Host == "" {
			bad("slack.api_url", "%q is not an absolute URL", c.Slack.APIURL)
		}
	}
	if c.InvestigateURL != "" {
		if u, err := url.Parse(c.InvestigateURL); err != nil || u.Scheme == "" || u.Host == "" {
			bad("investigate_url", "%q is not an absolute URL", c.InvestigateURL)
		}
	}
	slackOn := c.Slack.Token != "" || c.Slack.TokenFile != ""
	if slackOn && c.DefaultChannel == "" {
		bad("default_channel", "is required when Slack is configured")
	}
	for i, r := range c.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		if r.Channel == "" {
			bad(f+".channel", "is required")
		}
		if r.MinSeverity != nil && len(r.Severities) > 0 {
			bad(f+".min_severity", "set min_severity or severities, not both")
		}
		for _, t := range r.ActorTypes {
			if !validActorType(t) {
				bad(f+".actor_types", "%q is not an actor type", t)
			}
		}
		for _, d := range r.Detectors {
			if strings.TrimSpace(d) == "" {
				bad(f+".detectors", "holds an empty name")
			}
		}
	}
	if _, err := parseWeekday(c.Digest.Weekday); err != nil {
		bad("digest.weekday", "%v", err)
	}
	if _, err := time.Parse("15:04", c.Digest.At); err != nil {
		bad("digest.at", "%q is not HH:MM", c.Digest.At)
	}
	if _, err := time.LoadLocation(c.Digest.TZ); err != nil {
		bad("digest.tz", "%v", err)
	}
	return errors.Join(errs...)
}

func validActorType(t models.ActorType) bool {
	switch t {
	case models.ActorHuman, models.ActorBot, models.ActorService, models.ActorVendor, models.ActorAdmin:
		return true
	}
	return false
}

func parseWeekday(s string) (time.Weekday, error) {
	for d := time.Sunday; d <= time.Saturday; d++ {
		if strings.EqualFold(d.String(), s) || strings.EqualFold(d.String()[:3], s) {
			return d, nil
		}
	}
	return 0, fmt.Errorf("%q is not a weekday", s)
}

// SlackOn reports whether a Slack token is configured.
func (c Config) SlackOn() bool { return c.Slack.Token != "" || c.Slack.TokenFile != "" }

// match reports whether r matches a.
func (r Route) match(a *models.Alert) bool {
	if r.MinSeverity != nil && a.Severity < *r.MinSeverity {
		return false
	}
	if len(r.Severities) > 0 && !contains(r.Severities, a.Severity) {
		return false
	}
	if len(r.Detectors) > 0 && !contains(r.Detectors, a.Detector) {
		return false
	}
	if len(r.Tenants) > 0 && !contains(r.Tenants, a.Tenant) {
		return false
	}
	if len(r.ActorTypes) > 0 && !contains(r.ActorTypes, a.ActorType) {
		return false
	}
	return true
}

func contains[T comparable](xs []T, x T) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// channels returns the channels a routes to (at least the default one).
func (c Config) channels(a *models.Alert) []string {
	var out []string
	for _, r := range c.Routes {
		if !r.match(a) {
			continue
		}
		if !contains(out, r.Channel) {
			out = append(out, r.Channel)
		}
		if !r.Continue {
			return out
		}
	}
	if len(out) == 0 {
		out = append(out, c.DefaultChannel)
	}
	return out
}
