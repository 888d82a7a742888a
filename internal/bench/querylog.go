package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// connPorts adds to ports the local ports of pid's TCP connections to
// remote port rport: which of system.query_log's rows are the process's
// own (18.16's query log has no database column; the port of the client's
// connection tells the bench's queries from the other users').
func connPorts(pid, rport int, ports map[int]bool) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err != nil {
			continue
		}
		if in, ok := strings.CutPrefix(l, "socket:["); ok {
			inodes[strings.TrimSuffix(in, "]")] = true
		}
	}
	for _, tbl := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, tbl))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || !inodes[fs[9]] {
				continue
			}
			lp, rp := hexPort(fs[1]), hexPort(fs[2])
			if rp == rport && lp > 0 {
				ports[lp] = true
			}
		}
		f.Close()
	}
}

// hexPort returns the port of a /proc/net/tcp address (ADDR:PORT in hex),
// or 0.
func hexPort(a string) int {
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return 0
	}
	p, err := strconv.ParseUint(a[i+1:], 16, 16)
	if err != nil {
		return 0
	}
	return int(p)
}

// serverCounters returns the server-wide counters of system.events that
// tell merges and query threads' CPU, by name.
func (b *bench) serverCounters(ctx context.Context) map[string]float64 {
	out, err := b.clickhouse(ctx, "system", "SELECT event, value FROM system.events WHERE event IN "+
		"('Merge', 'MergedRows', 'MergedUncompressedBytes', 'MergesTimeMilliseconds', 'InsertedRows', 'SelectQuery', 'InsertQuery')", nil)
	m := map[string]float64{}
	if err != nil {
		return m
	}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "\t"); ok {
			m[k], _ = strconv.ParseFloat(v, 64)
		}
	}
	return m
}

// queryKinds prints ClickHouse's time and CPU per kind of query (the
// query's first 60 characters, spaces collapsed) that the connections from
// ports ran since start, from system.query_log, and the server-wide
// merges between counters before and after.
func (b *bench) queryKinds(ctx context.Context, start time.Time, ports map[int]bool, before, after map[string]float64) {
	ps, ok := b.flushedLog(ctx, ports, "of ingest ")
	if !ok {
		return
	}
	// Microseconds of the query's threads: on CPU (user + system), waiting
	// for a CPU, waiting for the client's data, writing to disk.
	pe := func(name string) string {
		return fmt.Sprintf("round(sum(ProfileEvents.Values[indexOf(ProfileEvents.Names, '%s')]) / 1e6, 2)", name)
	}
	q := fmt.Sprintf(`SELECT substring(replaceRegexpAll(query, '[[:space:]]+', ' '), 1, 60) AS kind, count(),
    round(sum(query_duration_ms) / 1000, 2), %s + %s AS cpu, %s, %s, %s, sum(read_rows), sum(written_rows)
FROM system.query_log WHERE type = 2 AND event_time >= toDateTime(%d) AND port IN (%s)
GROUP BY kind ORDER BY cpu DESC`, pe("UserTimeMicroseconds"), pe("SystemTimeMicroseconds"), pe("OSCPUWaitMicroseconds"),
		pe("NetworkReceiveElapsedMicroseconds"), pe("DiskWriteElapsedMicroseconds"), start.Unix(), strings.Join(ps, ", "))
	out, err := b.clickhouse(ctx, "system", q, nil)
	if err != nil {
		b.say("query log: %v", err)
		return
	}
	b.say("ClickHouse per kind of query of ingest (system.query_log, %d client ports): queries | seconds | CPU s | CPU wait s | client wait s | disk write s | rows read | rows written", len(ports))
	for _, l := range strings.Split(out, "\n") {
		if l != "" {
			b.say("  %s", strings.ReplaceAll(l, "\t", " | "))
		}
	}
	d := func(k string) float64 { return after[k] - before[k] }
	b.say("server-wide meanwhile (every user's): %.0f merges of %.0f rows (%.0f MB uncompressed) taking %.1f s; %.0f rows inserted, %.0f INSERT and %.0f SELECT queries",
		d("Merge"), d("MergedRows"), d("MergedUncompressedBytes")/1e6, d("MergesTimeMilliseconds")/1000, d("InsertedRows"), d("InsertQuery"), d("SelectQuery"))
}

