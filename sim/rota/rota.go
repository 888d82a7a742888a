// Package rota generates labelled contact-centre traffic from a model
// written independently of package sim's: a second opinion on whether the
// detectors generalise, not a variant of the traffic they were tuned on.
//
// Where sim gives every actor its own rate on office shifts and draws
// customers from a Zipf law, rota is demand driven:
//
//   - Human agents work a 24/7 rota of early, late and night slots (06-14,
//     14-22, 22-06 in the tenant's time zone) on a four-on, four-off cycle, so
//     their working days drift through the week; each works contact after
//     contact (ticket, profile, orders, transcript, ticket update), with
//     breaks, at a personal speed.
//   - Virtual agents are one identity per channel (web, app, voice) serving
//     the tenant's conversation demand, each channel with its own daily
//     curve; every conversation makes two to four tool calls for its own
//     authenticated customer.
//   - Customers are not Zipf-popular: a contact is either a one-off customer
//     drawn uniformly from the tenant's base, or one of a small set of open
//     cases that changes every three days and recurs until it closes.
//   - A sync service lists sessions every five minutes around the clock; a
//     reporting service exports once a week; team leads keep office hours;
//     a campaign manager pulls consented segments; optionally a vendor's
//     outsourced agents work their own contracted hours in Manila, and
//     sparse actors (QA reviewers) work one fixed weekday.
//   - Consent grants and withdrawals arrive every day.
//   - Data leaves for four processors (shares.go): agents' delivery claims
//     to a parcel carrier, virtual agents' transcripts to a translation
//     service, the sync service's hourly warehouse export, the campaign
//     manager's daily mailing list.
//
// Attacks of the same kinds as sim's (label kinds are the same strings) are
// implemented here from scratch (with share_outside_allowlist, which sim
// lacks), and hard negatives (a demand surge, a rota swap, a new hire, a
// return from leave, the weekly report, a new translation service rolled
// out tenant-wide, a month-end close to the data warehouse) are labelled
// "negative:<name>". Output is access.v1 and consent.v1 JSON lines in time
// order, with raw customer ids (the replay pseudonymizes them).
package rota

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Label marks one attack, or a hard negative (kind "negative:<name>"), by
// one actor ("*": every actor of the tenant) in [Start, End]. Its JSON is
// the labels format `chatwarden eval` reads.
type Label struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Tenant  string    `json:"tenant"`
	ActorID string    `json:"actor_id"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
}

// Attack kinds (the same strings as package sim's label kinds, so one
// scorer reads both).
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
	KindNewCountry                = "new_country"
	KindImpossibleTravel          = "impossible_travel"
	KindDormantWakeup             = "dormant_wakeup"
	KindSlowDrift                 = "slow_drift"
)

// AttackKinds lists every attack kind rota can inject.
var AttackKinds = []string{
	KindBulkExport, KindSlowEnumeration, KindBotCrossCustomer, KindConversationManyCustomers,
	KindDeniedBurst, KindConsentViolation, KindPurposeViolation, KindVendorOutOfScope,
	KindVolumeSpike, KindOffHours, KindNewCountry, KindImpossibleTravel, KindDormantWakeup, KindSlowDrift,
	// third-party sharing (shares.go), last: the kinds before draw as
	// they did before sharing
	KindShareNewDestination, KindShareOutsideAllowlist, KindShareVolume,
	// prompt injection (conversations.go), after sharing for the same reason
	KindInjectionOneShot, KindInjectionSlow, KindInjectionDisguised,
}

// Hard negatives; their labels have kind NegativePrefix+name.
const (
	NegativePrefix = "negative:"
	NegSurge       = "demand_surge"
	NegRotaSwap    = "rota_swap"
	NegNewHire     = "new_hire"
	NegBackFromOff = "back_from_leave"
	NegWeeklyPull  = "weekly_report"
)

// Tenant is one business unit: its name, the time zone its customers and
// in-house staff live in, and the country they connect from.
type Tenant struct {
	Name    string
	Zone    string
	Country string
}

// DefaultTenants are two tenants, one in Europe and one in the Americas.
var DefaultTenants = []Tenant{{"default", "Europe/Amsterdam", "NL"}, {"brand-b", "America/Chicago", "US"}}

// DefaultStart is the default first instant (a Tuesday, midnight UTC).
var DefaultStart = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)

// Config describes one run. Zero fields take their defaults.
type Config struct {
	// Seed makes the run reproducible.
	Seed uint64
	// Start is the first instant (default DefaultStart), truncated to the minute.
	Start time.Time
	// Duration is the simulated span (default 14 days).
	Duration time.Duration
	// Actors is the approximate number of actors over all tenants (default 100).
	Actors int
	// Tenants (default DefaultTenants).
	Tenants []Tenant
	// Customers per tenant (default 200,000).
	Customers int
	// NoVendors leaves out the outsourced vendor agents.
	NoVendors bool
	// SparseShare is the share of human agents replaced by actors who work
	// one fixed weekday (default 0).
	SparseShare float64
	// RateScale multiplies contact demand and working speed (default 1).
	RateScale float64
	// Attacks turns on every attack kind that fits the span.
	Attacks bool
	// HardNegatives turns on the hard-negative scenarios.
	HardNegatives bool
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func (c Config) withDefaults() Config {
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	c.Start = c.Start.UTC().Truncate(time.Minute)
	if c.Duration <= 0 {
		c.Duration = 14 * 24 * time.Hour
	}
	if c.Actors <= 0 {
		c.Actors = 100
	}
	if len(c.Tenants) == 0 {
		c.Tenants = DefaultTenants
	}
	if c.Customers <= 0 {
		c.Customers = 200000
	}
	if c.RateScale <= 0 {
		c.RateScale = 1
	}
	return c
}

// Validate checks c and names the bad field.
func (c Config) Validate() error {
	var errs []error
	for i, t := range c.Tenants {
		if !nameRE.MatchString(t.Name) {
			errs = append(errs, fmt.Errorf("tenants[%d].name: %q must match %s", i, t.Name, nameRE))
		}
		if _, err := time.LoadLocation(t.Zone); err != nil || t.Zone == "" {
			errs = append(errs, fmt.Errorf("tenants[%d].zone: %q is not an IANA time zone", i, t.Zone))
		}
		if len(t.Country) != 2 {
			errs = append(errs, fmt.Errorf("tenants[%d].country: %q is not a two-letter code", i, t.Country))
		}
	}
	if len(c.Tenants) > 8 {
		errs = append(errs, fmt.Errorf("tenants: %d, at most 8", len(c.Tenants)))
	}
	if c.Actors < 0 || c.Actors > 20000 {
		errs = append(errs, fmt.Errorf("actors: %d is not within 1..20000", c.Actors))
	}
	if c.Customers < 0 || c.Customers > 50_000_000 {
		errs = append(errs, fmt.Errorf("customers: %d is not within 1..50000000", c.Customers))
	}
	if c.SparseShare < 0 || c.SparseShare > 0.9 {
		errs = append(errs, fmt.Errorf("sparse_share: %g is not within 0..0.9", c.SparseShare))
	}
	if c.RateScale < 0 || c.RateScale > 100 {
		errs = append(errs, fmt.Errorf("rate_scale: %g is not within 0..100", c.RateScale))
	}
	if c.Duration < 0 || c.Duration > 400*24*time.Hour {
		errs = append(errs, errors.New("duration: not within 0..400 days"))
	}
	return errors.Join(errs...)
}

// VendorContract is what the model's vendor is allowed: the contract a
// deployment would configure for it (detect.rules.vendors).
type VendorContract struct {
	Name       string
	Stores     []string
	Categories []string
	Hours      string // HH:MM-HH:MM in TimeZone
	Days       []string
	TimeZone   string
	Country    string
}

// Vendor is the contract of the model's outsourced agents.
var Vendor = VendorContract{
	Name:       "northwind-care",
	Stores:     []string{"tickets", "crm", "orders", "transcripts"},
	Categories: []string{"name", "email", "phone", "order_history", "transcript_text"},
	Hours:      "07:00-20:00",
	Days:       []string{"mon", "tue", "wed", "thu", "fri", "sat"},
	TimeZone:   "Asia/Manila",
	Country:    "PH",
}
