package models

import (
	"net/netip"
	"time"
)

// ActorType says what kind of principal accessed the data.
type ActorType string

// The actor types of access.v1.
const (
	ActorHuman   ActorType = "human"
	ActorBot     ActorType = "bot"
	ActorService ActorType = "service"
	ActorVendor  ActorType = "vendor"
	ActorAdmin   ActorType = "admin"
)

// ActorTypes lists every valid ActorType.
var ActorTypes = []ActorType{ActorHuman, ActorBot, ActorService, ActorVendor, ActorAdmin}

// Action is what the actor did to the data.
type Action string

// The actions of access.v1.
const (
	ActionRead   Action = "read"
	ActionSearch Action = "search"
	ActionList   Action = "list"
	ActionExport Action = "export"
	ActionUpdate Action = "update"
	ActionDelete Action = "delete"
	ActionShare  Action = "share"
	ActionLogin  Action = "login"
)

// Actions lists every valid Action.
var Actions = []Action{ActionRead, ActionSearch, ActionList, ActionExport, ActionUpdate, ActionDelete, ActionShare, ActionLogin}

// Result is the outcome of the access.
type Result string

// The results of access.v1.
const (
	ResultAllowed Result = "allowed"
	ResultDenied  Result = "denied"
	ResultError   Result = "error"
)

// Results lists every valid Result.
var Results = []Result{ResultAllowed, ResultDenied, ResultError}

// DefaultTenant is the tenant of an event that names none.
const DefaultTenant = "default"

// Actor is who accessed the data.
type Actor struct {
	ID     string    `json:"id"`
	Type   ActorType `json:"type"`
	Role   string    `json:"role,omitempty"`
	Vendor string    `json:"vendor,omitempty"`
}

// Resource is the record that was accessed.
type Resource struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

// Conversation is the chatbot conversation in whose context an access
// happened, with the customer authenticated in it.
type Conversation struct {
	ID        string `json:"id,omitempty"`
	SubjectID string `json:"subject_id,omitempty"`
}

// Client is where the access came from.
type Client struct {
	IP        string `json:"ip,omitempty"`
	Country   string `json:"country,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

// Event is one access.v1 event: one access by one actor to one data store.
//
// After ingest, SubjectID, Conversation.SubjectID and Resource.ID hold keyed
// HMAC pseudonyms, never the raw identifiers.
type Event struct {
	EventID      string       `json:"event_id"`
	TS           time.Time    `json:"ts"`
	Tenant       string       `json:"tenant,omitempty"`
	Actor        Actor        `json:"actor"`
	Action       Action       `json:"action"`
	Store        string       `json:"store"`
	Resource     Resource     `json:"resource"`
	SubjectID    string       `json:"subject_id,omitempty"`
	Records      uint64       `json:"records"`
	Bytes        uint64       `json:"bytes,omitempty"`
	Fields       []string     `json:"fields,omitempty"`
	Purpose      string       `json:"purpose,omitempty"`
	Conversation Conversation `json:"conversation,omitempty"`
	Tool         string       `json:"tool,omitempty"`
	Result       Result       `json:"result,omitempty"`
	Client       Client       `json:"client,omitempty"`
	// Destination is the organisation, vendor or domain that received the
	// data of a share or export (a third party); empty for every other
	// action and for an export that stays in house.
	Destination string `json:"destination,omitempty"`
}

// IsExport reports whether the event moves data out in bulk (export or share).
func (e *Event) IsExport() bool { return e.Action == ActionExport || e.Action == ActionShare }

// Shared reports whether the event sent data to a named third party: a
// share or export with a destination.
func (e *Event) Shared() bool { return e.Destination != "" && e.IsExport() }

// Denied reports whether the access was refused.
func (e *Event) Denied() bool { return e.Result == ResultDenied }

// Consent is one consent.v1 event: a customer granting or withdrawing consent
// for one purpose. The latest event per (tenant, subject, purpose) wins.
type Consent struct {
	EventID   string    `json:"event_id,omitempty"`
	TS        time.Time `json:"ts"`
	Tenant    string    `json:"tenant,omitempty"`
	SubjectID string    `json:"subject_id"`
	Purpose   string    `json:"purpose"`
	Granted   bool      `json:"granted"`
}

// Known data categories. Other categories are accepted and stored as given.
const (
	CategoryEmail          = "email"
	CategoryPhone          = "phone"
	CategoryAddress        = "address"
	CategoryPayment        = "payment"
	CategoryGovernmentID   = "government_id"
	CategoryHealth         = "health"
	CategoryDOB            = "dob"
	CategoryTranscriptText = "transcript_text"
	CategoryName           = "name"
	CategoryOrderHistory   = "order_history"
)

// SensitiveCategories are the data categories whose exposure weighs most in
// detection and reports.
var SensitiveCategories = map[string]bool{
	CategoryPayment:      true,
	CategoryGovernmentID: true,
	CategoryHealth:       true,
	CategoryDOB:          true,
}

// validIP reports whether s parses as an IPv4 or IPv6 address.
func validIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
