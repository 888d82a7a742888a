package models

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// Severity ranks findings and alerts. Higher is worse.
type Severity int

// The severities, in increasing order.
const (
	SeverityInfo Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = []string{"info", "low", "medium", "high", "critical"}

// String returns the lower-case name of s.
func (s Severity) String() string {
	if int(s) < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity parses a severity name.
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(n, name) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want one of %v)", name, severityNames)
}

// MarshalText implements encoding.TextMarshaler.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Evidence is what a person needs to check a finding by hand: the numbers
// compared, and the query that reproduces them.
type Evidence struct {
	// Metric names what was measured, e.g. "records per minute".
	Metric string `json:"metric"`
	// Observed is the value in the window.
	Observed float64 `json:"observed"`
	// Baseline is the expected value (a median, a mean or a limit).
	Baseline float64 `json:"baseline"`
	// Spread is the scale the deviation is measured in (MAD, stddev).
	Spread float64 `json:"spread,omitempty"`
	// Threshold is the value the observation had to exceed, where one applies.
	Threshold float64 `json:"threshold,omitempty"`
	// BaselineSource says where the baseline came from: "actor", "peers",
	// "seasonal", "rule", "warming-up".
	BaselineSource string `json:"baseline_source,omitempty"`
	// Peers is the peer group compared with, when the baseline came from it.
	Peers string `json:"peers,omitempty"`
	// PeerCount is how many actors the peer group held.
	PeerCount int `json:"peer_count,omitempty"`
	// TopSubjects are pseudonymized customer ids most involved.
	TopSubjects []string `json:"top_subjects,omitempty"`
	// TopStores are the data stores most involved.
	TopStores []string `json:"top_stores,omitempty"`
	// Categories are the data categories involved.
	Categories []string `json:"categories,omitempty"`
	// Subjects is the number of distinct customers involved.
	Subjects uint64 `json:"subjects,omitempty"`
	// Records is the number of records involved.
	Records uint64 `json:"records,omitempty"`
	// Destinations are the third parties that received data (share and
	// export destinations), for the destination detectors.
	Destinations []string `json:"destinations,omitempty"`
	// PII are the fields of a producer's events that looked like personal
	// data (pii_in_payload), each with its kind and masked value.
	PII []PIIHit `json:"pii,omitempty"`
	// EventIDs are the events behind an event-rule finding.
	EventIDs []string `json:"event_ids,omitempty"`
	// Calls is a conversation's call sequence, the improbable calls marked
	// (conversation_shape).
	Calls []CallStep `json:"calls,omitempty"`
	// Query is the ClickHouse query that reproduces the evidence.
	Query string `json:"query,omitempty"`
	// Notes holds further named numbers (e.g. "z": 7.2).
	Notes map[string]float64 `json:"notes,omitempty"`
}

// CallStep is one tool call of a conversation, as conversation_shape shows
// it: what the call touched and how surprising it was under the bot's model.
type CallStep struct {
	TS         time.Time `json:"ts"`
	Tool       string    `json:"tool"`
	Store      string    `json:"store"`
	Action     string    `json:"action"`
	Categories []string  `json:"categories,omitempty"`
	Records    uint64    `json:"records"`
	// OtherCustomer: the call read a customer the conversation had not
	// touched (other than its authenticated customer).
	OtherCustomer bool `json:"other_customer,omitempty"`
	// Surprise is -ln P of the call given the one before it (nats).
	Surprise float64 `json:"surprise"`
	// Improbable marks the calls that make the conversation anomalous.
	Improbable bool `json:"improbable,omitempty"`
}

// Label is the call in one line: tool, store, action, categories, records.
func (c CallStep) Label() string {
	s := c.Tool
	if s == "" {
		s = "(no tool)"
	}
	s += " " + c.Action + " " + c.Store
	if len(c.Categories) > 0 {
		s += " [" + strings.Join(c.Categories, ",") + "]"
	}
	s += " x" + strconv.FormatUint(c.Records, 10)
	if c.OtherCustomer {
		s += " (another customer)"
	}
	return s
}

// Finding is one detector's verdict that an actor's access in a window looks
// illegitimate.
type Finding struct {
	Detector    string    `json:"detector"`
	Tenant      string    `json:"tenant"`
	ActorID     string    `json:"actor_id"`
	ActorType   ActorType `json:"actor_type,omitempty"`
	ActorRole   string    `json:"actor_role,omitempty"`
	ActorVendor string    `json:"actor_vendor,omitempty"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	// DetectedAt is the (possibly simulated) time the detector ran.
	DetectedAt time.Time `json:"detected_at"`
	// Score is the detector's anomaly score; larger is more anomalous.
	Score float64 `json:"score"`
	// Probability is the tail probability of the observation under the
	// baseline (small is surprising); 0 when the detector is a rule.
	Probability float64  `json:"probability"`
	Severity    Severity `json:"severity"`
	// Summary is a one-line, plain-language headline.
	Summary  string   `json:"summary"`
	Evidence Evidence `json:"evidence"`
	// OpenWindow is set on a finding streaming detection raised on a
	// window still open, covering it up to WindowEnd (its actor's newest
	// event): the window's own finding, when the window closes, confirms
	// it and folds into the same alert.
	OpenWindow bool `json:"open_window,omitempty"`
	// Retract marks a notice, not a finding: the finding of this
	// detector, tenant and actor that streaming detection raised on the
	// open window [WindowStart, WindowEnd) was not confirmed when the
	// window closed. Alerting resolves the alert it opened unless other
	// findings have fed that alert since; it is never stored as a finding.
	Retract bool `json:"retract,omitempty"`
}

// Fingerprint identifies the alert a finding belongs to: one per
// (detector, tenant, actor).
func (f *Finding) Fingerprint() string { return Fingerprint(f.Detector, f.Tenant, f.ActorID) }

// Fingerprint returns the stable hex fingerprint of (detector, tenant, actor).
func Fingerprint(detector, tenant, actor string) string {
	h := fnv.New64a()
	for _, s := range []string{detector, tenant, actor} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}
