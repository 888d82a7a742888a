package bench

// Cluster is `make bench-cluster` (issue 11, docs/scaling.md): the ingest
// and investigation-query benchmarks run twice in one go, on the local
// ClickHouse cluster (scripts/stack.sh cluster-up: 2 shards x 2 replicas)
// and on the single server of the stack, with the same code (Ingest with
// -instances 2, Query with -detect-shards 2), so that the figures sit side
// by side under the same machine load. Its last line is
// "cluster_ingest_eps=N history_p95_ms=N dsar_p95_ms=N" followed by the
// cluster's detection cycle and the single server's figures and ratios.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Cluster runs Ingest and Query against the cluster named by -cluster at
// -cluster-addr and against the single server (CHATWARDEN_CLICKHOUSE_ADDR),
// and prints both sets of figures and their ratios.
func Cluster(ctx context.Context, e *Env, args []string) error {
	fs := e.flags("cluster")
	cluster := fs.String("cluster", os.Getenv("CHATWARDEN_CLUSTER_NAME"), "the cluster's name (clickhouse.cluster)")
	clusterAddr := fs.String("cluster-addr", os.Getenv("CHATWARDEN_CLUSTER_ADDR"), "native address of a node of the cluster")
	ingestEvents := fs.Int("ingest-events", 1_000_000, "simulated events to ingest")
	queryEvents := fs.Uint64("events", 10_000_000, "events to load for the queries")
	instances := fs.Int("instances", 2, "chatwarden ingest processes, in one consumer group")
	runs := fs.Int("runs", 50, "queries per measurement")
	single := fs.Bool("single", true, "measure the single server too, in the same run")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if *cluster == "" || *clusterAddr == "" {
		return fmt.Errorf("no cluster: set -cluster and -cluster-addr (eval \"$(scripts/stack.sh cluster-env)\")")
	}
	type side struct {
		name string
		ing  []string
		qry  []string
	}
	sides := []side{{"cluster",
		[]string{"-addr", *clusterAddr, "-cluster", *cluster},
		[]string{"-addr", *clusterAddr, "-cluster", *cluster}}}
	if *single {
		sides = append(sides, side{name: "single"})
	}
	// A database of this run's own (the query benchmark drops and
	// re-creates it), so that two runs at once, on the same cluster or
	// single server, do not drop each other's data.
	var rb [4]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return err
	}
	queryDB := "bench_cluster_query_" + hex.EncodeToString(rb[:])
	got := map[string]map[string]float64{}
	for _, sd := range sides {
		fmt.Fprintf(e.Stdout, "bench-cluster: %s: ingest of %d events, %d instances\n", sd.name, *ingestEvents, *instances)
		ing, err := lastFigures(ctx, e, Ingest, append([]string{"-ingest-only", "-events", strconv.Itoa(*ingestEvents), "-instances", strconv.Itoa(*instances)}, sd.ing...))
		if err != nil {
			return fmt.Errorf("%s ingest: %w", sd.name, err)
		}
		fmt.Fprintf(e.Stdout, "bench-cluster: %s: queries over %d events\n", sd.name, *queryEvents)
		qry, err := lastFigures(ctx, e, Query, append([]string{"-events", strconv.FormatUint(*queryEvents, 10), "-runs", strconv.Itoa(*runs),
			"-database", queryDB, "-detect-shards", "2"}, sd.qry...))
		if err != nil {
			return fmt.Errorf("%s queries: %w", sd.name, err)
		}
		for k, v := range ing {
			qry[k] = v
		}
		got[sd.name] = qry
	}
	c := got["cluster"]
	line := fmt.Sprintf("cluster_ingest_eps=%.0f history_p95_ms=%.0f dsar_p95_ms=%.0f detect_cycle_ms=%.0f detect_state_bytes_per_actor=%.0f",
		c["ingest_eps"], c["history_p95_ms"], c["dsar_p95_ms"], c["detect_cycle_ms"], c["detect_state_bytes_per_actor"])
	if s, ok := got["single"]; ok {
		ratio := func(k string) float64 { return c[k] / max(s[k], 1) }
		line += fmt.Sprintf(" single_ingest_eps=%.0f single_history_p95_ms=%.0f single_dsar_p95_ms=%.0f single_detect_cycle_ms=%.0f"+
			" ingest_ratio=%.2f history_ratio=%.2f dsar_ratio=%.2f",
			s["ingest_eps"], s["history_p95_ms"], s["dsar_p95_ms"], s["detect_cycle_ms"], ratio("ingest_eps"), ratio("history_p95_ms"), ratio("dsar_p95_ms"))
	}
	fmt.Fprintln(e.Stdout, line)
	return nil
}

