package alert

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// selfCheck raises chatwarden's alerts about itself: a data store whose
// events stopped arriving, a consumer lag that keeps growing, a detection
// shard without an owner, a suppression that matches everything, and one
// person suppressing alerts on many actors in a day.
func (d *Dispatcher) selfCheck(ctx context.Context, now time.Time) error {
	var fs []models.Finding
	var errs []error
	self := func(detector, actor, summary string, ev models.Evidence, from time.Time) {
		fs = append(fs, models.Finding{Detector: detector, Tenant: SelfTenant, ActorID: actor,
			ActorType: models.ActorService, WindowStart: from, WindowEnd: now, DetectedAt: now,
			Severity: models.SeverityHigh, Summary: summary, Evidence: ev})
	}
	if d.sources != nil {
		last, err := d.sources(ctx, now.Add(-d.cfg.Self.SourceLookback))
		if err != nil {
			errs = append(errs, fmt.Errorf("reading sources: %w", err))
		}
		names := make([]string, 0, len(last))
		for n := range last {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			gap := now.Sub(last[n])
			if gap <= d.cfg.Self.SourceSilentAfter {
				continue
			}
			self(DetectorSourceSilent, "store:"+n,
				fmt.Sprintf("No events from store %s for %s (last at %s)", n, gap.Round(time.Second), last[n].UTC().Format(time.RFC3339)),
				models.Evidence{Metric: "minutes since the last event", Observed: gap.Minutes(),
					Threshold: d.cfg.Self.SourceSilentAfter.Minutes(), BaselineSource: "rule", TopStores: []string{n}},
				last[n])
		}
	}
	if d.lag != nil {
		lag, err := d.lag(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading consumer lag: %w", err))
		} else if d.lagGrowing(lag) {
			d.mu.Lock()
			first := d.lagSamples[0]
			d.mu.Unlock()
			self(DetectorConsumerLag, "consumer:ingest",
				fmt.Sprintf("Ingest consumer lag grew for %d checks in a row, now %d messages", d.cfg.Self.LagChecks, lag),
				models.Evidence{Metric: "consumer lag (messages)", Observed: float64(lag), Baseline: float64(first),
					Threshold: float64(d.cfg.Self.LagMin), BaselineSource: "rule"},
				now.Add(-time.Duration(d.cfg.Self.LagChecks-1)*d.cfg.Self.CheckEvery))
		}
	}
	if d.unowned != nil {
		us, err := d.unowned(ctx, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading detection shard owners: %w", err))
		}
		for _, u := range us {
			from, last := u.Since, "never since "+u.Since.UTC().Format(time.RFC3339)
			if !u.LastOwned.IsZero() {
				from, last = u.LastOwned, "last at "+u.LastOwned.UTC().Format(time.RFC3339)
			}
			gap := now.Sub(from)
			self(DetectorShardUnowned, fmt.Sprintf("detect-shard:%d", u.Shard),
				fmt.Sprintf("Detection shard %d has had no owner for %s (%s): its actors' windows are not evaluated", u.Shard, gap.Round(time.Second), last),
				models.Evidence{Metric: "seconds without an owner", Observed: gap.Seconds(), Threshold: u.Limit.Seconds(), BaselineSource: "rule"},
				from)
		}
	}
	d.step.Lock()
	defer d.step.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, sp := range d.sups {
		if !sp.MatchesEverything() || !sp.Active(now) {
			continue
		}
		until := "never expires"
		if !sp.Until.IsZero() {
			until = "until " + sp.Until.UTC().Format(time.RFC3339)
		}
		self(DetectorSilenceEverything, "suppression:"+sp.ID,
			fmt.Sprintf("A %s by %s matches every alert (%s): %s", sp.Kind, sp.Author, until, sp.Reason),
			models.Evidence{Metric: "matchers set", Observed: 0, BaselineSource: "rule"}, sp.CreatedAt)
	}
	mass := d.massSuppressorsLocked(now, d.cfg.Self.SuppressActorsPerDay)
	people := make([]string, 0, len(mass))
	for who := range mass {
		people = append(people, who)
	}
	sort.Strings(people)
	for _, who := range people {
		as := mass[who]
		shown := as
		if len(shown) > 10 {
			shown = shown[:10]
		}
		self(DetectorMassSuppression, "person:"+who,
			fmt.Sprintf("%s silenced or marked false positive alerts on %d actors in 24 h (more than %d): %s",
				who, len(as), d.cfg.Self.SuppressActorsPerDay, strings.Join(shown, ", ")),
			models.Evidence{Metric: "actors suppressed by one person in 24 h", Observed: float64(len(as)),
				Threshold: float64(d.cfg.Self.SuppressActorsPerDay), BaselineSource: "rule"},
			now.Add(-24*time.Hour))
	}
	if len(fs) > 0 {
		if err := d.notifyLocked(ctx, now, fs); err != nil {
			errs = append(errs, err)
		}
		d.poke()
	}
	return errors.Join(errs...)
}

// lagGrowing records a lag sample and reports whether the last LagChecks
// samples grew strictly, ending at or above LagMin.
func (d *Dispatcher) lagGrowing(lag int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lagSamples = append(d.lagSamples, lag)
	if n := d.cfg.Self.LagChecks; len(d.lagSamples) > n {
		d.lagSamples = d.lagSamples[len(d.lagSamples)-n:]
	}
	if len(d.lagSamples) < d.cfg.Self.LagChecks || lag < d.cfg.Self.LagMin {
		return false
	}
	for i := 1; i < len(d.lagSamples); i++ {
		if d.lagSamples[i] <= d.lagSamples[i-1] {
			return false
		}
	}
	return true
}
