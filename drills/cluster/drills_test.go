//go:build drills

package cluster_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// repoRoot is the repository's top folder (this file is drills/cluster/).
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot find the repository")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// clusterEnv reads the cluster's name and nodes from `stack.sh cluster-env`.
func clusterEnv(t *testing.T) (name string, addrs []string, dir string) {
	t.Helper()
	root := repoRoot(t)
	cmd := exec.Command("bash", filepath.Join(root, "scripts/stack.sh"), "cluster-status")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the local cluster must be running (make stack-cluster): %v\n%s", err, out)
	}
	out, err := exec.Command("bash", filepath.Join(root, "scripts/stack.sh"), "cluster-env").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		switch k {
		case "CHATWARDEN_CLUSTER_NAME":
			name = v
		case "CHATWARDEN_CLUSTER_ADDRS":
			addrs = strings.Split(v, ",")
		}
	}
	dir = os.Getenv("CHATWARDEN_CLUSTER_DIR")
	if dir == "" {
		dir = filepath.Join(root, ".stack-cluster")
	}
	if name == "" || len(addrs) != 4 {
		t.Fatalf("stack.sh cluster-env: name %q, nodes %v: want 4 nodes", name, addrs)
	}
	return name, addrs, dir
}

// killNode sends SIGKILL to ClickHouse node n of the local cluster (its
// pid file was written by stack.sh when it started the node).
func killNode(t *testing.T, dir string, n int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("ch%d", n), "clickhouse.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL node %d (pid %d): %v", n, pid, err)
	}
}

func startNode(t *testing.T, n int) {
	t.Helper()
	stackCmd(t, "cluster-node-start", strconv.Itoa(n))
}

func drillBatch(i, n int, base time.Time) []models.Event {
	evs := make([]models.Event, n)
	for j := range evs {
		evs[j] = models.Event{EventID: fmt.Sprintf("k%d-%d", i, j), TS: base.Add(time.Duration(i*n+j) * time.Second),
			Tenant: []string{"t1", "t2"}[j%2], Actor: models.Actor{ID: fmt.Sprintf("agent-%d", j%41), Type: models.ActorHuman},
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"},
			SubjectID: fmt.Sprintf("s%d", j%97), Records: 1, Result: models.ResultAllowed}
	}
	return evs
}

// TestDrillClusterReplicaKill: batches of 500 events are inserted through
// the Distributed table without pause, each retried as ingest retries it
// (the same events, the same ingestedAt) until it is stored. Node 2 (the
// second replica of shard 1) and node 3 (the first replica of shard 2, where
// shard 2's inserts go) are killed with SIGKILL, kept down for 40 s (past
// ZooKeeper's 30 s session timeout) while the batches go on, and restarted.
// Afterwards: every event stored exactly once (count = distinct ids = sent)
// and both replicas of each shard hold the same rows.
func TestDrillClusterReplicaKill(t *testing.T) {
	cfg, addrs, dir := drillStore(t)
	w := startWriter(t, storetest.Open(t, cfg), 3*time.Minute)
	w.waitSent(10 * drillSize)
	killNode(t, dir, 2)
	killNode(t, dir, 3)
	killedAt, sentAtKill := time.Now(), w.sent.Load()
	t.Logf("SIGKILL nodes 2 and 3 after %d events", sentAtKill)
	time.Sleep(40 * time.Second)
	sentWhileDown := w.sent.Load() - sentAtKill
	startNode(t, 2)
	startNode(t, 3)
	t.Logf("nodes 2 and 3 restarted %.0f s after the kill; %d events stored meanwhile", time.Since(killedAt).Seconds(), sentWhileDown)
	w.waitSent(w.sent.Load() + 10*drillSize)
	w.stopAndWait()
	total := uint64(w.sent.Load())

	perNode, all, distinct, convergedAfter := checkStoredOnce(t, cfg, addrs, total)
	t.Logf("RESULT replica_kill: sent=%d stored=%d distinct=%d lost=%d duplicated=%d retried_inserts=%d stored_while_down=%d per_node=%v converged_after_s=%.1f",
		total, all, distinct, int64(total)-int64(distinct), int64(all)-int64(distinct), w.retries.Load(), sentWhileDown, perNode, convergedAfter.Seconds())
}

