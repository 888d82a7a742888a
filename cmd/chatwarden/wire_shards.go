package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatwarden/chatwarden/alert"
	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/ingest"
)

// shardOwnership is serve's membership of the detection shard group
// (detect.ownership: group): the group itself, and a watch over every
// shard's progress records that feeds the metrics and the self-monitoring
// alert on a shard without an owner. nil with detect.ownership: static.
type shardOwnership struct {
	group  *ingest.ShardGroup
	cfg    detect.Config
	log    *slog.Logger
	member string

	// limit is how long a shard may go without an owner before the
	// self-monitoring alert: two windows.
	limit time.Duration
	// heartbeat is how often an owner reports its shard.
	heartbeat time.Duration

	// ready is closed once the control topic exists (run's Ensure).
	ready chan struct{}

	unownedFor *prometheus.GaugeVec
	unowned    prometheus.Gauge

	mu      sync.Mutex
	started time.Time // when the watch started (the "since" of a shard never reported)
	last    map[int]ingest.ShardProgress
	read    bool // a watch read succeeded
}

// newShardOwnership returns serve's shard group membership, or nil with
// detect.ownership: static.
func newShardOwnership(dc detect.Config, ic ingest.Config, reg prometheus.Registerer, log *slog.Logger) (*shardOwnership, error) {
	dc = dc.WithDefaults()
	if dc.Ownership != detect.OwnershipGroup {
		return nil, nil
	}
	host, _ := os.Hostname()
	member := host + ":" + strconv.Itoa(os.Getpid())
	g, err := ingest.NewShardGroup(ic, ingest.ShardGroupOptions{Topic: dc.ShardTopic, Group: dc.ShardGroup, Shards: dc.Shards,
		SessionTimeout: dc.ShardSessionTimeout, Member: member, Log: log.With("component", "detect-shards")})
	if err != nil {
		return nil, err
	}
	o := &shardOwnership{group: g, cfg: dc, log: log.With("component", "detect-shards"), member: member,
		ready: make(chan struct{}), limit: 2 * dc.Window, heartbeat: min(5*time.Second, dc.Window/4), last: map[int]ingest.ShardProgress{},
		unownedFor: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "chatwarden_detect_shard_unowned_seconds",
			Help: "Seconds since the detection shard's owner last reported on the control topic (an owner reports every few seconds; detect.ownership: group)."},
			[]string{"shard"}),
		unowned: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatwarden_detect_shards_unowned",
			Help: "Detection shards that have had no owner for longer than two windows (the self_shard_unowned alert)."}),
	}
	reg.MustRegister(o.unownedFor, o.unowned)
	return o, nil
}

// unownedFunc is alerting's view of the watch (nil without a group).
func (o *shardOwnership) unownedFunc() alert.UnownedFunc {
	if o == nil {
		return nil
	}
	return o.unownedAt
}

// unownedAt returns the shards whose owner last reported more than two
// windows before now (nothing before the watch's first read).
func (o *shardOwnership) unownedAt(_ context.Context, now time.Time) ([]alert.UnownedShard, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.read {
		return nil, nil
	}
	var out []alert.UnownedShard
	for s := range o.cfg.Shards {
		p, ok := o.last[s]
		from := o.started
		if ok {
			from = p.At
		}
		if now.Sub(from) > o.limit {
			out = append(out, alert.UnownedShard{Shard: s, LastOwned: p.At, Since: o.started, Limit: o.limit})
		}
	}
	return out, nil
}

// watch reads every shard's newest progress record every heartbeat until
// ctx ends, and sets the metrics.
func (o *shardOwnership) watch() component {
	return component{name: "detect-shards-watch", run: func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case <-o.ready:
		}
		o.mu.Lock()
		o.started = time.Now()
		o.mu.Unlock()
		t := time.NewTicker(o.heartbeat)
		defer t.Stop()
		for {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			last, err := o.group.Progress(rctx)
			cancel()
			now := time.Now()
			if err != nil && ctx.Err() == nil {
				o.log.Warn("reading the detection shards' progress", "err", err)
			}
			o.mu.Lock()
			for s, p := range last {
				o.last[s] = p
			}
			o.read = o.read || err == nil
			n := 0
			for s := range o.cfg.Shards {
				from := o.started
				if p, ok := o.last[s]; ok {
					from = p.At
				}
				gap := max(now.Sub(from), 0)
				o.unownedFor.WithLabelValues(strconv.Itoa(s)).Set(gap.Seconds())
				if gap > o.limit {
					n++
				}
			}
			o.unowned.Set(float64(n))
			o.mu.Unlock()
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	}}
}

// run joins the group and runs own for each shard assigned to this
// instance while it is (see ingest.ShardGroup.Run); each owner reports its
// shard every heartbeat with the end of the last window its engine
// evaluated, read from evaluated (set by detect.Options.Progress).
func (o *shardOwnership) run(own func(ctx context.Context, shard int, last ingest.ShardProgress, ok bool)) component {
	return component{name: "detect-shards", run: func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := o.group.Ensure(cctx)
		cancel()
		if err != nil {
			return fmt.Errorf("detect.shard_topic: %w", err)
		}
		close(o.ready)
		o.log.Info("detection shards owned through a consumer group", "topic", o.cfg.ShardTopic, "group", o.cfg.ShardGroup,
			"shards", o.cfg.Shards, "member", o.member, "session_timeout", o.cfg.ShardSessionTimeout)
		err = o.group.Run(ctx, own)
		return joinClose(err, o.group.Close())
	}}
}

// report writes shard's progress record every heartbeat until ctx ends
// (and once at once): this instance owns it and has evaluated the windows
// up to evaluatedTo().
func (o *shardOwnership) report(ctx context.Context, shard int, evaluatedTo func() time.Time) {
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := o.group.Report(rctx, shard, time.Now(), evaluatedTo()); err != nil && ctx.Err() == nil {
			o.log.Warn("reporting detection shard progress", "shard", shard, "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(o.heartbeat):
		}
	}
}

func joinClose(err, cerr error) error {
	if err != nil {
		return err
	}
	return cerr
}
