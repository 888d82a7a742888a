package detect

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// Config is the detection section of the configuration file. The zero value
// takes the defaults (WithDefaults); Validate names the first bad field of
// every problem.
type Config struct {
	// Window is the length of a detection window (default 60s): from 10s
	// to 1h, a whole number of seconds dividing an hour. Windows of whole
	// minutes read the per-minute aggregates; shorter ones raw events.
	Window time.Duration `yaml:"window"`
	// Clock says what closes a window in serve: "wall" (default) the wall
	// clock (held back by ingest's watermark while it lags); "events" the
	// latest event time ingest has stored less AllowedLateness, for a
	// simulation streamed faster than real time (the demo). On the events
	// clock detection waits while no events arrive.
	Clock string `yaml:"clock"`
	// Shard and Shards: this instance owns the actors whose
	// cityHash64(actor_id) % Shards == Shard (default 0 of 1); on a
	// ClickHouse cluster cityHash64(tenant, actor_id), the storage
	// sharding key, and with Shards a multiple of the storage shards each
	// shard's queries read one storage shard's local tables
	// (docs/scaling.md, "Shard-local detection").
	Shard  int `yaml:"shard"`
	Shards int `yaml:"shards"`
	// Ownership says how serve instances share the shards: "static"
	// (default) this instance evaluates Shard only; "group" the shards
	// are owned through a Kafka consumer group (ShardGroup) over a control
	// topic with one partition per shard (ShardTopic, created with
	// Shards partitions), so that the shards of an instance that dies move
	// to a survivor within ShardSessionTimeout, which restores their
	// checkpoint and evaluates the windows they missed. One serve alone
	// owns every shard. Shard must be unset with "group".
	Ownership string `yaml:"ownership"`
	// ShardTopic is the control topic (default chatwarden.detect-shards.v1).
	ShardTopic string `yaml:"shard_topic"`
	// ShardGroup is the consumer group (default chatwarden-detect).
	ShardGroup string `yaml:"shard_group"`
	// ShardSessionTimeout is how long the group waits for a silent
	// instance before moving its shards (default 10s; 6s to 5m, within the
	// broker's group.min/max.session.timeout.ms).
	ShardSessionTimeout time.Duration `yaml:"shard_session_timeout"`
	// BackfillDays is how much actor_minute history rebuilds the baselines
	// at start-up when no checkpoint is newer (default 28).
	BackfillDays int `yaml:"backfill_days"`
	// CheckpointEvery is how often baselines are checkpointed (default 1h).
	CheckpointEvery time.Duration `yaml:"checkpoint_every"`
	// AllowedLateness is how far behind ingest's low watermark (the event
	// time every partition with messages still to read has stored) a
	// window's end must stay before serve evaluates it (default 5s; 0 to
	// 1h). With consumer lag, windows wait for their events instead of
	// being evaluated empty on the wall clock.
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// ReopenWindows is how many windows back, behind the last one
	// evaluated, an event stored late (later than AllowedLateness behind
	// the watermark: a producer's outage buffer, a backlog read after a
	// restart) re-opens its window: the window is evaluated again for the
	// late events' actors, detect-only (default 60, at most 1440; -1: late
	// events are only counted). Older late events are counted in
	// chatwarden_detect_late_events_unreopened_total.
	ReopenWindows int `yaml:"reopen_windows"`
	// ReopenPerCycle bounds the re-opened windows evaluated per detection
	// cycle, oldest first; the rest wait for the next cycle (default 10;
	// 1 to 1000).
	ReopenPerCycle int `yaml:"reopen_per_cycle"`
	// StreamEvery is how often serve judges the open window (stream.go):
	// the records and distinct customers each actor has stored in the
	// window so far are judged against the same bars as volume_spike's
	// and enumeration's window checks, and a finding is raised before the
	// window closes (default 1s; 100ms to the window; negative: off, the
	// window detectors alone).
	StreamEvery time.Duration `yaml:"stream_every"`
	// StreamMaxActors bounds the (actor, open window) counts kept for
	// streaming; the events of further actors are counted in
	// chatwarden_detect_stream_dropped_events_total and left to the window
	// detectors (default 100000; 1 to 10000000).
	StreamMaxActors int `yaml:"stream_max_actors"`
	// StreamMaxSubjects bounds the distinct customers counted exactly per
	// actor and open window: beyond it the count stays at the bound
	// (default 4096; 1 to 1000000).
	StreamMaxSubjects int `yaml:"stream_max_subjects"`
	// RiskHalfLife is the half-life of a finding in the actor risk score
	// (default 72h).
	RiskHalfLife time.Duration `yaml:"risk_half_life"`
	// EvictIdleAfter forgets the baseline of an actor without an active
	// window for this long (default 2160h, the default event retention:
	// back-fill could not rebuild it either), at the hourly pass, so that
	// the state does not grow with every actor ever seen. An evicted actor
	// that comes back starts over: judged against its peers while warming
	// up. At least twice detectors.dormant_days, so that the dormant
	// detector still sees long sleepers.
	EvictIdleAfter time.Duration `yaml:"evict_idle_after"`
	// TimeZones maps actor ids or roles to IANA time zones for the
	// off-hours profile (actor wins over role; default UTC).
	TimeZones TimeZones `yaml:"time_zones"`
	// Rules configures the event rules.
	Rules RulesConfig `yaml:"rules"`
	// Detectors configures the window detectors.
	Detectors DetectorsConfig `yaml:"detectors"`
	// Destinations configures third-party sharing detection: the
	// destination allow-list and the destination detectors.
	Destinations DestinationsConfig `yaml:"destinations"`
	// Conversations configures conversation_shape, the model of each bot's
	// conversations (conversation_shape.go).
	Conversations ConversationsConfig `yaml:"conversations"`
	// Severities overrides a detector's severity by name (e.g.
	// off_hours: low).
	Severities map[string]models.Severity `yaml:"severities"`
	// Disabled lists detectors and rules that do not run.
	Disabled []string `yaml:"disabled"`
}