// TestDrillClusterZooKeeperStop: ZooKeeper is stopped for 30 s while
// batches are inserted. The replicated tables turn read-only, inserts fail
// and are retried (the same batch each time); once ZooKeeper is back they
// resume. Afterwards: every event stored exactly once and the replicas of
// each shard hold the same rows.
func TestDrillClusterZooKeeperStop(t *testing.T) {
	cfg, addrs, _ := drillStore(t)
	w := startWriter(t, storetest.Open(t, cfg), 4*time.Minute)
	w.waitSent(10 * drillSize)
	stackCmd(t, "zk-stop")
	stoppedAt, sentAtStop := time.Now(), w.sent.Load()
	time.Sleep(30 * time.Second)
	sentWhileDown := w.sent.Load() - sentAtStop
	stackCmd(t, "zk-start")
	startedAt, sentAtStart := time.Now(), w.sent.Load()
	w.waitSent(sentAtStart + 1)
	resumedAfter := time.Since(startedAt)
	t.Logf("ZooKeeper down %.0f s; %d events stored meanwhile; inserts resumed %.1f s after it started", startedAt.Sub(stoppedAt).Seconds(), sentWhileDown, resumedAfter.Seconds())
	w.waitSent(w.sent.Load() + 10*drillSize)
	w.stopAndWait()
	total := uint64(w.sent.Load())

	perNode, all, distinct, convergedAfter := checkStoredOnce(t, cfg, addrs, total)
	t.Logf("RESULT zookeeper_stop: sent=%d stored=%d distinct=%d lost=%d duplicated=%d retried_inserts=%d stored_while_down=%d resumed_after_s=%.1f per_node=%v converged_after_s=%.1f",
		total, all, distinct, int64(total)-int64(distinct), int64(all)-int64(distinct), w.retries.Load(), sentWhileDown,
		resumedAfter.Seconds(), perNode, convergedAfter.Seconds())
}

// drillStore returns the configuration of a fresh database on the local
// cluster (storetest.Open migrates it and drops it at the end), the nodes'
// addresses and the cluster's folder.
func drillStore(t *testing.T) (store.Config, []string, string) {
	t.Helper()
	name, addrs, dir := clusterEnv(t)
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	// DROP DATABASE ON CLUSTER of 270,000 events took over 30 s here.
	return store.Config{Addr: addrs[0], Database: "drill_" + hex.EncodeToString(b), Cluster: name, QueryTimeout: 3 * time.Minute}, addrs, dir
}

// stackCmd runs scripts/stack.sh SUB (zk-stop, zk-start, ...) on the
// local cluster.
func stackCmd(t *testing.T, sub string, args ...string) {
	t.Helper()
	out, err := exec.Command("bash", append([]string{filepath.Join(repoRoot(t), "scripts/stack.sh"), sub}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("stack.sh %s: %v\n%s", sub, err, out)
	}
}

func eventIDs(evs []models.Event) []string {
	ids := make([]string, len(evs))
	for i := range evs {
		ids[i] = evs[i].EventID
	}
	return ids
}

// TestDrillClusterShardDown: shard 2 (nodes 3 and 4, both replicas) is
// stopped for 60 s while batches of events of both shards are inserted the
// way ingest stores them (the event ids already stored dropped, then the
// insert, each failure retried). Ingest for shard 1 must go on meanwhile
// (node 1's events_local grows while shard 2 is down) and, once shard 2 is
// back, every event is stored exactly once and the replicas converge.
func TestDrillClusterShardDown(t *testing.T) {
	cfg, addrs, _ := drillStore(t)
	w := startWriter(t, storetest.Open(t, cfg), 4*time.Minute)
	w.waitSent(10 * drillSize)
	node1 := store.Config{Addr: addrs[0], Database: cfg.Database}
	stackCmd(t, "cluster-node-stop", "3")
	stackCmd(t, "cluster-node-stop", "4")
	stoppedAt, sentAtStop := time.Now(), w.sent.Load()
	shard1AtStop := storetest.Count(t, node1, "SELECT count() FROM events_local")
	t.Logf("shard 2 (nodes 3 and 4) stopped after %d events", sentAtStop)
	time.Sleep(60 * time.Second)
	sentWhileDown := w.sent.Load() - sentAtStop
	shard1WhileDown := storetest.Count(t, node1, "SELECT count() FROM events_local") - shard1AtStop
	startNode(t, 3)
	startNode(t, 4)
	startedAt, sentAtStart := time.Now(), w.sent.Load()
	w.waitSent(sentAtStart + 1)
	t.Logf("shard 2 down %.0f s: %d events acknowledged and %d rows written to shard 1 meanwhile",
		startedAt.Sub(stoppedAt).Seconds(), sentWhileDown, shard1WhileDown)
	w.waitSent(w.sent.Load() + 10*drillSize)
	w.stopAndWait()
	total := uint64(w.sent.Load())

	perNode, all, distinct, convergedAfter := checkStoredOnce(t, cfg, addrs, total)
	t.Logf("RESULT shard_down: sent=%d stored=%d distinct=%d lost=%d duplicated=%d retried_inserts=%d acknowledged_while_down=%d shard1_rows_while_down=%d per_node=%v converged_after_s=%.1f",
		total, all, distinct, int64(total)-int64(distinct), int64(all)-int64(distinct), w.retries.Load(), sentWhileDown, shard1WhileDown,
		perNode, convergedAfter.Seconds())
	if shard1WhileDown == 0 {
		t.Errorf("nothing was written to shard 1 while shard 2 was down: ingest waited for the dead shard")
	}
}

// drillSize is the events of one batch.
const drillSize = 500

// writer inserts batches of drillSize events through the Distributed table
// without pause, each retried as ingest retries it (the same events, the
// same ingestedAt, only errors store.IsRetryable accepts) until it is
// stored or patience runs out.
type writer struct {
	sent, retries atomic.Int64
	stop          chan struct{}
	done          chan error
	t             *testing.T
}

func startWriter(t *testing.T, s *store.Store, patience time.Duration) *writer {
	t.Helper()
	w := &writer{stop: make(chan struct{}), done: make(chan error, 1), t: t}
	ctx := t.Context()
	base := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				w.done <- nil
				return
			default:
			}
			evs := drillBatch(i, drillSize, base)
			at := base.Add(time.Duration(i) * time.Minute)
			deadline := time.Now().Add(patience)
			for {
				// As ingest: drop the events already stored, then insert.
				existing, err := s.ExistingEventIDs(ctx, eventIDs(evs))
				if err == nil && len(existing) > 0 {
					kept := evs[:0:0]
					for _, e := range evs {
						if !existing[e.EventID] {
							kept = append(kept, e)
						}
					}
					evs = kept
				}
				if err == nil {
					err = s.InsertEvents(ctx, evs, at)
				}
				if err == nil {
					break
				}
				if !store.IsRetryable(err) {
					// ingest would stop here instead of retrying
					w.done <- fmt.Errorf("batch %d: an error ingest does not retry: %w", i, err)
					return
				}
				if w.retries.Load() == 0 {
					t.Logf("first failed insert (retried): %v", err)
				}
				if time.Now().After(deadline) {
					w.done <- fmt.Errorf("batch %d not stored in %s: %w", i, patience, err)
					return
				}
				w.retries.Add(1)
				time.Sleep(500 * time.Millisecond)
			}
			w.sent.Add(drillSize)
		}
	}()
	return w
}

