// Package drills holds chatwarden's fault drills: tests (build tag
// "drills", run by `make drills`) that run the real chatwarden binary
// against a Kafka broker and a ClickHouse server of their own (under
// .stack-drills/, ports 19092/19093/19000/18123, never the shared stack),
// inject a fault — a SIGKILL, a stopped broker or server, a full or
// read-only ClickHouse disk, a failing Slack — and then check the same
// invariants: every valid event stored exactly once, every malformed one
// dead-lettered with its reason, no alert lost, no Slack message posted
// twice, and the process recovered by itself or exited with a clear error
// and recovered on restart. Each drill records its figures; the table is
// printed at the end and written to .stack-drills/drills.md
// (docs/reliability.md explains it).
package drills
