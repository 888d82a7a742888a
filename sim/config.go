package sim

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Attack kinds, as written in Label.Kind.
const (
	KindBulkExport                = "bulk_export"
	KindSlowEnumeration           = "slow_enumeration"
	KindBotCrossCustomer          = "bot_cross_customer"
	KindConversationManyCustomers = "conversation_many_customers"
	KindDeniedBurst               = "denied_burst"
	KindConsentViolation          = "consent_violation"
	KindPurposeViolation          = "purpose_violation"
	KindVendorOutOfScope          = "vendor_out_of_scope"
	KindVolumeSpike               = "volume_spike"
	KindOffHours                  = "off_hours"
	KindRareSensitiveCategory     = "rare_sensitive_category"
	KindNewCountry                = "new_country"
	KindImpossibleTravel          = "impossible_travel"
	KindDormantWakeup             = "dormant_wakeup"
	KindPeerDeviation             = "peer_deviation"
	KindSlowDrift                 = "slow_drift"
	KindMultivariate              = "multivariate"
	KindShareNewDestination       = "share_new_destination"
	KindShareVolume               = "share_volume"
	KindShareOutsideAllowlist     = "share_outside_allowlist"
	// conversation attacks (conversations.go): KindInjectionOneShot,
	// KindInjectionSlow, KindInjectionDisguised
)

// AttackKinds lists every attack kind the generator can inject.
var AttackKinds = []string{
	KindBulkExport, KindSlowEnumeration, KindBotCrossCustomer, KindConversationManyCustomers,
	KindDeniedBurst, KindConsentViolation, KindPurposeViolation, KindVendorOutOfScope,
	KindVolumeSpike, KindOffHours, KindRareSensitiveCategory, KindNewCountry, KindImpossibleTravel,
	KindDormantWakeup, KindPeerDeviation, KindSlowDrift, KindMultivariate,
	KindShareNewDestination, KindShareVolume,
	KindInjectionOneShot, KindInjectionSlow, KindInjectionDisguised,
	// last: the kinds before it are planned as they were without it
	KindShareOutsideAllowlist,
}

// Hard-negative names; their labels have kind NegativePrefix+name.
const (
	NegativePrefix    = "negative:"
	NegPromotionDay   = "promotion_day"
	NegNewHire        = "new_hire"
	NegEveningShift   = "evening_shift"
	NegBackFromLeave  = "back_from_leave"
	NegMonthEndBatch  = "month_end_batch"
	NegDaylightSaving = "dst_change"
	// sharing (shares.go)
	NegFirstShareKnown    = "first_share_known_destination"
	NegDestinationRollout = "destination_rollout"
	NegCampaignExport     = "campaign_export"
	negAllActorsOfTenant  = "*"
)

// NegativeKinds lists every hard negative.
var NegativeKinds = []string{NegPromotionDay, NegNewHire, NegEveningShift, NegBackFromLeave, NegMonthEndBatch, NegDaylightSaving,
	NegFirstShareKnown, NegDestinationRollout, NegCampaignExport, NegToolRollout, NegLongConversation}

// DefaultStart is the default first instant: a Monday, so that 14 days
// span the European (2026-10-25) and US (2026-11-01) daylight-saving
// changes and a month end (2026-10-31).
var DefaultStart = time.Date(2026, 10, 19, 0, 0, 0, 0, time.UTC)

// Config describes one simulated run. The zero value of each field takes
// its default.
type Config struct {
	// Seed makes the run reproducible: the same Config gives the same bytes.
	Seed uint64
	// Start is the first simulated instant (default DefaultStart),
	// truncated to the minute.
	Start time.Time
	// Duration is the simulated span (default 14 days).
	Duration time.Duration
	// Actors is the approximate number of actors over all tenants (default 120).
	Actors int
	// Tenants names the tenants (default "default" and "brand-b").
	Tenants []string
	// Customers is the number of customers per tenant (default 40,000).
	Customers int
	// Attacks lists the attack kinds to inject (nil: none).
	Attacks []string
	// AttacksPerKind is how many times each attack kind occurs (default 4;
	// dormant_wakeup and slow_drift at most 3).
	AttacksPerKind int
	// HardNegatives turns on every hard-negative scenario.
	HardNegatives bool
	// RateScale multiplies every actor's activity rate (default 1).
	RateScale float64
	// Compact plans attacks for a live demo instead of a long replay: one of
	// each kind, back to back from Start+Warmup, every AttackEvery, each at
	// most 8 minutes long; kinds that need days (slow_drift,
	// dormant_wakeup) are skipped.
	Compact bool
	// Warmup is how long compact mode waits before the first attack (default 2 min).
	Warmup time.Duration
	// AttackEvery is the spacing of compact-mode attacks (default 1 min).
	AttackEvery time.Duration
	// NoVendors leaves out the vendor agents (and so vendor attacks).
	NoVendors bool
	// SparseShare is the share of support agents who work one fixed
	// weekday a week (default 0).
	SparseShare float64
	// PayloadPII makes two producers write personal data into resource
	// ids for a few minutes (a card number in the orders store's, an
	// e-mail address in the CRM's), labelled payload_pii with the store as
	// the actor (payloadpii.go). Off by default: ingest rejects such lines.
	PayloadPII bool
	// Zones gives each tenant, in order, the IANA time zone of its
	// customers and in-house staff (default: Europe/Berlin and
	// America/New_York alternating for customers, staff by role).
	Zones []string
}

var tenantRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// withDefaults returns c with defaults filled in.
func (c Config) withDefaults() Config {
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	c.Start = c.Start.UTC().Truncate(time.Minute)
	if c.Duration <= 0 {
		c.Duration = 14 * 24 * time.Hour
	}
	if c.Actors <= 0 {
		c.Actors = 120
	}
	if len(c.Tenants) == 0 {
		c.Tenants = []string{"default", "brand-b"}
	}
	if c.Customers <= 0 {
		c.Customers = 40000
	}
	if c.AttacksPerKind <= 0 {
		c.AttacksPerKind = 4
	}
	if c.RateScale <= 0 {
		c.RateScale = 1
	}
	if c.Warmup <= 0 {
		c.Warmup = 2 * time.Minute
	}
	if c.AttackEvery <= 0 {
		c.AttackEvery = time.Minute
	}
	return c
}

// Validate checks the configuration and names the bad field.
func (c Config) Validate() error {
	var errs []error
	for _, t := range c.Tenants {
		if !tenantRE.MatchString(t) {
			errs = append(errs, fmt.Errorf("tenants: %q must match %s", t, tenantRE))
		}
	}
	if len(c.Tenants) > 16 {
		errs = append(errs, fmt.Errorf("tenants: %d tenants, at most 16", len(c.Tenants)))
	}
	if c.Actors < 0 || c.Actors > 100000 {
		errs = append(errs, fmt.Errorf("actors: %d is not within 1..100000", c.Actors))
	}
	if c.Customers < 0 || c.Customers > 10_000_000 {
		errs = append(errs, fmt.Errorf("customers: %d is not within 1..10000000", c.Customers))
	}
	if c.RateScale < 0 || c.RateScale > 1000 {
		errs = append(errs, fmt.Errorf("rate_scale: %g is not within 0..1000", c.RateScale))
	}
	for _, k := range c.Attacks {
		if !slices.Contains(AttackKinds, k) {
			errs = append(errs, fmt.Errorf("attacks: unknown kind %q (known: %s)", k, strings.Join(AttackKinds, ", ")))
		}
	}
	if c.Duration < 0 {
		errs = append(errs, errors.New("duration: negative"))
	}
	if c.SparseShare < 0 || c.SparseShare > 1 {
		errs = append(errs, fmt.Errorf("sparse_share: %g is not within 0..1", c.SparseShare))
	}
	if len(c.Zones) > 0 && len(c.Zones) != max(1, len(c.Tenants)) && len(c.Tenants) > 0 {
		errs = append(errs, fmt.Errorf("zones: %d zones for %d tenants", len(c.Zones), len(c.Tenants)))
	}
	for _, z := range c.Zones {
		if _, err := time.LoadLocation(z); err != nil || z == "" {
			errs = append(errs, fmt.Errorf("zones: %q is not an IANA time zone", z))
		}
	}
	return errors.Join(errs...)
}

// ParseAttacks turns a comma list, "all" or "none" into attack kinds.
func ParseAttacks(s string) ([]string, error) {
	switch strings.TrimSpace(s) {
	case "", "none":
		return nil, nil
	case "all":
		return slices.Clone(AttackKinds), nil
	}
	var out []string
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if !slices.Contains(AttackKinds, k) {
			return nil, fmt.Errorf("unknown attack kind %q (known: all, none, %s)", k, strings.Join(AttackKinds, ", "))
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}
