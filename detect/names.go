package detect

import "github.com/chatwarden/chatwarden/models"

// Detector and rule names, as they appear in findings, alerts and config.
const (
	RuleBulkAccess           = "bulk_access"
	RuleBotCrossCustomer     = "bot_cross_customer"
	RuleConversationSubjects = "conversation_subjects"
	RuleConsentWithdrawn     = "consent_withdrawn"
	RulePurposeCategory      = "purpose_category"
	RuleVendorScope          = "vendor_scope"
	RuleVendorNoContract     = "vendor_no_contract"
	RuleDestinationAllowlist = "destination_allowlist"
	RuleConversationShape    = "conversation_shape"

	DetVolumeSpike       = "volume_spike"
	DetEnumeration       = "enumeration"
	DetOffHours          = "off_hours"
	DetFirstSeen         = "first_seen"
	DetNewCountry        = "new_country"
	DetImpossibleTravel  = "impossible_travel"
	DetDeniedBurst       = "denied_burst"
	DetDormant           = "dormant_wake"
	DetPeerDeviation     = "peer_deviation"
	DetDrift             = "drift"
	DetMahalanobis       = "mahalanobis"
	DetSeasonal          = "seasonal_count"
	DetDestinationNew    = "destination_new"
	DetDestinationVolume = "destination_volume"
)

// defaultSeverity is each detector's severity unless config overrides it.
var defaultSeverity = map[string]models.Severity{
	RuleBulkAccess:           models.SeverityHigh,
	RuleBotCrossCustomer:     models.SeverityHigh,
	RuleConversationSubjects: models.SeverityHigh,
	RuleConsentWithdrawn:     models.SeverityHigh,
	RulePurposeCategory:      models.SeverityMedium,
	RuleVendorScope:          models.SeverityHigh,
	RuleVendorNoContract:     models.SeverityLow,
	RuleDestinationAllowlist: models.SeverityHigh,
	RuleConversationShape:    models.SeverityHigh,
	DetDestinationNew:        models.SeverityHigh,
	DetDestinationVolume:     models.SeverityHigh,
	DetVolumeSpike:           models.SeverityHigh,
	DetEnumeration:           models.SeverityHigh,
	DetOffHours:              models.SeverityMedium,
	DetFirstSeen:             models.SeverityMedium,
	DetNewCountry:            models.SeverityMedium,
	DetImpossibleTravel:      models.SeverityHigh,
	DetDeniedBurst:           models.SeverityMedium,
	DetDormant:               models.SeverityHigh,
	DetPeerDeviation:         models.SeverityMedium,
	DetDrift:                 models.SeverityMedium,
	DetMahalanobis:           models.SeverityMedium,
	DetSeasonal:              models.SeverityMedium,
}

// ruleNames are the per-event rules (rules.go, eventRules in table.go), in
// docs/detectors.md's order.
var ruleNames = []string{RuleBulkAccess, RuleBotCrossCustomer, RuleConversationSubjects, RuleConsentWithdrawn,
	RulePurposeCategory, RuleVendorScope, RuleVendorNoContract, RuleDestinationAllowlist, RuleConversationShape}

// detectorNames are the statistical detectors (the window detectors of
// windowDetectors, drift, run on daily counts, and the destination
// detectors, run on each window's shares), in docs/detectors.md's order.
var detectorNames = []string{DetVolumeSpike, DetEnumeration, DetOffHours, DetFirstSeen,
	DetNewCountry, DetImpossibleTravel, DetDeniedBurst, DetDormant, DetPeerDeviation, DetDrift, DetMahalanobis, DetSeasonal,
	DetDestinationNew, DetDestinationVolume}

// KnownDetectors lists every detector and rule name.
func KnownDetectors() []string {
	return append(append([]string(nil), ruleNames...), detectorNames...)
}

// severity returns the configured severity of detector name.
func (c *Config) severity(name string) models.Severity {
	if s, ok := c.Severities[name]; ok {
		return s
	}
	return defaultSeverity[name]
}

// enabled reports whether detector name runs.
func (c *Config) enabled(name string) bool {
	for _, d := range c.Disabled {
		if d == name {
			return false
		}
	}
	return true
}
