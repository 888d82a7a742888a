package detect

import "github.com/chatwarden/chatwarden/models"

// eventRule is one per-event rule: its name (or the first of the names it
// raises) and its check, called on every event of a batch in order. A
// check reports through hit; a stateful one (conversation_shape) may also
// hold findings of its own for Check to collect.
type eventRule struct {
	name  string
	check func(r *Rules, e *models.Event, hit hitFunc)
}

// eventRules are the per-event rules, in the order Rules.Check runs them on
// each event; each check is in rules.go or the file named as the rule
// (destinations.go, conversation_shape.go).
var eventRules = []eventRule{
	{name: RuleBulkAccess, check: (*Rules).checkBulk},
	{name: RuleBotCrossCustomer, check: (*Rules).checkConversation}, // and conversation_subjects
	{name: RuleConsentWithdrawn, check: (*Rules).checkConsent},
	{name: RulePurposeCategory, check: (*Rules).checkPurpose},
	{name: RuleVendorScope, check: (*Rules).checkVendor}, // and vendor_no_contract
	{name: RuleDestinationAllowlist, check: (*Rules).checkDestination},
	{name: RuleConversationShape, check: (*Rules).checkShape},
}

// windowDetector is one detector run on each actor's window: its name (as
// findings, config and docs/detectors.md name it) and its check. A check
// reads the window through x and returns a finding when it fires.
type windowDetector struct {
	name  string
	check func(e *Engine, x *rowCtx) (models.Finding, bool)
	// alone runs the check only when no detector before it fired for the
	// actor in the window (it sees combinations the others do not).
	alone bool
}

// windowDetectors are the window detectors, in the order detectRow runs
// them; each detector's check is in the file named as the detector
// (volume_spike.go, ...), what they share in detectors.go. The count
// detectors (enumeration's hour and day, drift) run on the actor's hourly
// and daily counts instead (engine.go calls them); the per-event rules are
// in rules.go. TestDocsListEveryDetector holds docs/detectors.md to
// ruleNames and detectorNames.
var windowDetectors = []windowDetector{
	{name: DetVolumeSpike, check: (*Engine).detectVolume},
	{name: DetEnumeration, check: (*Engine).detectEnumWindow},
	{name: DetOffHours, check: (*Engine).detectOffHours},
	{name: DetFirstSeen, check: (*Engine).detectFirstSeen},
	{name: DetNewCountry, check: (*Engine).detectNewCountry},
	{name: DetImpossibleTravel, check: (*Engine).detectTravel},
	{name: DetDeniedBurst, check: (*Engine).detectDenied},
	{name: DetDormant, check: (*Engine).detectDormant},
	{name: DetPeerDeviation, check: (*Engine).detectPeer},
	{name: DetSeasonal, check: (*Engine).detectSeasonal},
	{name: DetMahalanobis, check: (*Engine).detectMahalanobis, alone: true},
}
