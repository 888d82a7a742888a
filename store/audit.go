package store

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// AuditEntry is one line of the audit trail: who looked at what, when, from
// where, and how many rows they got. Detail never holds a raw customer id.
//
// Writer, Seq, PrevHash and Hash link the entry into its writer's hash chain
// (see InsertAudit and VerifyAudit); InsertAudit sets them.
type AuditEntry struct {
	TS     time.Time `json:"ts"`
	User   string    `json:"user"`
	Role   string    `json:"role"`
	Source string    `json:"source"` // web, api, cli, slack or a component (serve)
	Action string    `json:"action"` // history, export, blast_radius, dsar, alert_action, login, login_failed ...
	Detail string    `json:"detail"`
	Rows   uint64    `json:"rows"`
	Remote string    `json:"remote,omitempty"`
	// OSUser is the operating-system account that ran a CLI command; User
	// is then the name given with --as (or the same account).
	OSUser string `json:"os_user,omitempty"`
	// Tenants are the tenants whose data the action read or changed, sorted;
	// empty when it is about no one tenant's data (a sign-in of a user of
	// every tenant, a retention run) or about every tenant. An admin
	// limited to some tenants sees only rows whose tenants are all theirs.
	Tenants []string `json:"tenants,omitempty"`

	Writer   string `json:"writer,omitempty"`
	Seq      uint64 `json:"seq,omitempty"`
	PrevHash string `json:"prev_hash,omitempty"`
	Hash     string `json:"hash,omitempty"`
}

// AuditCopier receives every audit entry after it is stored, with its chain
// fields set: a second record of the audit trail off the ClickHouse server
// (ingest.AuditCopier writes it to a Kafka topic).
type AuditCopier interface {
	// CopyAudit records a. An error makes InsertAudit fail, so that the
	// action the entry records is refused.
	CopyAudit(ctx context.Context, a AuditEntry) error
	// Close flushes and releases the copier; Store.Close calls it.
	Close() error
}

// SetAuditCopy makes c the copy of every audit entry written through this
// Store from now on; the Store closes it in Close. Call it before the Store
// is shared.
func (s *Store) SetAuditCopy(c AuditCopier) { s.chain.copy = c }

// InsertAudit appends one entry to the audit trail as the next link of this
// Store's hash chain, then hands it to the audit copy if one is set. An
// error means the entry may be missing: the caller must not carry out (or
// show the result of) what it records. Entries of one Store are written one
// at a time; the chain advances only when the row was accepted.
func (s *Store) InsertAudit(ctx context.Context, a AuditEntry) error {
	c := s.chain
	c.mu.Lock()
	defer c.mu.Unlock()
	a.TS = a.TS.UTC().Truncate(time.Second)
	a.Tenants = normTenants(a.Tenants)
	a.Writer, a.Seq, a.PrevHash = c.writer, c.seq+1, c.prev
	a.Hash = AuditHash(a)
	tenants := a.Tenants
	if tenants == nil {
		tenants = []string{}
	}
	err := s.insertRow(ctx, "INSERT INTO audit_log (ts, user, role, source, action, detail, rows, remote, os_user, tenants, writer, seq, prev_hash, hash)",
		a.TS, a.User, a.Role, a.Source, a.Action, a.Detail, a.Rows, a.Remote, a.OSUser, tenants, a.Writer, a.Seq, a.PrevHash, a.Hash)
	if err != nil {
		return fmt.Errorf("writing audit entry: %w", err)
	}
	c.seq, c.prev = a.Seq, a.Hash
	if c.copy != nil {
		if err := c.copy.CopyAudit(ctx, a); err != nil {
			return fmt.Errorf("copying audit entry %s/%d: %w", a.Writer, a.Seq, err)
		}
	}
	return nil
}

// normTenants sorts and de-duplicates tenant names; none is nil.
func normTenants(ts []string) []string {
	if len(ts) == 0 {
		return nil
	}
	out := slices.Clone(ts)
	slices.Sort(out)
	return slices.Compact(out)
}

// AuditFilter selects audit entries; empty fields match anything.
type AuditFilter struct {
	From, To time.Time
	User     string
	Action   string
	// Tenants, when not empty, is the scope of an admin limited to those
	// tenants: only entries that name tenants, all of them in Tenants,
	// match. An entry without tenants (about no one tenant, or about
	// every tenant) is for admins of every tenant.
	Tenants []string
	// Limit bounds the entries (default 500).
	Limit int
}

const auditColumns = "ts, user, role, source, action, detail, rows, remote, os_user, tenants, writer, seq, prev_hash, hash"

func scanAudit(sc interface{ Scan(...any) error }) (AuditEntry, error) {
	var a AuditEntry
	err := sc.Scan(&a.TS, &a.User, &a.Role, &a.Source, &a.Action, &a.Detail, &a.Rows, &a.Remote, &a.OSUser, &a.Tenants,
		&a.Writer, &a.Seq, &a.PrevHash, &a.Hash)
	a.TS = a.TS.UTC()
	if len(a.Tenants) == 0 {
		a.Tenants = nil
	}
	return a, err
}

// AuditLog returns audit entries, newest first.
func (s *Store) AuditLog(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	q := "SELECT " + auditColumns + " FROM audit_log WHERE ts >= ? AND ts < ?"
	args := []any{f.From.UTC(), f.To.UTC()}
	if f.User != "" {
		q += " AND user = ?"
		args = append(args, f.User)
	}
	if f.Action != "" {
		q += " AND action = ?"
		args = append(args, f.Action)
	}
	if len(f.Tenants) > 0 {
		q += " AND notEmpty(tenants) AND arrayAll(t -> t IN ?, tenants)"
		args = append(args, InList(f.Tenants))
	}
	lim := f.Limit
	if lim <= 0 {
		lim = 500
	}
	q += " ORDER BY ts DESC, writer, seq DESC LIMIT ?"
	args = append(args, uint64(lim))
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		a, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("reading audit entry: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