// TimeZones names the time zone of actors and roles.
type TimeZones struct {
	Actors map[string]string `yaml:"actors"`
	Roles  map[string]string `yaml:"roles"`
}

// RulesConfig configures the event rules.
type RulesConfig struct {
	// BulkRecords: a single read or export of more records than this is a
	// finding (default 1000). On a sanctioned flow (an export or share to
	// an allow-listed destination the actor sent the same store and
	// categories to, within this limit, on detectors.warmup_days days) the
	// bar is this plus the flow's largest such call.
	BulkRecords uint64 `yaml:"bulk_records"`
	// BulkRecordsByType overrides BulkRecords per actor type (default
	// service: 200000 — batch jobs list thousands of records by design).
	BulkRecordsByType map[string]uint64 `yaml:"bulk_records_by_type"`
	// ConversationSubjects: more distinct customers than this read within one
	// conversation is a finding (default 3).
	ConversationSubjects int `yaml:"conversation_subjects"`
	// ConversationIdle forgets a conversation after this long without
	// events (default 2h).
	ConversationIdle time.Duration `yaml:"conversation_idle"`
	// Purposes maps a declared purpose to the data categories it allows;
	// "*" allows every category. Purposes not listed are not checked
	// (default: none; a policy is the deployment's own).
	Purposes map[string][]string `yaml:"purposes,omitempty"`
	// ConsentGated lists the purposes that need the customer's consent
	// (access after a withdrawal is a finding; default marketing,
	// analytics, training: the purposes that rest on consent under GDPR).
	ConsentGated []string `yaml:"consent_gated,omitempty"`
	// Vendors are the vendor contracts, by vendor name (default: none).
	Vendors map[string]VendorContract `yaml:"vendors,omitempty"`
	// UnknownVendor reports a vendor with no contract in Vendors, at most
	// once a week per vendor, as a low-severity vendor_no_contract finding
	// (default true). Its accesses are judged by the window detectors.
	UnknownVendor *bool `yaml:"unknown_vendor,omitempty"`
}

// VendorContract is what a vendor may touch, and when.
type VendorContract struct {
	Stores     []string `yaml:"stores,omitempty"`
	Categories []string `yaml:"categories,omitempty"`
	// Hours is "HH:MM-HH:MM" in TimeZone (end exclusive; may wrap midnight).
	Hours string `yaml:"hours,omitempty"`
	// Days are the weekdays allowed: mon tue wed thu fri sat sun.
	Days     []string `yaml:"days,omitempty"`
	TimeZone string   `yaml:"time_zone,omitempty"`
	// Country is informational (the contracted location).
	Country string `yaml:"country,omitempty"`
}

