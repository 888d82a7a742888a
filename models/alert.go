package models

import "time"

// AlertStatus is where an alert is in its life.
type AlertStatus string

// The alert statuses.
const (
	StatusOpen          AlertStatus = "open"
	StatusAcknowledged  AlertStatus = "acknowledged"
	StatusEscalated     AlertStatus = "escalated"
	StatusResolved      AlertStatus = "resolved"
	StatusFalsePositive AlertStatus = "false_positive"
	StatusSilenced      AlertStatus = "silenced"
)

// AlertStatuses lists every status.
var AlertStatuses = []AlertStatus{StatusOpen, StatusAcknowledged, StatusEscalated, StatusResolved, StatusFalsePositive, StatusSilenced}

// Alert is what a person is told about: the findings of one fingerprint
// (detector, tenant, actor), grouped and deduplicated.
type Alert struct {
	ID          string      `json:"id"`
	Fingerprint string      `json:"fingerprint"`
	Detector    string      `json:"detector"`
	Tenant      string      `json:"tenant"`
	ActorID     string      `json:"actor_id"`
	ActorType   ActorType   `json:"actor_type,omitempty"`
	Severity    Severity    `json:"severity"`
	Status      AlertStatus `json:"status"`
	FirstSeen   time.Time   `json:"first_seen"`
	LastSeen    time.Time   `json:"last_seen"`
	// Findings counts the findings folded into the alert.
	Findings int `json:"findings"`
	// Latest is the most recent finding, whose evidence the message shows.
	Latest Finding `json:"latest"`
	// UpdatedAt is when the status last changed; UpdatedBy who changed it.
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by,omitempty"`
}
