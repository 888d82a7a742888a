// Package models holds chatwarden's domain types: the access.v1 and
// consent.v1 events chatbot platforms emit, the findings detectors produce,
// the alerts built from them, and their validation. It is the leaf of the
// dependency graph and imports nothing else from chatwarden; it has no SQL,
// Kafka or Slack types.
package models