// DetectorsConfig holds the thresholds of the window detectors.
type DetectorsConfig struct {
	// WarmupDays: an actor with fewer active days is judged against its
	// peer group (default 3).
	WarmupDays int `yaml:"warmup_days"`
	// WarmupWindows: and at least this many active windows (default: an
	// hour of windows, at least 12 and at most 60: 60 at 60s, 12 at 5m
	// and longer).
	WarmupWindows int `yaml:"warmup_windows"`

	// Volume spike on records per window and per rolling VolumeSpan
	// windows; also above VolumeMaxFactor times the actor's (slowly
	// decaying) largest value seen, so heavy-tailed actors are judged by
	// their own tail.
	VolumeSpan      int     `yaml:"volume_span"`       // windows, default 15 minutes of windows (2 to 32: 15 at 60s)
	VolumeSpanRatio float64 `yaml:"volume_span_ratio"` // rolling observed / median, default 4
	VolumeMaxFactor float64 `yaml:"volume_max_factor"` // default 1.5
	// VolumeMaxFactorByType overrides VolumeMaxFactor per actor type
	// (default service: 4 — batch jobs legitimately run 3x at month end).
	VolumeMaxFactorByType map[string]float64 `yaml:"volume_max_factor_by_type"`
	VolumeZ               float64            `yaml:"volume_z"`         // robust z (default 8)
	VolumeRatio           float64            `yaml:"volume_ratio"`     // observed / expected (default 6)
	VolumeMin             float64            `yaml:"volume_min"`       // minimum excess records (default 200)
	VolumeTailProb        float64            `yaml:"volume_tail_prob"` // NB tail probability (default 1e-6)

	// Enumeration: distinct customers per window and per day.
	EnumWindowZ     float64 `yaml:"enum_window_z"`     // default 8
	EnumWindowRatio float64 `yaml:"enum_window_ratio"` // default 6
	EnumWindowMin   float64 `yaml:"enum_window_min"`   // minimum distinct customers (default 25)
	EnumDayRatio    float64 `yaml:"enum_day_ratio"`    // day so far vs a busy day (default 3)
	EnumDayMin      float64 `yaml:"enum_day_min"`      // default 100
	EnumHourRatio   float64 `yaml:"enum_hour_ratio"`   // last hour vs a busy hour (default 3)
	// EnumEvery is how often the hour and day counts are checked: whole
	// minutes, a whole number of windows, dividing an hour (default: the
	// first such value from 10m on: 10m for windows up to 10m, else the
	// window).
	EnumEvery   time.Duration `yaml:"enum_every"`
	EnumHourMin float64       `yaml:"enum_hour_min"` // default 25
	// EnumTailProb: an hour whose distinct customers are this improbable
	// under the negative binomial of the actor's own hours (median, MAD)
	// needs only EnumHourTailRatio times its busy hour (defaults 1e-6, 2).
	EnumTailProb      float64 `yaml:"enum_tail_prob"`
	EnumHourTailRatio float64 `yaml:"enum_hour_tail_ratio"`
	// EnumRatioFactorByType multiplies the day and hour ratios per actor
	// type (default service: 1.7 — batch jobs grow at month end).
	EnumRatioFactorByType map[string]float64 `yaml:"enum_ratio_factor_by_type"`

	// Off-hours: a session that starts at least OffHoursGap hours away
	// from every usual hour of the actor's day (an hour holding at least
	// OffHoursShare of its activity, in its time zone), once the actor has
	// OffHoursMinDays active days; fires at the session's
	// OffHoursMinWindows-th active window.
	OffHoursShare      float64 `yaml:"off_hours_share"`       // default 0.01
	OffHoursGap        int     `yaml:"off_hours_gap"`         // hours, default 3
	OffHoursMinDays    int     `yaml:"off_hours_min_days"`    // default 4
	OffHoursMinWindows int     `yaml:"off_hours_min_windows"` // default 1

	// FirstSeen: a store, resource type or category new to the actor (or
	// rare among its peers while it warms up). Weight of a sensitive
	// category vs an ordinary item; fires at FirstSeenScore.
	FirstSeenSensitiveWeight float64 `yaml:"first_seen_sensitive_weight"` // default 3
	FirstSeenScore           float64 `yaml:"first_seen_score"`            // default 3
	FirstSeenPeerRare        float64 `yaml:"first_seen_peer_rare"`        // share of peers (default 0.1)

	// Travel: impossible speed between countries, km/h (default 1000).
	TravelKMH float64 `yaml:"travel_kmh"`
	// NewCountry flags a country new to a warm actor and to its peers
	// (default true).
	NewCountry *bool `yaml:"new_country"`

	// Denied burst: denied accesses per window, and per rolling
	// VolumeSpan windows.
	DeniedMin      float64 `yaml:"denied_min"`       // default 10
	DeniedTailProb float64 `yaml:"denied_tail_prob"` // Poisson tail (default 1e-6)

	// Dormant: idle at least DormantDays, then activity DormantRatio above
	// its old level (or touching something new).
	DormantDays  float64 `yaml:"dormant_days"`  // default 10
	DormantRatio float64 `yaml:"dormant_ratio"` // default 3
	// DormantWatch is how long after waking the actor stays watched
	// (default 3h).
	DormantWatch time.Duration `yaml:"dormant_watch"`
	// DormantMinWindows: the finding fires at the first active window
	// from this one on after waking that touches customer data (default 1).
	DormantMinWindows int `yaml:"dormant_min_windows"`

	// Peer group deviation: robust z of the actor's window against its
	// role's peers active in the same window.
	PeerZ        float64 `yaml:"peer_z"`         // default 10
	PeerRatio    float64 `yaml:"peer_ratio"`     // default 8
	PeerMinPeers int     `yaml:"peer_min_peers"` // default 4

	// Drift: daily records creeping up; fires when the last DriftDays days
	// each (mostly) grew, the Theil-Sen slope is positive, the last day is
	// DriftRatio times the days before the run, and the trend is significant.
	DriftDays  int     `yaml:"drift_days"`  // default 5
	DriftRatio float64 `yaml:"drift_ratio"` // default 1.8

	// Mahalanobis: chi-square tail probability of the squared distance.
	MahalanobisProb float64 `yaml:"mahalanobis_prob"` // default 1e-12
	// MahalanobisSamples is the reservoir of deviation vectors behind the
	// covariance (default 4000).
	MahalanobisSamples int `yaml:"mahalanobis_samples"`

	// Seasonal count series (seasonal_count): an actor active in at least
	// SeriesCoverage of its windows is judged against a seasonal-naive
	// decomposition of its own count series (docs/detectors.md). It runs
	// when the window is at least SeriesMinWindow (default 5m; shorter
	// windows would make SeriesWeeks of history too large to keep).
	SeriesMinWindow time.Duration `yaml:"series_min_window"`
	SeriesCoverage  float64       `yaml:"series_coverage"`   // default 0.9
	SeriesWeeks     int           `yaml:"series_weeks"`      // history kept, default 4 (2..8)
	SeriesSpans     []int         `yaml:"series_spans"`      // windows summed (default 1 6 24)
	SeriesTailProb  float64       `yaml:"series_tail_prob"`  // default 1e-6
	SeriesMinChange float64       `yaml:"series_min_change"` // |observed-expected|/expected, default 0.2
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	def := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	defInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	if c.EvictIdleAfter == 0 {
		c.EvictIdleAfter = 90 * 24 * time.Hour
	}
	if c.Window == 0 {
		c.Window = time.Minute
	}
	if c.Shards == 0 {
		c.Shards = 1
	}
	if c.Clock == "" {
		c.Clock = ClockWall
	}
	if c.Ownership == "" {
		c.Ownership = OwnershipStatic
	}
	if c.ShardTopic == "" {
		c.ShardTopic = DefaultShardTopic
	}
	if c.ShardGroup == "" {
		c.ShardGroup = DefaultShardGroup
	}
	if c.ShardSessionTimeout == 0 {
		c.ShardSessionTimeout = 10 * time.Second
	}
	defInt(&c.BackfillDays, 28)
	if c.AllowedLateness == 0 {
		c.AllowedLateness = 5 * time.Second
	}
	defInt(&c.ReopenWindows, 60)
	defInt(&c.ReopenPerCycle, 10)
	if c.StreamEvery == 0 {
		c.StreamEvery = time.Second
	}
	defInt(&c.StreamMaxActors, 100000)
	defInt(&c.StreamMaxSubjects, 4096)
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = time.Hour
	}
	if c.RiskHalfLife == 0 {
		c.RiskHalfLife = 72 * time.Hour
	}
	r := &c.Rules
	if r.BulkRecords == 0 {
		r.BulkRecords = 1000
	}
	if r.BulkRecordsByType == nil {
		r.BulkRecordsByType = map[string]uint64{"service": 200000}
	}
	defInt(&r.ConversationSubjects, 3)
	if r.ConversationIdle == 0 {
		r.ConversationIdle = 2 * time.Hour
	}
	if r.ConsentGated == nil {
		r.ConsentGated = []string{"marketing", "analytics", "training"}
	}
	if r.UnknownVendor == nil {
		t := true
		r.UnknownVendor = &t
	}
	d := &c.Detectors
	defInt(&d.WarmupDays, 3)
	defInt(&d.WarmupWindows, windowsIn(time.Hour, c.Window, 12, 60))
	defInt(&d.VolumeSpan, windowsIn(15*time.Minute, c.Window, 2, 32))
	def(&d.VolumeSpanRatio, 4)
	def(&d.VolumeMaxFactor, 1.5)
	if d.VolumeMaxFactorByType == nil {
		d.VolumeMaxFactorByType = map[string]float64{"service": 4}
	}
	def(&d.VolumeZ, 8)
	def(&d.VolumeRatio, 6)
	def(&d.VolumeMin, 200)
	def(&d.VolumeTailProb, 1e-6)
	def(&d.EnumWindowZ, 8)
	def(&d.EnumWindowRatio, 6)
	def(&d.EnumWindowMin, 25)
	def(&d.EnumDayRatio, 3)
	def(&d.EnumDayMin, 100)
	def(&d.EnumHourRatio, 3)
	if d.EnumEvery == 0 {
		d.EnumEvery = defaultEnumEvery(c.Window)
	}
	def(&d.EnumHourMin, 25)
	def(&d.EnumTailProb, 1e-6)
	def(&d.EnumHourTailRatio, 2)
	if d.EnumRatioFactorByType == nil {
		d.EnumRatioFactorByType = map[string]float64{"service": 1.7}
	}
	def(&d.OffHoursShare, 0.01)
	defInt(&d.OffHoursGap, 3)
	defInt(&d.OffHoursMinDays, 4)
	defInt(&d.OffHoursMinWindows, 1)
	def(&d.FirstSeenSensitiveWeight, 3)
	def(&d.FirstSeenScore, 3)
	def(&d.FirstSeenPeerRare, 0.1)
	def(&d.TravelKMH, 1000)
	if d.NewCountry == nil {
		t := true
		d.NewCountry = &t
	}
	def(&d.DeniedMin, 10)
	def(&d.DeniedTailProb, 1e-6)
	def(&d.DormantDays, 10)
	def(&d.DormantRatio, 3)
	defInt(&d.DormantMinWindows, 1)
	if d.DormantWatch == 0 {
		d.DormantWatch = 3 * time.Hour
	}
	def(&d.PeerZ, 10)
	def(&d.PeerRatio, 8)
	defInt(&d.PeerMinPeers, 4)
	defInt(&d.DriftDays, 5)
	def(&d.DriftRatio, 1.8)
	def(&d.MahalanobisProb, 1e-12)
	defInt(&d.MahalanobisSamples, 4000)
	if d.SeriesMinWindow == 0 {
		d.SeriesMinWindow = 5 * time.Minute
	}
	def(&d.SeriesCoverage, 0.9)
	defInt(&d.SeriesWeeks, 4)
	if d.SeriesSpans == nil {
		d.SeriesSpans = []int{1, 3, 12, 48}
	}
	def(&d.SeriesTailProb, 1e-6)
	def(&d.SeriesMinChange, 0.2)
	c.Destinations = c.Destinations.withDefaults()
	c.Conversations = c.Conversations.withDefaults()
	return c
}

