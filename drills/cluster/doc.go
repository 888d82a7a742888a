// Package cluster holds the fault drills of the local ClickHouse cluster
// (build tag "drills", run by `make drills-cluster` on the cluster that
// `make stack-cluster` started, never the shared stack): a fault is injected
// into ZooKeeper or a ClickHouse node while batches are inserted the way
// ingest inserts them, and the invariants are checked afterwards: every
// event stored exactly once and the replicas of each shard converged.
// docs/scaling.md lists the drills and their last results.
package cluster
