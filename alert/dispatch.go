package alert

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// Options are the Dispatcher's collaborators. Store is required; every
// other field may be left zero.
type Options struct {
	Store Store
	// Poster delivers to Slack; nil means Slack is off and notifications go
	// to the log only (alerts are still persisted).
	Poster Poster
	Log    *slog.Logger
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Exposure fills the blast radius of alerts whose finding has none.
	Exposure ExposureFunc
	// Digest builds the weekly digest (nil: no digest).
	Digest DigestFunc
	// Sources and Lag feed self-monitoring (nil: that check is off).
	Sources SourcesFunc
	Lag     LagFunc
	// Unowned feeds the self-monitoring alert on detection shards without
	// an owner (nil: off; detect.ownership group wires it).
	Unowned UnownedFunc
	// Forward hands an action on an alert another dispatcher owns (Own) to
	// that dispatcher; nil: such an action is refused with ErrNotOwner.
	Forward ForwardFunc
	// Clock is read by Run only (default time.Now); Notify, Tick, Deliver
	// and Act take the time as an argument.
	Clock func() time.Time
}

// Dispatcher turns findings into alerts, groups them and delivers the
// groups' messages. Its methods are safe for concurrent use.
type Dispatcher struct {
	cfg      Config
	st       Store
	poster   Poster
	log      *slog.Logger
	m        *metrics
	exposure ExposureFunc
	digestFn DigestFunc
	sources  SourcesFunc
	lag      LagFunc
	unowned  UnownedFunc
	forward  ForwardFunc
	clock    func() time.Time
	loc      *time.Location
	digestWD time.Weekday
	digestAt time.Duration
	wake     chan struct{}

	// step serializes the steps that change persisted state (plan, write,
	// apply) and every store write, so that no plan is built on state a
	// concurrent write is about to replace. It is taken before mu.
	step sync.Mutex
	// mu guards the fields below. It is held only for work in memory and
	// never across a store or Slack call: commit releases it while it writes.
	mu         sync.Mutex
	loaded     bool
	ver        uint64
	alerts     map[string]*alertState // active alerts and those a live message shows
	byFP       map[string]string      // fingerprint -> active alert id
	groups     map[string]*group      // group key -> group
	msgs       map[string]*msgState   // live messages by id
	sups       []models.Suppression
	supsAt     time.Time
	supsGen    uint64 // counts suppressions written here, so a read begun before one is not installed
	supsBusy   bool   // a suppressions read is under way
	chanNext   map[string]time.Time
	digestDone map[string]bool
	selfNext   time.Time
	lagSamples []int64
	// owns is the dispatcher's share of the alert groups (Own); nil: all.
	// fence is checked before a first post (Own); nil: none.
	owns  OwnsFunc
	fence FenceFunc
}

type alertState struct {
	row     store.AlertRow
	lastKey string // dedupe key of the latest finding folded in
}

func (a *alertState) view() AlertView {
	return AlertView{Alert: a.row.Alert, MutedBy: a.row.MutedBy, AckedAt: a.row.AckedAt, EscalatedAt: a.row.EscalatedAt}
}

// group is an aggregation group: the alerts routed to one channel about one
// (tenant, actor), shown in one Slack message.
type group struct {
	key, channel, tenant, actor string
	created                     time.Time
	alertIDs                    []string
	msgID                       string // empty until the first notification
	nextFlush                   time.Time
	lastNotify                  time.Time
	hash                        string
}

type msgState struct {
	row        store.AlertMessage
	body       messageBody
	hash       string
	nextTry    time.Time
	attempts   int
	uncertain  bool // a post may have reached Slack without us learning its ts
	inflight   bool
	dirty      bool // the latest state is not yet in ClickHouse
	firstQueue time.Time
}

// messageBody is the kind-specific part of a message row.
type messageBody struct {
	RemindedAt time.Time `json:"reminded_at,omitzero"`
	Digest     *Digest   `json:"digest,omitempty"`
}

// New returns a dispatcher. It validates cfg and loads nothing yet: state is
// read from the store on first use.
func New(cfg Config, o Options) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Store == nil {
		return nil, errors.New("alert: a store is required")
	}
	cfg = cfg.WithDefaults()
	loc, _ := time.LoadLocation(cfg.Digest.TZ)
	wd, _ := parseWeekday(cfg.Digest.Weekday)
	at, _ := time.Parse("15:04", cfg.Digest.At)
	d := &Dispatcher{
		cfg: cfg, st: o.Store, poster: o.Poster, log: o.Log, m: newMetrics(o.Registerer),
		exposure: o.Exposure, digestFn: o.Digest, sources: o.Sources, lag: o.Lag, unowned: o.Unowned, forward: o.Forward,
		clock: o.Clock,
		loc:   loc, digestWD: wd, digestAt: time.Duration(at.Hour())*time.Hour + time.Duration(at.Minute())*time.Minute,
		wake:   make(chan struct{}, 1),
		alerts: map[string]*alertState{}, byFP: map[string]string{}, groups: map[string]*group{},
		msgs: map[string]*msgState{}, chanNext: map[string]time.Time{}, digestDone: map[string]bool{},
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.clock == nil {
		d.clock = time.Now //nolint:forbidigo // the production default when the caller passes no clock; the dispatcher reads time only through d.clock
	}
	return d, nil
}

// Config returns the effective configuration (defaults applied).
func (d *Dispatcher) Config() Config { return d.cfg }

// nextVersion returns a row version larger than every one written before.
func (d *Dispatcher) nextVersion(now time.Time) uint64 {
	v := uint64(now.UnixNano())
	if v <= d.ver {
		v = d.ver + 1
	}
	d.ver = v
	return v
}

func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) unsentLocked() int {
	n := 0
	for _, ms := range d.msgs {
		if ms.row.Rev > ms.row.SentRev {
			n++
		}
	}
	return n
}

// Unsent returns how many messages have a revision Slack does not show yet.
func (d *Dispatcher) Unsent() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.unsentLocked()
}

// Run evaluates timers and delivers every SendEvery (sooner when woken by
// new work) until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.poster == nil {
		d.log.Info("Slack is off (no alert.slack.token): alerts go to ClickHouse and the log only")
	} else {
		d.log.Info("alerting to Slack", "default_channel", d.cfg.DefaultChannel, "escalation_channel", d.cfg.EscalationChannel)
	}
	t := time.NewTicker(d.cfg.SendEvery)
	defer t.Stop()
	for {
		now := d.clock()
		if err := d.Tick(ctx, now); err != nil && ctx.Err() == nil {
			d.log.Warn("alert timers", "err", err)
		}
		if _, err := d.Deliver(ctx, d.clock()); err != nil && ctx.Err() == nil {
			d.log.Warn("delivering alert messages", "err", err)
		}
		select {
		case <-ctx.Done():
			d.flushOnStop(ctx)
			return nil
		case <-t.C:
		case <-d.wake:
		}
	}
}

// flushOnStop records delivery results whose write the cancelled context
// interrupted (a message Slack shows but ClickHouse does not know was sent),
// so that a restart updates it instead of searching Slack's history for it.
func (d *Dispatcher) flushOnStop(ctx context.Context) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	d.step.Lock()
	defer d.step.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writeDirty(wctx, d.clock())
}