// windowsIn is how many windows of length w make up span, rounded, within
// [lo, hi]: the window-count defaults that stand for a length of time.
func windowsIn(span, w time.Duration, lo, hi int) int {
	if w <= 0 {
		return lo
	}
	n := int((span + w/2) / w)
	return min(max(n, lo), hi)
}

// defaultEnumEvery is the first whole number of windows from 10 minutes on
// that is a whole number of minutes and divides an hour (the window itself
// when it is longer; an hour at most).
func defaultEnumEvery(w time.Duration) time.Duration {
	if w <= 0 || time.Hour%w != 0 {
		return 10 * time.Minute // Validate reports the window
	}
	for e := w; e <= time.Hour; e += w {
		if e >= 10*time.Minute && e%time.Minute == 0 && time.Hour%e == 0 {
			return e
		}
	}
	return time.Hour
}

// The clocks that close windows in serve (Config.Clock).
const (
	ClockWall   = "wall"
	ClockEvents = "events"
)

// MaxReopenWindows and MaxReopenPerCycle bound detect.reopen_windows and
// detect.reopen_per_cycle.
const (
	MaxReopenWindows  = 1440
	MaxReopenPerCycle = 1000
)

// Detection shard ownership (detect.ownership).
const (
	OwnershipStatic = "static"
	OwnershipGroup  = "group"
	// DefaultShardTopic and DefaultShardGroup are detect.shard_topic's
	// and detect.shard_group's defaults.
	DefaultShardTopic = "chatwarden.detect-shards.v1"
	DefaultShardGroup = "chatwarden-detect"
	// MaxShards bounds detect.shards with ownership group.
	MaxShards = 1024
)

var kafkaNameRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

// MinStreamEvery, MaxStreamActors and MaxStreamSubjects bound
// detect.stream_every, detect.stream_max_actors and
// detect.stream_max_subjects.
const (
	MinStreamEvery    = 100 * time.Millisecond
	MaxStreamActors   = 10000000
	MaxStreamSubjects = 1000000
)

// MinWindow and MaxWindow bound detect.window.
const (
	MinWindow = 10 * time.Second
	MaxWindow = time.Hour
)

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// Validate checks c (after defaults) and names every bad field.
func (c Config) Validate() error { //nolint:gocognit // one flat check per field, each naming the field (STYLE.md rule 14); long, not tangled
	c = c.WithDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("detect.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	windowOK := c.Window >= MinWindow && c.Window <= MaxWindow && c.Window%time.Second == 0 && time.Hour%c.Window == 0
	if !windowOK {
		bad("window", "%s: want %s to %s, a whole number of seconds dividing an hour (10s 15s 20s 30s 1m 2m 5m 10m 15m 20m 30m 1h ...)",
			c.Window, MinWindow, MaxWindow)
	}
	if e := c.Detectors.EnumEvery; windowOK && (e < c.Window || e%c.Window != 0 || e%time.Minute != 0 || time.Hour%e != 0) {
		bad("detectors.enum_every", "%s with window %s: want whole minutes, a whole number of windows, dividing an hour (set it to %s, or leave it unset)",
			e, c.Window, defaultEnumEvery(c.Window))
	}
	if c.Clock != ClockWall && c.Clock != ClockEvents {
		bad("clock", "%q: want %s or %s", c.Clock, ClockWall, ClockEvents)
	}
	if c.Shards < 1 || c.Shard < 0 || c.Shard >= c.Shards {
		bad("shard", "%d of %d: want 0 <= shard < shards", c.Shard, c.Shards)
	}
	switch c.Ownership {
	case OwnershipStatic:
	case OwnershipGroup:
		if c.Shard != 0 {
			bad("shard", "%d with ownership group: the group assigns the shards; leave shard unset", c.Shard)
		}
		if c.Shards > MaxShards {
			bad("shards", "%d: at most %d with ownership group (one control-topic partition each)", c.Shards, MaxShards)
		}
	default:
		bad("ownership", "%q: want %s or %s", c.Ownership, OwnershipStatic, OwnershipGroup)
	}
	if !kafkaNameRe.MatchString(c.ShardTopic) {
		bad("shard_topic", "%q is not a Kafka topic name (letters, digits, '.', '_', '-', at most 249)", c.ShardTopic)
	}
	if c.ShardGroup == "" || len(c.ShardGroup) > 249 || strings.ContainsAny(c.ShardGroup, " \t\n") {
		bad("shard_group", "%q is not a consumer group name (no spaces, at most 249 characters)", c.ShardGroup)
	}
	if c.ShardSessionTimeout < 6*time.Second || c.ShardSessionTimeout > 5*time.Minute {
		bad("shard_session_timeout", "%s is not between 6s and 5m", c.ShardSessionTimeout)
	}
	if c.AllowedLateness < 0 || c.AllowedLateness > time.Hour {
		bad("allowed_lateness", "%s is not between 0 and 1h", c.AllowedLateness)
	}
	if c.ReopenWindows < -1 || c.ReopenWindows > MaxReopenWindows {
		bad("reopen_windows", "%d: want 1 to %d windows (-1: late events do not re-open their windows)", c.ReopenWindows, MaxReopenWindows)
	}
	if c.ReopenPerCycle < 1 || c.ReopenPerCycle > MaxReopenPerCycle {
		bad("reopen_per_cycle", "%d: want 1 to %d windows per cycle", c.ReopenPerCycle, MaxReopenPerCycle)
	}
	if c.StreamEvery > 0 && (c.StreamEvery < MinStreamEvery || c.StreamEvery > c.Window) {
		bad("stream_every", "%s: want %s to the window (%s), or negative to turn streaming off", c.StreamEvery, MinStreamEvery, c.Window)
	}
	if c.StreamMaxActors < 1 || c.StreamMaxActors > MaxStreamActors {
		bad("stream_max_actors", "%d: want 1 to %d", c.StreamMaxActors, MaxStreamActors)
	}
	if c.StreamMaxSubjects < 1 || c.StreamMaxSubjects > MaxStreamSubjects {
		bad("stream_max_subjects", "%d: want 1 to %d", c.StreamMaxSubjects, MaxStreamSubjects)
	}
	if c.BackfillDays < 0 {
		bad("backfill_days", "%d is negative", c.BackfillDays)
	}
	if min := time.Duration(2 * c.Detectors.DormantDays * float64(24*time.Hour)); c.EvictIdleAfter < min {
		bad("evict_idle_after", "%s is shorter than twice detectors.dormant_days (%s)", c.EvictIdleAfter, min)
	}
	if c.CheckpointEvery < 0 || c.RiskHalfLife < 0 {
		bad("checkpoint_every/risk_half_life", "must not be negative")
	}
	for who, m := range map[string]map[string]string{"actors": c.TimeZones.Actors, "roles": c.TimeZones.Roles} {
		for k, tz := range m {
			if _, err := time.LoadLocation(tz); err != nil {
				bad("time_zones."+who+"."+k, "%q: %v", tz, err)
			}
		}
	}
	r := c.Rules
	if r.ConversationSubjects < 1 {
		bad("rules.conversation_subjects", "%d: want >= 1", r.ConversationSubjects)
	}
	if r.ConversationIdle < 0 {
		bad("rules.conversation_idle", "negative")
	}
	for p, cats := range r.Purposes {
		if len(cats) == 0 {
			bad("rules.purposes."+p, "lists no category (use \"*\" for every category)")
		}
	}
	for _, p := range r.ConsentGated {
		if strings.TrimSpace(p) == "" {
			bad("rules.consent_gated", "empty purpose")
		}
	}
	for name, v := range r.Vendors {
		if _, _, err := parseHours(v.Hours); v.Hours != "" && err != nil {
			bad("rules.vendors."+name+".hours", "%v", err)
		}
		for _, d := range v.Days {
			if _, ok := weekdays[strings.ToLower(d)]; !ok {
				bad("rules.vendors."+name+".days", "%q is not mon..sun", d)
			}
		}
		if v.TimeZone != "" {
			if _, err := time.LoadLocation(v.TimeZone); err != nil {
				bad("rules.vendors."+name+".time_zone", "%v", err)
			}
		}
	}
	d := c.Detectors
	pos := map[string]float64{"volume_z": d.VolumeZ, "volume_ratio": d.VolumeRatio, "enum_window_z": d.EnumWindowZ,
		"enum_window_ratio": d.EnumWindowRatio, "enum_day_ratio": d.EnumDayRatio, "first_seen_score": d.FirstSeenScore,
		"travel_kmh": d.TravelKMH, "dormant_days": d.DormantDays, "dormant_ratio": d.DormantRatio, "peer_z": d.PeerZ,
		"peer_ratio": d.PeerRatio, "drift_ratio": d.DriftRatio, "enum_hour_tail_ratio": d.EnumHourTailRatio, "first_seen_sensitive_weight": d.FirstSeenSensitiveWeight}
	for k, v := range pos {
		if v <= 0 {
			bad("detectors."+k, "%g: want > 0", v)
		}
	}
	probs := map[string]float64{"volume_tail_prob": d.VolumeTailProb, "enum_tail_prob": d.EnumTailProb, "denied_tail_prob": d.DeniedTailProb,
		"mahalanobis_prob": d.MahalanobisProb, "off_hours_share": d.OffHoursShare, "first_seen_peer_rare": d.FirstSeenPeerRare,
		"series_tail_prob": d.SeriesTailProb, "series_coverage": d.SeriesCoverage}
	for k, v := range probs {
		if v <= 0 || v >= 1 {
			bad("detectors."+k, "%g: want a probability in (0, 1)", v)
		}
	}
	if d.VolumeSpan < 2 || d.VolumeSpan > 32 {
		bad("detectors.volume_span", "%d windows: want 2 to 32 (default %d with window %s)", d.VolumeSpan,
			windowsIn(15*time.Minute, c.Window, 2, 32), c.Window)
	}
	if d.WarmupDays < 0 || d.WarmupWindows < 0 || d.OffHoursMinDays < 1 || d.OffHoursGap < 1 || d.OffHoursMinWindows < 1 || d.DormantMinWindows < 1 || d.VolumeMaxFactor < 1 || d.PeerMinPeers < 2 || d.DriftDays < 3 || d.MahalanobisSamples < 100 {
		bad("detectors", "warmup_days/warmup_windows >= 0, off_hours_min_days >= 1, peer_min_peers >= 2, drift_days >= 3, mahalanobis_samples >= 100")
	}
	if d.SeriesWeeks < 2 || d.SeriesWeeks > 8 {
		bad("detectors.series_weeks", "%d: want 2..8", d.SeriesWeeks)
	}
	if d.SeriesMinWindow < time.Minute {
		bad("detectors.series_min_window", "%s: want >= 1m", d.SeriesMinWindow)
	}
	if d.SeriesMinChange < 0 {
		bad("detectors.series_min_change", "%g: want >= 0", d.SeriesMinChange)
	}
	if len(d.SeriesSpans) == 0 {
		bad("detectors.series_spans", "empty: want window counts such as 1 6 24")
	}
	for _, n := range d.SeriesSpans {
		if n < 1 || n > 288 {
			bad("detectors.series_spans", "%d: want 1..288 windows", n)
		}
	}
	errs = append(errs, c.Destinations.validate()...)
	errs = append(errs, c.Conversations.validate()...)
	known := KnownDetectors()
	for name := range c.Severities {
		if !slices.Contains(known, name) {
			bad("severities."+name, "unknown detector (known: %s)", strings.Join(known, " "))
		}
	}
	for _, name := range c.Disabled {
		if !slices.Contains(known, name) {
			bad("disabled", "unknown detector %q (known: %s)", name, strings.Join(known, " "))
		}
	}
	return errors.Join(errs...)
}

// parseHours parses "HH:MM-HH:MM" into minutes of the day.
func parseHours(s string) (from, to int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q is not HH:MM-HH:MM", s)
	}
	if from, err = parseClock(a); err != nil {
		return 0, 0, err
	}
	if to, err = parseClock(b); err != nil {
		return 0, 0, err
	}
	return from, to, nil
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("%q is not a time HH:MM", s)
	}
	return hh*60 + mm, nil
}