// chPort returns the port of the ClickHouse native address addr, or 9000.
func chPort(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 9000
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return 9000
	}
	return n
}

// partsSummary prints, per table of db, the level-0 parts (one per
// INSERT and partition) and the rows merges read and wrote, from
// system.parts (merged-away parts stay there, inactive, for about 8
// minutes).
func (b *bench) partsSummary(ctx context.Context, db string) {
	out, err := b.clickhouse(ctx, "system", fmt.Sprintf(`SELECT table, countIf(level = 0), sumIf(rows, level = 0),
    countIf(level > 0), sumIf(rows, level > 0), sumIf(rows, active = 0), countIf(active), sumIf(rows, active)
FROM system.parts WHERE database = '%s' GROUP BY table ORDER BY table`, db), nil)
	if err != nil {
		b.say("parts: %v", err)
		return
	}
	b.say("parts of %s: table | level-0 parts | their rows | merged parts | their rows | rows merged away | active parts | active rows", db)
	for _, l := range strings.Split(out, "\n") {
		if l != "" {
			b.say("  %s", strings.ReplaceAll(l, "\t", " | "))
		}
	}
}

// weeklyQueries prints ClickHouse's wall time and CPU per query of the
// weekly reports the connections from ports started from start, a whole second, on (runs
// reports), from system.query_log: per kind of query (its first 60
// characters, spaces collapsed), how many ran, their mean wall time
// (query_duration_ms: the queries of one report run concurrently, so the
// longest one bounds the report), the slowest, their mean CPU (user +
// system) and rows read, and the largest memory use.
func (b *bench) weeklyQueries(ctx context.Context, start time.Time, ports map[int]bool, runs int) {
	ps, ok := b.flushedLog(ctx, ports, "")
	if !ok {
		return
	}
	pe := func(name string) string {
		return fmt.Sprintf("sum(ProfileEvents.Values[indexOf(ProfileEvents.Names, '%s')])", name)
	}
	q := fmt.Sprintf(`SELECT substring(replaceRegexpAll(query, '[[:space:]]+', ' '), 1, 60) AS kind, count(),
    round(avg(query_duration_ms)), max(query_duration_ms), round((%[1]s + %[2]s) / 1000 / count()) AS cpu, round(avg(read_rows)),
    round(max(memory_usage) / 1048576)
FROM system.query_log WHERE type = 2 AND query_start_time >= toDateTime(%[3]d) AND port IN (%[4]s)
GROUP BY kind ORDER BY cpu DESC`, pe("UserTimeMicroseconds"), pe("SystemTimeMicroseconds"), start.Unix(), strings.Join(ps, ", "))
	out, err := b.clickhouse(ctx, "system", q, nil)
	if err != nil {
		b.say("query log: %v", err)
		return
	}
	b.say("ClickHouse per query of %d weekly reports (system.query_log, %d client ports): query | times run | wall ms (mean) | slowest ms | CPU ms (mean) | rows read (mean) | peak MiB", runs, len(ports))
	for _, l := range strings.Split(out, "\n") {
		if l != "" {
			b.say("  %s", strings.ReplaceAll(l, "\t", " | "))
		}
	}
}

// flushedLog flushes ClickHouse's logs and returns ports as a sorted list
// for an IN clause; false (said why) when there are no ports (who names
// the connections in the message) or the flush failed.
func (b *bench) flushedLog(ctx context.Context, ports map[int]bool, who string) ([]string, bool) {
	if len(ports) == 0 {
		b.say("query log: no connection %sto ClickHouse seen", who)
		return nil, false
	}
	if _, err := b.clickhouse(ctx, "system", "SYSTEM FLUSH LOGS", nil); err != nil {
		b.say("query log: %v", err)
		return nil, false
	}
	ps := make([]string, 0, len(ports))
	for p := range ports {
		ps = append(ps, strconv.Itoa(p))
	}
	slices.Sort(ps)
	return ps, true
}