// waitSent waits until n events are stored; a writer that gave up fails
// the test.
func (w *writer) waitSent(n int64) {
	w.t.Helper()
	for w.sent.Load() < n {
		select {
		case err := <-w.done:
			w.t.Fatal(err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (w *writer) stopAndWait() {
	w.t.Helper()
	close(w.stop)
	if err := <-w.done; err != nil {
		w.t.Fatal(err)
	}
}

// checkStoredOnce waits (3 minutes at most) until both replicas of each
// shard hold the same rows and the shards together hold total, then checks
// that no event id is stored twice, on any node or through the Distributed
// table. It returns the rows per node, the rows and distinct ids through
// the Distributed table and how long convergence took.
func checkStoredOnce(t *testing.T, cfg store.Config, addrs []string, total uint64) ([]uint64, uint64, uint64, time.Duration) {
	t.Helper()
	// Every replica of each shard converges to the same rows.
	converged := time.Now()
	perNode := make([]uint64, 4)
	for {
		for n, a := range addrs {
			perNode[n] = storetest.Count(t, store.Config{Addr: a, Database: cfg.Database}, "SELECT count() FROM events_local")
		}
		if perNode[0] == perNode[1] && perNode[2] == perNode[3] && perNode[0]+perNode[2] == total {
			break
		}
		if time.Since(converged) > 3*time.Minute {
			t.Fatalf("replicas did not converge in 3 minutes: events_local per node %v, %d sent", perNode, total)
		}
		time.Sleep(time.Second)
	}
	for n, a := range addrs {
		c := store.Config{Addr: a, Database: cfg.Database}
		if u := storetest.Count(t, c, "SELECT uniqExact(event_id) FROM events_local"); u != perNode[n] {
			t.Errorf("node %d: %d rows but %d distinct event ids (duplicates)", n+1, perNode[n], u)
		}
	}
	all := storetest.Count(t, cfg, "SELECT count() FROM events")
	distinct := storetest.Count(t, cfg, "SELECT uniqExact(event_id) FROM events")
	if all != total || distinct != total {
		t.Errorf("through the Distributed table: %d rows, %d distinct ids; %d events sent", all, distinct, total)
	}
	return perNode, all, distinct, time.Since(converged)
}
