package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

var (
	_ detect.Aggregates  = (*store.Store)(nil)
	_ detect.Checkpoints = (*store.Store)(nil)
	_ detect.Auditor     = (*store.Store)(nil)
)

// detectLateness is how long after a window ends detection waits for
// ingest to land the window's events. Ingest stores a batch within about
// 1 s of its events being produced (linger 200 ms; bench-latency's event
// rule p95 is ~1.1 s end to end), so 5 s leaves a wide margin while a
// window detector's alert still reaches Slack within one window + 10 s of
// the event (at 10 s, events at the start of a window missed that target).
const detectLateness = 5 * time.Second

type storeFinding = store.StoredFinding

// detecting is serve's detection: the window detectors' component and the
// event rules, which see each batch ingest stores.
type detecting struct {
	component component
	observer  ingest.BatchObserver
	// findings takes the findings ingest raises (payload PII against a
	// producer) the way the event rules' are taken.
	findings ingest.FindingSink
	// eviction forgets the consent register's old grants every hour.
	eviction component
	// watch follows every shard's owner (detect.ownership: group; zero
	// otherwise).
	watch component
}

// wireDetect builds the event rules (an ingest batch observer) and the
// window detectors, which run on aligned ticks, their windows held open
// until ingest's watermark wm (nil: the wall clock only) has passed them.
// Findings go to notify (alerting's entry point). With shards (not nil:
// detect.ownership group) the detectors run one engine per shard the
// consumer group assigns to this instance; otherwise one engine for
// detect.shard.
func wireDetect(ctx context.Context, cfg detect.Config, st *store.Store, reg prometheus.Registerer, log *slog.Logger,
	notify findingNotifier, wm detect.Watermark, shards *shardOwnership) (detecting, error) {
	if _, err := detect.AuditConfig(ctx, st, cfg, "chatwarden serve", time.Now(), log); err != nil {
		return detecting{}, fmt.Errorf("auditing the detection config: %w", err)
	}
	consents := detect.NewConsentRegister()
	states, err := st.AllConsents(ctx)
	if err != nil {
		return detecting{}, fmt.Errorf("loading the consent register: %w", err)
	}
	consents.Load(states)
	log.Info("consent register loaded", "decisions", consents.Len())
	rules, err := detect.NewRules(cfg, consents)
	if err != nil {
		return detecting{}, err
	}
	// raise stores and forwards findings raised on ingest's path (event
	// rules, ingest's own pii_in_payload). The batch's offsets are
	// committed when it returns, so a finding must be durable first: retry
	// until it is (or serve stops).
	raise := ingest.FindingSink(func(ctx context.Context, _ time.Time, fs []models.Finding) {
		stored := make([]storeFinding, len(fs))
		for i := range fs {
			stored[i].Finding = fs[i]
		}
		retryUntilDone(ctx, log, "storing findings raised at ingest", func(ctx context.Context) error {
			return st.InsertFindings(ctx, stored)
		})
		retryUntilDone(ctx, log, "forwarding findings raised at ingest to alerting", func(ctx context.Context) error {
			return notify(ctx, fs...)
		})
	})
	engines := &engineSet{byShard: map[int]*detect.Engine{}}
	// The newest event time stored, for detect.clock: events (batch
	// observers run after the batch is stored).
	var newest atomic.Int64
	observer := ingest.BatchObserver(func(ctx context.Context, now time.Time, evs []models.Event, cs []models.Consent) {
		for i := range evs {
			if n := evs[i].TS.UnixNano(); n > newest.Load() {
				newest.Store(n)
			}
		}
		engines.noteEvents(evs) // late events: counted, re-open their windows
		if fs := rules.Check(now, evs, cs); len(fs) > 0 {
			raise(ctx, now, fs)
		}
	})
	newEngine := func(shard int, reg prometheus.Registerer, progress func(time.Time)) (*detect.Engine, error) {
		c := cfg
		// An engine evaluates one shard; the group decides which.
		c.Shard, c.Ownership = shard, detect.OwnershipStatic
		if st.Cluster() != "" {
			// Say where the shard's queries go (docs/scaling.md,
			// "Shard-local detection").
			sh := store.Shard{Index: shard, Count: c.WithDefaults().Shards, Key: st.ShardKey()}
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			storage, local, err := st.LocalShard(lctx, sh)
			cancel()
			switch {
			case err != nil:
				log.Warn("reading the cluster's shards", "shard", shard, "err", err)
			case local:
				log.Info("detection shard reads its storage shard's local tables", "shard", shard, "storage_shard", storage+1)
			default:
				log.Info("detection shard reads through the Distributed tables", "shard", shard, "shards", sh.Count)
			}
		}
		return detect.New(c, st, detect.Options{
			Findings:     detect.FindingSink(notify),
			Stored:       st.InsertFindings,
			Raised:       st.WindowFindings,
			Risk:         st.InsertActorRisk,
			Suppressions: st.Suppressions,
			Log:          log.With("component", "detect", "shard", shard),
			Registerer:   reg,
			Watermark:    wm,
			Destinations: st.DestinationWindows,
			Progress:     progress,
			ShardKey:     st.ShardKey(),
		})
	}
	// run evaluates eng's windows until ctx ends (checkpointing then).
	run := func(ctx context.Context, eng *detect.Engine) error {
		if cfg.WithDefaults().Clock == detect.ClockEvents {
			log.Info("detection windows close on event time (detect.clock: events)")
			return eng.RunOnEvents(ctx, func() time.Time {
				if n := newest.Load(); n != 0 {
					return time.Unix(0, n).UTC()
				}
				return time.Time{}
			}, time.Now, time.Second, st)
		}
		return eng.Run(ctx, time.Now, detectLateness, st)
	}
	eviction := consentEviction(consents, cfg.WithDefaults().EvictIdleAfter, reg, log)
	if shards != nil {
		own := func(ctx context.Context, shard int, last ingest.ShardProgress, ok bool) {
			ownShard(ctx, shard, last, ok, shards, engines, reg, log, newEngine, run, st)
		}
		return detecting{observer: observer, findings: raise, component: shards.run(own), watch: shards.watch(), eviction: eviction}, nil
	}
	eng, err := newEngine(cfg.Shard, reg, nil)
	if err != nil {
		return detecting{}, err
	}
	engines.add(cfg.Shard, eng)
	return detecting{observer: observer, findings: raise, component: component{name: "detect", run: func(ctx context.Context) error {
		if err := eng.Start(ctx, st, time.Now()); err != nil {
			return err
		}
		return run(ctx, eng)
	}}, eviction: eviction}, nil
}

