package models

import "time"

// SuppressionKind says why a pattern is suppressed.
type SuppressionKind string

// The suppression kinds.
const (
	// SuppressAllow is a standing allow-list entry (no expiry needed).
	SuppressAllow SuppressionKind = "allow"
	// SuppressSilence mutes matching findings until it expires.
	SuppressSilence SuppressionKind = "silence"
	// SuppressFalsePositive is a responder's verdict on an alert: detection
	// suppresses and re-baselines exactly that pattern.
	SuppressFalsePositive SuppressionKind = "false_positive"
)

// Suppression mutes findings that match it. An empty matcher field matches
// anything; Until zero means no expiry. Every suppression has an author and
// a reason, and changes are audited.
type Suppression struct {
	ID        string          `json:"id"`
	Kind      SuppressionKind `json:"kind"`
	Tenant    string          `json:"tenant,omitempty"`
	ActorID   string          `json:"actor_id,omitempty"`
	Detector  string          `json:"detector,omitempty"`
	Store     string          `json:"store,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	Until     time.Time       `json:"until,omitempty"`
	Author    string          `json:"author"`
	Reason    string          `json:"reason"`
	// Deleted marks a suppression that was lifted (the row that lifts it).
	Deleted bool `json:"deleted,omitempty"`
}

// Active reports whether s is in force at now.
func (s *Suppression) Active(now time.Time) bool {
	return !s.Deleted && (s.Until.IsZero() || now.Before(s.Until))
}

// Matches reports whether s covers a finding of detector on (tenant, actor)
// touching store (store may be empty when the finding names none).
func (s *Suppression) Matches(detector, tenant, actor, store string) bool {
	return (s.Detector == "" || s.Detector == detector) &&
		(s.Tenant == "" || s.Tenant == tenant) &&
		(s.ActorID == "" || s.ActorID == actor) &&
		(s.Store == "" || s.Store == store)
}

// MatchesEverything reports whether s has no matcher at all: a silence that
// covers every alert, which self-monitoring flags.
func (s *Suppression) MatchesEverything() bool {
	return s.Tenant == "" && s.ActorID == "" && s.Detector == "" && s.Store == ""
}