// lastFigures runs the benchmark run with args, copying what it prints to
// e.Stdout, and returns the key=value pairs of its last line (its summary).
func lastFigures(ctx context.Context, e *Env, run func(context.Context, *Env, []string) error, args []string) (map[string]float64, error) {
	var buf bytes.Buffer
	sub := *e
	sub.Stdout = io.MultiWriter(e.Stdout, &buf)
	if err := run(ctx, &sub, args); err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	out := map[string]float64{}
	for _, f := range strings.Fields(lines[len(lines)-1]) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("summary %q: %s is not a number", lines[len(lines)-1], f)
		}
		out[k] = x
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no summary line in %q", buf.String())
	}
	return out, nil
}

// nodeParts is what one node of the cluster holds of a database: rows of
// the events table's local table and bytes on disk of every table.
type nodeParts struct {
	addr         string
	events, disk uint64
}

// clusterParts reads system.parts on every node of the cluster
// (CHATWARDEN_CLUSTER_ADDRS) for db, prints the events and bytes each node
// holds and the bytes on disk per event per replica, and checks that the
// nodes hold want events per replica between them.
func (b *bench) clusterParts(ctx context.Context, db string, want int) error {
	addrs := strings.Split(os.Getenv("CHATWARDEN_CLUSTER_ADDRS"), ",")
	if len(addrs) == 0 || addrs[0] == "" {
		return fmt.Errorf("CHATWARDEN_CLUSTER_ADDRS is not set (scripts/stack.sh cluster-env)")
	}
	var nodes []nodeParts
	var events, disk uint64
	for _, a := range addrs {
		np, err := partsOf(ctx, a, db)
		if err != nil {
			return err
		}
		nodes = append(nodes, np)
		events += np.events
		disk += np.disk
		b.say("node %s: %d events, %d bytes on disk (every table of %s)", np.addr, np.events, np.disk, db)
	}
	// Every event is on each replica of its shard: the nodes hold it
	// replicas times between them.
	replicas := float64(events) / float64(max(want, 1))
	b.say("bytes on disk per event per replica: %.1f (all tables; %d bytes over %d nodes, %.2f copies of each of %d events)",
		float64(disk)/float64(max(events, 1)), disk, len(nodes), replicas, want)
	return nil
}

// partsOf asks the node at addr (clickhouse-client) for its parts of db.
func partsOf(ctx context.Context, addr, db string) (nodeParts, error) {
	host, port, ok := strings.Cut(addr, ":")
	if !ok {
		return nodeParts{}, fmt.Errorf("node address %q has no port", addr)
	}
	q := "SELECT sumIf(rows, table = 'events_local'), sum(bytes_on_disk) FROM system.parts WHERE active AND database = '" + db + "' FORMAT TSV"
	out, err := exec.CommandContext(ctx, "clickhouse-client", "--host", host, "--port", port, "--query", q).Output()
	if err != nil {
		return nodeParts{}, fmt.Errorf("system.parts of %s: %w", addr, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return nodeParts{}, fmt.Errorf("system.parts of %s: unexpected answer %q", addr, out)
	}
	np := nodeParts{addr: addr}
	np.events, _ = strconv.ParseUint(f[0], 10, 64)
	np.disk, _ = strconv.ParseUint(f[1], 10, 64)
	return np, nil
}