// ownShard evaluates shard while this instance owns it (ctx ends when the
// group's generation does): it builds the shard's engine, with its metrics
// labelled by shard, takes the shard over from its last progress record,
// runs it, and reports its progress every heartbeat and once more when it
// stops (after the shutdown checkpoint), for the next owner. Errors are
// retried until ctx ends: returning early would end the generation.
func ownShard(ctx context.Context, shard int, last ingest.ShardProgress, ok bool, o *shardOwnership, engines *engineSet,
	reg prometheus.Registerer, log *slog.Logger,
	newEngine func(int, prometheus.Registerer, func(time.Time)) (*detect.Engine, error),
	run func(context.Context, *detect.Engine) error, cp detect.Checkpoints) {
	log = log.With("component", "detect", "shard", shard)
	var evaluated atomic.Int64 // Unix nanoseconds; 0: none
	if ok && !last.EvaluatedTo.IsZero() {
		evaluated.Store(last.EvaluatedTo.UnixNano())
	}
	evaluatedTo := func() time.Time {
		if n := evaluated.Load(); n != 0 {
			return time.Unix(0, n).UTC()
		}
		return time.Time{}
	}
	rctx, stopReports := context.WithCancel(ctx)
	reported := make(chan struct{})
	go func() { defer close(reported); o.report(rctx, shard, evaluatedTo) }()
	defer func() {
		stopReports()
		<-reported
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := o.group.Report(fctx, shard, time.Now(), evaluatedTo()); err != nil {
			log.Warn("reporting detection shard progress at hand-over", "err", err)
		}
	}()
	sreg := prometheus.WrapRegistererWith(prometheus.Labels{"shard": strconv.Itoa(shard)}, reg)
	eng, err := newEngine(shard, sreg, func(t time.Time) { evaluated.Store(t.UnixNano()) })
	if err != nil {
		log.Error("building the detection engine", "err", err)
		<-ctx.Done()
		return
	}
	defer eng.Unregister()
	takenAt := time.Now()
	prev := "none"
	if ok {
		prev = last.Owner
	}
	log.Info("detection shard owned", "previous_owner", prev, "previous_evaluated_to", last.EvaluatedTo)
	for {
		err := eng.TakeOver(ctx, cp, last.EvaluatedTo, time.Now())
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		log.Error("taking the detection shard over; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
	evaluated.Store(eng.EvaluatedTo().UnixNano())
	log.Info("detection shard taken over", "ready_after", time.Since(takenAt).Round(time.Millisecond), "evaluating_from", eng.EvaluatedTo())
	engines.add(shard, eng)
	defer engines.remove(shard)
	if err := run(ctx, eng); err != nil && ctx.Err() == nil {
		log.Error("detection stopped", "err", err)
		<-ctx.Done()
	}
}

// engineSet is the engines running in this instance, by shard, for the
// event rules' observer to note late events in.
type engineSet struct {
	mu      sync.Mutex
	byShard map[int]*detect.Engine
}

func (s *engineSet) add(shard int, e *detect.Engine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byShard[shard] = e
}

func (s *engineSet) remove(shard int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byShard, shard)
}

// noteEvents hands a stored batch to every engine: each reads only its
// shard's actors when it re-opens a window.
func (s *engineSet) noteEvents(evs []models.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.byShard {
		e.NoteEvents(evs)
	}
}

// consentEviction forgets, every hour, the consent register's grants older
// than maxAge (withdrawals stay), counting them.
func consentEviction(r *detect.ConsentRegister, maxAge time.Duration, reg prometheus.Registerer, log *slog.Logger) component {
	evicted := prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_detect_consents_evicted_total",
		Help: "Consent grants forgotten by the in-memory register after detect.evict_idle_after (withdrawals are kept)."})
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chatwarden_detect_consent_decisions",
		Help: "Consent decisions held by the in-memory register."}, func() float64 { return float64(r.Len()) })
	reg.MustRegister(evicted, held)
	return component{name: "consent-eviction", run: func(ctx context.Context) error {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			if n := r.EvictGranted(time.Now().Add(-maxAge)); n > 0 {
				evicted.Add(float64(n))
				log.Info("consent register: old grants forgotten", "decisions", n)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	}}
}

// retryUntilDone runs op until it succeeds or ctx ends, backing off from
// 200 ms to 10 s and logging each failure. Alerting's entry point and the
// findings insert are safe to repeat.
func retryUntilDone(ctx context.Context, log *slog.Logger, what string, op func(context.Context) error) {
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil {
			if attempt > 1 {
				log.Info(what+" succeeded after retries", "attempts", attempt)
			}
			return
		}
		if ctx.Err() != nil {
			log.Error(what+" abandoned: shutting down", "err", err, "attempts", attempt)
			return
		}
		log.Warn(what+" failed; retrying", "err", err, "attempt", attempt, "backoff", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}
