// Package detect is chatwarden's detection engine: event rules evaluated per
// event inside ingest, and statistical window detectors evaluated every
// window on ClickHouse's per-actor per-minute aggregates, scored against
// per-actor baselines (hour-of-week seasonal, robust median/MAD, count tail
// probabilities, peer groups, shrinkage-covariance Mahalanobis distance).
//
// Both tiers emit models.Finding values with their evidence in numbers a
// person can check. Time is always an argument: nothing here reads the wall
// clock, which is what lets `chatwarden eval` replay weeks in seconds.
//
// The engine talks to ClickHouse through the small Aggregates interface it
// declares, and hands findings on through the FindingSink function type; cmd
// wires both. docs/detectors.md documents every detector.
package detect
