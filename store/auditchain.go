package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
)

// auditChainVersion is the migration that added the chain columns to
// audit_log; rows written before it was applied carry no chain.
const auditChainVersion = 301

// auditChain is one writer's end of the audit hash chain. Every Store is a
// writer of its own: several processes (serve, ingest, each CLI run) write
// the audit trail at once, so one global chain would need coordination;
// one chain per writer, numbered from 1, needs none.
type auditChain struct {
	mu     sync.Mutex
	writer string
	seq    uint64
	prev   string
	copy   AuditCopier
}

func newAuditChain() *auditChain {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &auditChain{writer: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))}
}

// AuditHash returns the hex SHA-256 of an entry's canonical form: a version
// tag, then writer, seq, prev_hash, ts (Unix seconds), user, os_user, role,
// source, action, detail, rows and remote, each string length-prefixed, so
// that no two different entries share a form. An entry with tenants has the
// tag chatwarden-audit-v2 and its tenants (count, then each) at the end; one
// without keeps the v1 form, so rows written before tenants were recorded
// still verify, and adding or removing tenants changes the hash. Hash
// itself is not an input.
func AuditHash(a AuditEntry) string {
	h := sha256.New()
	var n [8]byte
	num := func(v uint64) {
		binary.BigEndian.PutUint64(n[:], v)
		h.Write(n[:])
	}
	str := func(s string) {
		num(uint64(len(s)))
		h.Write([]byte(s))
	}
	if len(a.Tenants) > 0 {
		str("chatwarden-audit-v2")
	} else {
		str("chatwarden-audit-v1")
	}
	str(a.Writer)
	num(a.Seq)
	str(a.PrevHash)
	num(uint64(a.TS.UTC().Unix()))
	for _, s := range []string{a.User, a.OSUser, a.Role, a.Source, a.Action, a.Detail} {
		str(s)
	}
	num(a.Rows)
	str(a.Remote)
	if len(a.Tenants) > 0 {
		num(uint64(len(a.Tenants)))
		for _, t := range a.Tenants {
			str(t)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// AuditProblem is one place where the audit trail is not what its writers
// wrote.
type AuditProblem struct {
	// Kind is edited (the row's hash does not match its fields), missing
	// (rows of a chain are gone), duplicate (two rows with one place in a
	// chain), broken_link (a row does not follow the row before it: inserted
	// or replaced), head_missing (a chain's first rows are gone and no
	// retention run dropped audit_log partitions that could have held them)
	// or unchained (a row without a chain written after chaining began);
	// compared with the Kafka copy: erased (copied, not in the table, not
	// in a partition retention dropped) or not_in_copy.
	Kind   string    `json:"kind"`
	Writer string    `json:"writer"`
	Seq    uint64    `json:"seq"`
	TS     time.Time `json:"ts"`
	Detail string    `json:"detail"`
}

// AuditVerifyResult is what VerifyAudit found.
type AuditVerifyResult struct {
	Rows    uint64 `json:"rows"`
	Writers int    `json:"writers"`
	// Legacy counts rows written before the chain existed.
	Legacy uint64 `json:"legacy"`
	// Copied counts the entries of the Kafka copy compared (0: none).
	Copied uint64 `json:"copied"`
	// Trimmed counts chains whose first rows were removed by retention
	// (an audited retention_drop of audit_log at or before their month).
	Trimmed  int            `json:"trimmed"`
	Problems []AuditProblem `json:"problems"`
}

// OK reports whether no problem was found.
func (r AuditVerifyResult) OK() bool { return len(r.Problems) == 0 }

// VerifyAudit reads the whole audit trail and checks every writer's chain:
// each row's hash over its fields, sequence numbers without gaps or
// repeats, and each row's prev_hash equal to the previous row's hash. It
// detects an edited, a dropped (also a dropped partition in the middle of a
// chain) and an inserted row. It cannot see the last rows of a chain being
// removed, or a whole chain removed, when nothing follows them: for that,
// pass the Kafka copy of the audit trail (audit.kafka_topic,
// ingest.ReadAuditCopy) as copied (nil: no comparison). Every copied entry
// must then be in the table with the same hash (or in a partition retention
// dropped), and every table row of a copied writer from its first copied
// seq on must be in the copy.
func (s *Store) VerifyAudit(ctx context.Context, copied []AuditEntry) (AuditVerifyResult, error) { //nolint:gocognit // walks each writer's chain and the optional Kafka copy; each branch classifies one documented kind of tampering
	res := AuditVerifyResult{Problems: []AuditProblem{}}
	var chainedSince time.Time
	if err := s.conn.QueryRow(ctx, "SELECT min(applied_at) FROM schema_migrations WHERE version = ?", uint32(auditChainVersion)).Scan(&chainedSince); err != nil {
		return res, fmt.Errorf("reading when audit chaining began: %w", err)
	}
	// Partitions of audit_log that retention dropped (audited by it).
	var dropped []string
	rows, err := s.conn.Query(ctx, "SELECT detail FROM audit_log WHERE action = 'retention_drop'")
	if err != nil {
		return res, fmt.Errorf("reading retention drops: %w", err)
	}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return res, err
		}
		var dp DroppedPartition
		if json.Unmarshal([]byte(d), &dp) == nil && dp.Table == "audit_log" {
			dropped = append(dropped, dp.Partition)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, err
	}
	sort.Strings(dropped)
	monthOf := func(ts time.Time) string { return strconv.Itoa(ts.UTC().Year()*100 + int(ts.UTC().Month())) }
	trimmedBefore := func(ts time.Time) bool { return len(dropped) > 0 && dropped[0] <= monthOf(ts) }
	type key struct {
		writer string
		seq    uint64
	}
	copies := map[key]AuditEntry{}
	firstCopied := map[string]uint64{}
	for _, c := range copied {
		copies[key{c.Writer, c.Seq}] = c
		if f, ok := firstCopied[c.Writer]; !ok || c.Seq < f {
			firstCopied[c.Writer] = c.Seq
		}
	}
	res.Copied = uint64(len(copied))

	rows, err = s.conn.Query(ctx, "SELECT "+auditColumns+" FROM audit_log ORDER BY writer, seq, hash")
	if err != nil {
		return res, fmt.Errorf("reading audit log: %w", err)
	}
	defer rows.Close()
	var prev AuditEntry
	have := false
	for rows.Next() {
		a, err := scanAudit(rows)
		if err != nil {
			return res, fmt.Errorf("reading audit entry: %w", err)
		}
		res.Rows++
		problem := func(kind, format string, args ...any) {
			res.Problems = append(res.Problems, AuditProblem{Kind: kind, Writer: a.Writer, Seq: a.Seq, TS: a.TS,
				Detail: fmt.Sprintf(format, args...)})
		}
		if a.Writer == "" {
			if a.TS.Before(chainedSince) {
				res.Legacy++
			} else {
				problem("unchained", "row without a chain (action %s by %s) written after chaining began at %s",
					a.Action, a.User, chainedSince.UTC().Format(time.RFC3339))
			}
			continue
		}
		if AuditHash(a) != a.Hash {
			problem("edited", "hash does not match the row's fields (action %s by %s)", a.Action, a.User)
		}
		if first, ok := firstCopied[a.Writer]; ok && a.Seq >= first {
			switch c, ok := copies[key{a.Writer, a.Seq}]; {
			case !ok:
				problem("not_in_copy", "row (action %s by %s) is not in the Kafka copy", a.Action, a.User)
			case c.Hash != a.Hash:
				problem("edited", "row differs from its Kafka copy (action %s by %s there)", c.Action, c.User)
			}
			delete(copies, key{a.Writer, a.Seq})
		}
		newChain := !have || prev.Writer != a.Writer
		switch {
		case newChain:
			res.Writers++
			if a.Seq != 1 {
				if trimmedBefore(a.TS) {
					res.Trimmed++
				} else {
					problem("head_missing", "chain starts at seq %d: rows 1-%d are missing", a.Seq, a.Seq-1)
				}
			} else if a.PrevHash != "" {
				problem("broken_link", "first row of a chain names a previous row")
			}
		case a.Seq == prev.Seq:
			problem("duplicate", "a second row with seq %d", a.Seq)
		case a.Seq != prev.Seq+1:
			problem("missing", "rows %d-%d are missing", prev.Seq+1, a.Seq-1)
		case a.PrevHash != prev.Hash:
			problem("broken_link", "prev_hash does not match the hash of seq %d", prev.Seq)
		}
		prev, have = a, true
	}
	if err := rows.Err(); err != nil {
		return res, err
	}
	var erased []AuditEntry
	for _, c := range copies {
		if !slices.Contains(dropped, monthOf(c.TS)) {
			erased = append(erased, c)
		}
	}
	sort.Slice(erased, func(i, j int) bool {
		return erased[i].Writer < erased[j].Writer || erased[i].Writer == erased[j].Writer && erased[i].Seq < erased[j].Seq
	})
	for _, c := range erased {
		res.Problems = append(res.Problems, AuditProblem{Kind: "erased", Writer: c.Writer, Seq: c.Seq, TS: c.TS,
			Detail: fmt.Sprintf("in the Kafka copy but not in audit_log (action %s by %s)", c.Action, c.User)})
	}
	return res, nil
}
