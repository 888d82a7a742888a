// Package report builds chatwarden's weekly breach-risk summary for managers
// and the data-protection officer (alert trend, top risks, exposure, consent,
// purpose and vendor violations, time to acknowledge and resolve, detector
// noise) and renders it as HTML, Markdown or JSON; the breach assessment of
// an incident; and the customer-readable access report (Customer), a
// data-subject report worded for the customer, as HTML, Markdown, JSON or
// PDF. It reads alerts and event aggregates through small interfaces wired
// in cmd; it never imports the alert or detect packages.
package report

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// AlertRecord is an alert with the moments of its life the report measures.
type AlertRecord struct {
	Alert models.Alert
	// AckedAt is when it was first acknowledged (or escalated, or marked a
	// false positive: any human reaction); zero if never.
	AckedAt time.Time
	// ResolvedAt is when it was first resolved or marked a false positive;
	// zero if never.
	ResolvedAt time.Time
}

// AlertSource gives the report its alerts.
type AlertSource interface {
	// AlertRecords returns every alert first seen in [from, to) with its
	// acknowledge and resolve times, only of tenants when that is not
	// empty. An error fails the report.
	AlertRecords(ctx context.Context, tenants []string, from, to time.Time) ([]AlertRecord, error)
}

// AlertSourceFunc adapts a function to AlertSource.
type AlertSourceFunc func(ctx context.Context, tenants []string, from, to time.Time) ([]AlertRecord, error)

// AlertRecords calls f.
func (f AlertSourceFunc) AlertRecords(ctx context.Context, tenants []string, from, to time.Time) ([]AlertRecord, error) {
	return f(ctx, tenants, from, to)
}

// AlertLifeReader reads alerts with their reaction and resolution times.
// *store.Store implements it.
type AlertLifeReader interface {
	// AlertLives returns every alert (of tenants, when not empty) first
	// seen in [from, to) with its reaction and resolution times.
	AlertLives(ctx context.Context, tenants []string, from, to time.Time) ([]store.AlertLife, error)
}

// StoreAlerts is the AlertSource over the store's alert lives.
func StoreAlerts(s AlertLifeReader) AlertSource {
	return AlertSourceFunc(func(ctx context.Context, tenants []string, from, to time.Time) ([]AlertRecord, error) {
		lives, err := s.AlertLives(ctx, tenants, from, to)
		if err != nil {
			return nil, err
		}
		out := make([]AlertRecord, len(lives))
		for i, l := range lives {
			out[i] = AlertRecord{Alert: l.Alert, AckedAt: l.AckedAt, ResolvedAt: l.ResolvedAt}
		}
		return out, nil
	})
}

// EventSource gives the report access volume and the exposure of flagged
// access. *store.Store implements it. tenants, when not empty, bounds
// what DailyVolume and VendorActivity count.
type EventSource interface {
	DailyVolume(ctx context.Context, tenants []string, from, to time.Time) ([]store.DayVolume, error)
	ExposureOfWindows(ctx context.Context, ws []store.ActorWindow) (store.Exposure, error)
	VendorActivity(ctx context.Context, tenants []string, from, to time.Time) ([]store.ActorInfo, error)
}

// ShareSource gives the report what was sent to third parties (shares and
// exports with a destination). *store.Store implements it.
type ShareSource interface {
	// SharedByDestination returns, per tenant and destination, what the
	// shares and exports of [from, to) that were not denied sent; tenants,
	// when not empty, restricts the rows.
	SharedByDestination(ctx context.Context, tenants []string, from, to time.Time) ([]store.DestinationTotal, error)
}

// RiskSource gives the report the actor risk scores detection records
// (the decayed sum of an actor's findings). *store.Store implements it.
type RiskSource interface {
	// TopRiskyActors returns the n actors (of tenants, when not empty)
	// with the highest risk score recorded in [from, to), each with its
	// highest score in the range, highest first. No rows (detection not
	// running) is not an error.
	TopRiskyActors(ctx context.Context, tenants []string, from, to time.Time, n int) ([]store.ActorRisk, error)
}

// maxRiskActors bounds the risk rows one report reads: enough for the top
// actors and for every vendor actor in practice; an actor ranked below
// counts as having no risk row.
const maxRiskActors = 1000

// Config says how alerts are classified. The zero value takes the defaults.
type Config struct {
	// ConsentDetectors, PurposeDetectors and VendorDetectors name the
	// detectors whose alerts are consent, purpose and vendor-scope
	// violations. A detector name containing "consent", "purpose" or
	// "vendor" is also classified so by default.
	ConsentDetectors []string `yaml:"consent_detectors"`
	PurposeDetectors []string `yaml:"purpose_detectors"`
	VendorDetectors  []string `yaml:"vendor_detectors"`
	// TopN bounds the top-actor and top-vendor tables (default 10).
	TopN int `yaml:"top_n"`
	// TrendWeeks is the length of the trend (default 8).
	TrendWeeks int `yaml:"trend_weeks"`
}

// Validate names a bad field.
func (c Config) Validate() error {
	if c.TopN < 0 || c.TopN > 100 {
		return fmt.Errorf("report.top_n: %d is not in 0..100", c.TopN)
	}
	if c.TrendWeeks < 0 || c.TrendWeeks > 52 {
		return fmt.Errorf("report.trend_weeks: %d is not in 0..52", c.TrendWeeks)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.TopN == 0 {
		c.TopN = 10
	}
	if c.TrendWeeks == 0 {
		c.TrendWeeks = 8
	}
	return c
}

// Violation kinds.
const (
	KindConsent = "consent"
	KindPurpose = "purpose"
	KindVendor  = "vendor"
)

func (c Config) kind(detector string) string {
	switch {
	case slices.Contains(c.ConsentDetectors, detector):
		return KindConsent
	case slices.Contains(c.PurposeDetectors, detector):
		return KindPurpose
	case slices.Contains(c.VendorDetectors, detector):
		return KindVendor
	}
	d := strings.ToLower(detector)
	switch {
	case strings.Contains(d, "consent"):
		return KindConsent
	case strings.Contains(d, "purpose"):
		return KindPurpose
	case strings.Contains(d, "vendor"):
		return KindVendor
	}
	return ""
}

// Reporter builds weekly summaries.
type Reporter struct {
	Alerts AlertSource
	Events EventSource
	// Risk, when set, ranks actors and vendors by detection's risk scores;
	// an actor without a risk row in the week (or every actor, when Risk is
	// nil) is scored by its severity-weighted alert count instead.
	Risk RiskSource
	// Shares, when set, fills "data shared with third parties"; without
	// it the section says it is not wired.
	Shares ShareSource
	Config Config
}

// SharedDestination is what one tenant sent to one destination in the
// week, against the week before.
type SharedDestination struct {
	Tenant      string   `json:"tenant"`
	Destination string   `json:"destination"`
	Events      uint64   `json:"events"`
	Records     uint64   `json:"records"`
	Customers   uint64   `json:"customers"`
	Actors      uint64   `json:"actors"`
	Categories  []string `json:"categories"`
	// PrevRecords and PrevCustomers are the week before's; New says the
	// destination received nothing then (and Change is not defined).
	PrevRecords   uint64 `json:"prev_records"`
	PrevCustomers uint64 `json:"prev_customers"`
	New           bool   `json:"new,omitempty"`
	// Change is (records - prev_records) / prev_records, -1 for a
	// destination that received nothing this week.
	Change float64 `json:"change"`
}

// ChangeText renders Change for people: "new", "+35%", "-100%".
func (d SharedDestination) ChangeText() string {
	if d.New {
		return "new"
	}
	return fmt.Sprintf("%+.0f%%", 100*d.Change)
}

// Count is a named number.
type Count struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

// WeekCount is one week of the alert trend.
type WeekCount struct {
	Week       string         `json:"week"`
	Total      int            `json:"total"`
	BySeverity map[string]int `json:"by_severity"`
}

// Where a risk score comes from.
const (
	// ScoreRisk is detection's decayed risk score (actor_risk), the
	// highest the actor reached in the week.
	ScoreRisk = "risk"
	// ScoreAlerts is the severity-weighted count of the week's alerts
	// (false positives excluded), for actors without a risk row.
	ScoreAlerts = "alerts"
)

// ActorRisk is an actor's share of the week's risk.
type ActorRisk struct {
	Tenant    string  `json:"tenant"`
	ActorID   string  `json:"actor_id"`
	ActorType string  `json:"actor_type,omitempty"`
	Vendor    string  `json:"vendor,omitempty"`
	Alerts    int     `json:"alerts"`
	Score     float64 `json:"score"`
	// ScoreSource is ScoreRisk or ScoreAlerts.
	ScoreSource string   `json:"score_source"`
	Worst       string   `json:"worst_severity"`
	Detectors   []string `json:"detectors"`
}

// VendorRisk is a vendor's share of the week's risk and access.
type VendorRisk struct {
	Vendor   string  `json:"vendor"`
	Actors   int     `json:"actors"`
	Alerts   int     `json:"alerts"`
	Score    float64 `json:"score"`
	Events   uint64  `json:"events"`
	Records  uint64  `json:"records"`
	Subjects uint64  `json:"subjects"`
	// NoContract: detection reported that the vendor has no contract
	// configured (a vendor_no_contract alert this week); its access is
	// judged statistically only.
	NoContract bool `json:"no_contract,omitempty"`
}

// NoContractDetector is the detector that reports a vendor without a
// configured contract (detect.RuleVendorNoContract).
const NoContractDetector = "vendor_no_contract"

// Violation is one actor's flagged consent, purpose or vendor-scope breaches.
type Violation struct {
	Kind     string    `json:"kind"`
	Detector string    `json:"detector"`
	Tenant   string    `json:"tenant"`
	ActorID  string    `json:"actor_id"`
	Alerts   int       `json:"alerts"`
	Findings int       `json:"findings"`
	Worst    string    `json:"worst_severity"`
	Summary  string    `json:"summary"`
	Last     time.Time `json:"last"`
}

// DetectorNoise is how often a detector's alerts were false positives.
type DetectorNoise struct {
	Detector       string  `json:"detector"`
	Alerts         int     `json:"alerts"`
	Reviewed       int     `json:"reviewed"`
	FalsePositives int     `json:"false_positives"`
	Rate           float64 `json:"false_positive_rate"`
}

// Timing is a mean duration over n alerts.
type Timing struct {
	N           int     `json:"n"`
	MeanSeconds float64 `json:"mean_seconds"`
	Mean        string  `json:"mean"`
}

// Summary is one week's breach-risk summary.
type Summary struct {
	Week string `json:"week"`
	// Tenants are the tenants the summary covers; empty means every
	// tenant. A reader limited to some tenants gets a summary of those.
	Tenants     []string  `json:"tenants,omitempty"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	GeneratedAt time.Time `json:"generated_at"`
	// Paragraph is the plain-language summary that comes first.
	Paragraph string `json:"paragraph"`

	Alerts     int         `json:"alerts"`
	BySeverity []Count     `json:"by_severity"`
	ByStatus   []Count     `json:"by_status"`
	Trend      []WeekCount `json:"trend"`

	TopActors  []ActorRisk  `json:"top_actors"`
	TopVendors []VendorRisk `json:"top_vendors"`
	// RiskScored and AlertScored count the actors (of every actor
	// considered, not only the top ones) scored by detection's risk score
	// and by the alert-count fallback.
	RiskScored  int `json:"risk_scored"`
	AlertScored int `json:"alert_scored"`

	// Exposure is the blast radius of the flagged accesses (the windows of
	// the week's alerts that were not false positives).
	Exposure       store.Exposure `json:"exposure"`
	ExposureCapped bool           `json:"exposure_capped,omitempty"`

	ConsentViolations []Violation `json:"consent_violations"`
	PurposeViolations []Violation `json:"purpose_violations"`
	VendorViolations  []Violation `json:"vendor_violations"`

	TimeToAcknowledge Timing `json:"time_to_acknowledge"`
	TimeToResolve     Timing `json:"time_to_resolve"`

	Noise  []DetectorNoise   `json:"noise"`
	Volume []store.DayVolume `json:"volume"`

	// Shared is "data shared with third parties": per tenant and
	// destination, this week against the last, most records first.
	// SharedWired is false when the report has no ShareSource.
	Shared      []SharedDestination `json:"shared"`
	SharedWired bool                `json:"shared_wired"`
}

// emptyListsNotNull makes every list of the summary encode as [] rather
// than null when it is empty (a quiet week), as the API document
// (dashboards/openapi.json) promises.
func (s *Summary) emptyListsNotNull() {
	s.BySeverity, s.ByStatus, s.Trend = orEmpty(s.BySeverity), orEmpty(s.ByStatus), orEmpty(s.Trend)
	s.TopActors, s.TopVendors = orEmpty(s.TopActors), orEmpty(s.TopVendors)
	s.ConsentViolations, s.PurposeViolations, s.VendorViolations = orEmpty(s.ConsentViolations), orEmpty(s.PurposeViolations), orEmpty(s.VendorViolations)
	s.Noise, s.Volume = orEmpty(s.Noise), orEmpty(s.Volume)
	s.Shared = orEmpty(s.Shared)
	for i := range s.Shared {
		s.Shared[i].Categories = orEmpty(s.Shared[i].Categories)
	}
}

func orEmpty[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}

// ScoredActors is the number of actors the risk ranking considered.
func (s Summary) ScoredActors() int { return s.RiskScored + s.AlertScored }

// severityWeight is each severity's contribution to an actor's risk score.
var severityWeight = map[models.Severity]float64{
	models.SeverityInfo: 0, models.SeverityLow: 1, models.SeverityMedium: 3, models.SeverityHigh: 7, models.SeverityCritical: 15,
}

// Weekly builds the summary of week w over every tenant. now is the
// report's generation time.
func (r *Reporter) Weekly(ctx context.Context, w Week, now time.Time) (*Summary, error) {
	return r.WeeklyFor(ctx, w, nil, now)
}

// WeeklyFor builds the summary of week w over tenants (nil or empty: every
// tenant): alerts, trend, risk, vendors, exposure and volume of other
// tenants are left out, each source is asked for those tenants only, and
// what comes back from another tenant is dropped as well.
func (r *Reporter) WeeklyFor(ctx context.Context, w Week, tenants []string, now time.Time) (*Summary, error) {
	cfg := r.Config.withDefaults()
	from, to := w.Start(), w.End()
	trendFrom := from.AddDate(0, 0, -7*(cfg.TrendWeeks-1))
	tenants = slices.Clone(tenants)
	slices.Sort(tenants)
	inScope := func(t string) bool { return len(tenants) == 0 || slices.Contains(tenants, t) }
	s := &Summary{Week: w.String(), Tenants: tenants, From: from, To: to, GeneratedAt: now.UTC()}
	// The reads that do not depend on the week's alerts start at once,
	// while the alerts are read: only the flagged exposure waits for them.
	var (
		wg                     sync.WaitGroup
		vendors                []store.ActorInfo
		risk                   []store.ActorRisk
		shared, prevShared     []store.DestinationTotal
		errVol, errVend        error
		errRisk                error
		errShare, errPrevShare error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { s.Volume, errVol = r.Events.DailyVolume(ctx, tenants, from, to) })
	wg.Go(func() { vendors, errVend = r.Events.VendorActivity(ctx, tenants, from, to) })
	if r.Risk != nil {
		wg.Go(func() { risk, errRisk = r.Risk.TopRiskyActors(ctx, tenants, from, to, maxRiskActors) })
	}
	if r.Shares != nil {
		s.SharedWired = true
		wg.Go(func() { shared, errShare = r.Shares.SharedByDestination(ctx, tenants, from, to) })
		wg.Go(func() { prevShared, errPrevShare = r.Shares.SharedByDestination(ctx, tenants, w.Add(-1).Start(), from) })
	}
	got, err := r.Alerts.AlertRecords(ctx, tenants, trendFrom, to)
	if err != nil {
		cancel()
		wg.Wait()
		return nil, fmt.Errorf("reading alerts of %s: %w", w, err)
	}
	var all, week []AlertRecord
	for _, a := range got {
		if !inScope(a.Alert.Tenant) {
			continue
		}
		all = append(all, a)
		if !a.Alert.FirstSeen.Before(from) && a.Alert.FirstSeen.Before(to) {
			week = append(week, a)
		}
	}
	sort.SliceStable(week, func(i, j int) bool {
		ai, aj := week[i].Alert, week[j].Alert
		if ai.Severity != aj.Severity {
			return ai.Severity > aj.Severity
		}
		if !ai.FirstSeen.Equal(aj.FirstSeen) {
			return ai.FirstSeen.Before(aj.FirstSeen)
		}
		return ai.ID < aj.ID
	})
	s.Alerts = len(week)
	s.trend(all, w, cfg.TrendWeeks)
	s.counts(week)
	s.violations(week, cfg)
	s.timings(week)
	s.noise(week)

	var windows []store.ActorWindow
	for _, a := range week {
		if a.Alert.Status == models.StatusFalsePositive {
			continue
		}
		end := a.Alert.LastSeen
		if !a.Alert.Latest.WindowEnd.IsZero() && a.Alert.Latest.WindowEnd.After(end) {
			end = a.Alert.Latest.WindowEnd
		}
		start := a.Alert.FirstSeen
		if ws := a.Alert.Latest.WindowStart; !ws.IsZero() && ws.Before(start) {
			start = ws
		}
		if !end.After(start) {
			end = start.Add(time.Minute)
		}
		windows = append(windows, store.ActorWindow{Tenant: a.Alert.Tenant, ActorID: a.Alert.ActorID, From: start, To: end})
	}
	s.ExposureCapped = len(windows) > store.MaxExposureWindows
	exposure, errExp := r.Events.ExposureOfWindows(ctx, windows)
	wg.Wait()
	s.Exposure = exposure
	if err := errors.Join(errShare, errPrevShare); err != nil {
		return nil, fmt.Errorf("reading data shared with third parties in %s: %w", w, err)
	}
	s.Shared = sharedTable(shared, prevShared)
	if errExp != nil {
		return nil, fmt.Errorf("computing flagged exposure of %s: %w", w, errExp)
	}
	if errVol != nil {
		return nil, fmt.Errorf("reading volume of %s: %w", w, errVol)
	}
	if errVend != nil {
		return nil, fmt.Errorf("reading vendor activity of %s: %w", w, errVend)
	}
	if errRisk != nil {
		return nil, fmt.Errorf("reading risk scores of %s: %w", w, errRisk)
	}
	risk = slices.DeleteFunc(risk, func(x store.ActorRisk) bool { return !inScope(x.Tenant) })
	vendors = slices.DeleteFunc(vendors, func(x store.ActorInfo) bool { return !inScope(x.Tenant) })
	actors := s.risks(week, risk, vendors)
	s.topActors(actors, cfg.TopN)
	s.vendors(week, actors, vendors, cfg.TopN)
	s.Paragraph = s.paragraph()
	s.emptyListsNotNull()
	return s, nil
}

func (s *Summary) trend(all []AlertRecord, w Week, weeks int) {
	for i := weeks - 1; i >= 0; i-- {
		wk := w.Add(-i)
		c := WeekCount{Week: wk.String(), BySeverity: map[string]int{}}
		for _, a := range all {
			if !a.Alert.FirstSeen.Before(wk.Start()) && a.Alert.FirstSeen.Before(wk.End()) {
				c.Total++
				c.BySeverity[a.Alert.Severity.String()]++
			}
		}
		s.Trend = append(s.Trend, c)
	}
}

func (s *Summary) counts(week []AlertRecord) {
	sev := map[models.Severity]int{}
	st := map[models.AlertStatus]int{}
	for _, a := range week {
		sev[a.Alert.Severity]++
		st[a.Alert.Status]++
	}
	for v := models.SeverityCritical; v >= models.SeverityInfo; v-- {
		s.BySeverity = append(s.BySeverity, Count{v.String(), sev[v]})
	}
	for _, v := range models.AlertStatuses {
		s.ByStatus = append(s.ByStatus, Count{string(v), st[v]})
	}
}

// actorKey is a tenant and an actor.
type actorKey struct{ tenant, actor string }

// alertScore is an alert's weight in the alert-count fallback.
func alertScore(a models.Alert) float64 {
	return severityWeight[a.Severity] * float64(max(1, min(a.Findings, 5)))
}

// risks scores every actor that had an alert (false positives aside) or a
// risk row in the week: by its highest risk score when it has a risk row,
// else by its severity-weighted alert count. vendors names the vendor of
// vendor actors without alerts.
func (s *Summary) risks(week []AlertRecord, risk []store.ActorRisk, vendors []store.ActorInfo) map[actorKey]*ActorRisk {
	by := map[actorKey]*ActorRisk{}
	worst := map[actorKey]models.Severity{}
	alertScores := map[actorKey]float64{}
	for _, a := range week {
		if a.Alert.Status == models.StatusFalsePositive {
			continue
		}
		k := actorKey{a.Alert.Tenant, a.Alert.ActorID}
		r := by[k]
		if r == nil {
			r = &ActorRisk{Tenant: a.Alert.Tenant, ActorID: a.Alert.ActorID, ActorType: string(a.Alert.ActorType), Vendor: a.Alert.Latest.ActorVendor}
			by[k] = r
			worst[k] = a.Alert.Severity
		}
		r.Alerts++
		alertScores[k] += alertScore(a.Alert)
		worst[k] = max(worst[k], a.Alert.Severity)
		if !slices.Contains(r.Detectors, a.Alert.Detector) {
			r.Detectors = append(r.Detectors, a.Alert.Detector)
		}
	}
	hasRisk := map[actorKey]bool{}
	for _, x := range risk {
		if x.Score <= 0 {
			continue
		}
		k := actorKey{x.Tenant, x.ActorID}
		r := by[k]
		if r == nil {
			r = &ActorRisk{Tenant: x.Tenant, ActorID: x.ActorID, ActorType: x.ActorType}
			if x.TopDetector != "" {
				r.Detectors = []string{x.TopDetector}
			}
			by[k] = r
			worst[k] = x.MaxSeverity
		}
		hasRisk[k] = true
		r.Score, r.ScoreSource = x.Score, ScoreRisk
		worst[k] = max(worst[k], x.MaxSeverity)
	}
	vendorOf := map[actorKey]string{}
	for _, v := range vendors {
		vendorOf[actorKey{v.Tenant, v.ActorID}] = v.Vendor
	}
	for k, r := range by {
		if !hasRisk[k] {
			r.Score, r.ScoreSource = alertScores[k], ScoreAlerts
			s.AlertScored++
		} else {
			s.RiskScored++
		}
		if r.Vendor == "" {
			r.Vendor = vendorOf[k]
		}
		r.Worst = worst[k].String()
		if r.Detectors == nil {
			r.Detectors = []string{}
		}
		sort.Strings(r.Detectors)
	}
	return by
}

func (s *Summary) topActors(by map[actorKey]*ActorRisk, topN int) {
	s.TopActors = []ActorRisk{}
	for _, r := range by {
		s.TopActors = append(s.TopActors, *r)
	}
	sort.Slice(s.TopActors, func(i, j int) bool {
		a, b := s.TopActors[i], s.TopActors[j]
		if a.Score != b.Score {
			return a.Score > b.Score
		}
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		return a.ActorID < b.ActorID
	})
	if len(s.TopActors) > topN {
		s.TopActors = s.TopActors[:topN]
	}
}

// vendors sums, per vendor, the activity of its actors, their alerts and
// their scores (as risks scored them).
func (s *Summary) vendors(week []AlertRecord, actors map[actorKey]*ActorRisk, activity []store.ActorInfo, topN int) {
	by := map[string]*VendorRisk{}
	get := func(v string) *VendorRisk {
		if by[v] == nil {
			by[v] = &VendorRisk{Vendor: v}
		}
		return by[v]
	}
	for _, a := range activity {
		r := get(a.Vendor)
		r.Actors++
		r.Events += a.Events
		r.Records += a.Records
		r.Subjects += a.Subjects
	}
	for _, a := range week {
		v := a.Alert.Latest.ActorVendor
		if v == "" || a.Alert.Status == models.StatusFalsePositive {
			continue
		}
		if a.Alert.Detector == NoContractDetector {
			get(v).NoContract = true
		}
		get(v).Alerts++
	}
	for _, r := range actors {
		if r.Vendor != "" {
			get(r.Vendor).Score += r.Score
		}
	}
	s.TopVendors = []VendorRisk{}
	for _, r := range by {
		s.TopVendors = append(s.TopVendors, *r)
	}
	sort.Slice(s.TopVendors, func(i, j int) bool {
		a, b := s.TopVendors[i], s.TopVendors[j]
		if a.Score != b.Score {
			return a.Score > b.Score
		}
		if a.Records != b.Records {
			return a.Records > b.Records
		}
		return a.Vendor < b.Vendor
	})
	if len(s.TopVendors) > topN {
		s.TopVendors = s.TopVendors[:topN]
	}
}

func (s *Summary) violations(week []AlertRecord, cfg Config) {
	s.ConsentViolations, s.PurposeViolations, s.VendorViolations = []Violation{}, []Violation{}, []Violation{}
	for _, a := range week {
		if a.Alert.Status == models.StatusFalsePositive {
			continue
		}
		v := Violation{Kind: cfg.kind(a.Alert.Detector), Detector: a.Alert.Detector, Tenant: a.Alert.Tenant, ActorID: a.Alert.ActorID,
			Alerts: 1, Findings: a.Alert.Findings, Worst: a.Alert.Severity.String(), Summary: a.Alert.Latest.Summary, Last: a.Alert.LastSeen.UTC()}
		switch v.Kind {
		case KindConsent:
			s.ConsentViolations = append(s.ConsentViolations, v)
		case KindPurpose:
			s.PurposeViolations = append(s.PurposeViolations, v)
		case KindVendor:
			s.VendorViolations = append(s.VendorViolations, v)
		}
	}
}

func (s *Summary) timings(week []AlertRecord) {
	var ack, res time.Duration
	for _, a := range week {
		if !a.AckedAt.IsZero() && !a.AckedAt.Before(a.Alert.FirstSeen) {
			ack += a.AckedAt.Sub(a.Alert.FirstSeen)
			s.TimeToAcknowledge.N++
		}
		if !a.ResolvedAt.IsZero() && !a.ResolvedAt.Before(a.Alert.FirstSeen) {
			res += a.ResolvedAt.Sub(a.Alert.FirstSeen)
			s.TimeToResolve.N++
		}
	}
	mean := func(t *Timing, sum time.Duration) {
		if t.N > 0 {
			d := sum / time.Duration(t.N)
			t.MeanSeconds = d.Seconds()
			t.Mean = Human(d)
		} else {
			t.Mean = "n/a"
		}
	}
	mean(&s.TimeToAcknowledge, ack)
	mean(&s.TimeToResolve, res)
}

func (s *Summary) noise(week []AlertRecord) {
	by := map[string]*DetectorNoise{}
	for _, a := range week {
		n := by[a.Alert.Detector]
		if n == nil {
			n = &DetectorNoise{Detector: a.Alert.Detector}
			by[a.Alert.Detector] = n
		}
		n.Alerts++
		switch a.Alert.Status {
		case models.StatusFalsePositive:
			n.FalsePositives++
			n.Reviewed++
		case models.StatusResolved, models.StatusAcknowledged, models.StatusEscalated:
			n.Reviewed++
		}
	}
	s.Noise = []DetectorNoise{}
	for _, n := range by {
		if n.Reviewed > 0 {
			n.Rate = float64(n.FalsePositives) / float64(n.Reviewed)
		}
		s.Noise = append(s.Noise, *n)
	}
	sort.Slice(s.Noise, func(i, j int) bool {
		a, b := s.Noise[i], s.Noise[j]
		if a.Rate != b.Rate {
			return a.Rate > b.Rate
		}
		if a.Alerts != b.Alerts {
			return a.Alerts > b.Alerts
		}
		return a.Detector < b.Detector
	})
}

// paragraph writes the plain-language summary.
func (s *Summary) paragraph() string {
	var b strings.Builder
	fmt.Fprintf(&b, "In week %s (%s to %s) chatwarden raised %s", s.Week, s.From.Format("Mon 2 Jan"), s.To.Add(-time.Second).Format("Mon 2 Jan 2006"), plural(s.Alerts, "alert", "alerts"))
	var sev []string
	for _, c := range s.BySeverity {
		if c.Count > 0 && (c.Name == "critical" || c.Name == "high") {
			sev = append(sev, fmt.Sprintf("%d %s", c.Count, c.Name))
		}
	}
	if len(sev) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(sev, ", "))
	}
	if len(s.Trend) >= 2 {
		prev := s.Trend[len(s.Trend)-2].Total
		switch {
		case prev == 0 && s.Alerts == 0:
			b.WriteString(", as in the week before")
		case prev == 0:
			b.WriteString(", up from none the week before")
		case s.Alerts > prev:
			fmt.Fprintf(&b, ", up %d%% on the previous week's %d", (s.Alerts-prev)*100/prev, prev)
		case s.Alerts < prev:
			fmt.Fprintf(&b, ", down %d%% on the previous week's %d", (prev-s.Alerts)*100/prev, prev)
		default:
			fmt.Fprintf(&b, ", the same as the previous week")
		}
	}
	b.WriteString(". ")
	if s.Exposure.Subjects > 0 {
		fmt.Fprintf(&b, "Flagged access touched %s", plural(int(s.Exposure.Subjects), "customer", "customers"))
		var sens []string
		for _, c := range s.Exposure.Categories {
			if models.SensitiveCategories[c.Name] {
				sens = append(sens, c.Name)
			}
		}
		if n := s.Exposure.SensitiveSubjects(); n > 0 {
			fmt.Fprintf(&b, ", at least %d of them with sensitive data (%s)", n, strings.Join(sens, ", "))
		}
		b.WriteString(". ")
	} else {
		b.WriteString("No customer data was touched by flagged access. ")
	}
	if len(s.TopActors) > 0 {
		a := s.TopActors[0]
		who := a.ActorID
		if a.Vendor != "" {
			who += " (vendor " + a.Vendor + ")"
		}
		if a.ScoreSource == ScoreRisk {
			fmt.Fprintf(&b, "The riskiest actor was %s (risk score %.0f, %s). ", who, a.Score, plural(a.Alerts, "alert", "alerts"))
		} else {
			fmt.Fprintf(&b, "The riskiest actor was %s with %s. ", who, plural(a.Alerts, "alert", "alerts"))
		}
	}
	cp := len(s.ConsentViolations) + len(s.PurposeViolations)
	if cp > 0 || len(s.VendorViolations) > 0 {
		fmt.Fprintf(&b, "There were %s and %s. ", plural(cp, "consent or purpose violation", "consent or purpose violations"),
			plural(len(s.VendorViolations), "vendor access outside contract", "vendor accesses outside contract"))
	} else {
		b.WriteString("No consent, purpose or vendor-scope violation was flagged. ")
	}
	if s.TimeToAcknowledge.N > 0 {
		fmt.Fprintf(&b, "Alerts were acknowledged in %s on average", s.TimeToAcknowledge.Mean)
		if s.TimeToResolve.N > 0 {
			fmt.Fprintf(&b, " and resolved in %s", s.TimeToResolve.Mean)
		}
		b.WriteString(". ")
	}
	fp, reviewed := 0, 0
	for _, n := range s.Noise {
		fp += n.FalsePositives
		reviewed += n.Reviewed
	}
	if reviewed > 0 {
		fmt.Fprintf(&b, "%d of %d reviewed alerts (%d%%) were false positives", fp, reviewed, fp*100/reviewed)
		if fp > 0 && s.Noise[0].FalsePositives > 0 {
			fmt.Fprintf(&b, ", most from %s", s.Noise[0].Detector)
		}
		b.WriteString(".")
	}
	return strings.TrimSpace(b.String())
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Human formats a duration for people: "42s", "14 min", "3.2 h", "2.1 days".
func Human(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	}
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}

// sharedTable joins this week's and last week's totals per (tenant,
// destination): every destination of either week, most records this week
// first.
func sharedTable(now, prev []store.DestinationTotal) []SharedDestination {
	type key struct{ tenant, dest string }
	before := map[key]store.DestinationTotal{}
	for _, p := range prev {
		before[key{p.Tenant, p.Destination}] = p
	}
	var out []SharedDestination
	seen := map[key]bool{}
	for _, d := range now {
		k := key{d.Tenant, d.Destination}
		seen[k] = true
		row := SharedDestination{Tenant: d.Tenant, Destination: d.Destination, Events: d.Events, Records: d.Records,
			Customers: d.Subjects, Actors: d.Actors, Categories: d.Categories}
		if p, ok := before[k]; ok && p.Records > 0 {
			row.PrevRecords, row.PrevCustomers = p.Records, p.Subjects
			row.Change = (float64(d.Records) - float64(p.Records)) / float64(p.Records)
		} else {
			row.New = true
		}
		out = append(out, row)
	}
	for _, p := range prev {
		if k := (key{p.Tenant, p.Destination}); !seen[k] {
			out = append(out, SharedDestination{Tenant: p.Tenant, Destination: p.Destination, PrevRecords: p.Records,
				PrevCustomers: p.Subjects, Change: -1, Categories: []string{}})
		}
	}
	slices.SortStableFunc(out, func(a, b SharedDestination) int {
		return cmp.Or(cmp.Compare(b.Records, a.Records), cmp.Compare(b.PrevRecords, a.PrevRecords),
			cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Destination, b.Destination))
	})
	return out
}
