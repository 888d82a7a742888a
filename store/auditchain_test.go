package store_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/store"
)

// chainOf writes n audit entries through the chain, one minute apart from
// start, and returns them as stored (oldest first).
func chainOf(t *testing.T, s *store.Store, start time.Time, n int) []store.AuditEntry {
	t.Helper()
	for i := range n {
		if err := s.InsertAudit(t.Context(), store.AuditEntry{TS: start.Add(time.Duration(i) * time.Minute), User: "ana",
			Role: "responder", Source: "web", Action: "history", Detail: fmt.Sprintf("actor=a%d", i), Rows: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.AuditLog(t.Context(), store.AuditFilter{From: start, To: start.Add(time.Duration(n) * time.Minute), Limit: n})
	if err != nil || len(got) != n {
		t.Fatalf("audit log = %d entries, %v; want %d", len(got), err, n)
	}
	for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
		got[i], got[j] = got[j], got[i]
	}
	return got
}

func verify(t *testing.T, s *store.Store) store.AuditVerifyResult {
	t.Helper()
	res, err := s.VerifyAudit(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func kinds(r store.AuditVerifyResult) map[string]bool {
	k := map[string]bool{}
	for _, p := range r.Problems {
		k[p.Kind] = true
	}
	return k
}

// mutate tampers with s's database over a connection of its own (not
// logged, so that the conformance replay does not repeat it).
func mutate(t *testing.T, s *store.Store, q string, args ...any) {
	t.Helper()
	storetest.Exec(t, store.Config{Addr: storetest.Addr(), Database: s.Database()}, q, args...)
}

// TestAuditVerifyDetectsTampering: the audit trail is a hash chain per
// writer; `chatwarden audit verify` (Store.VerifyAudit) finds a dropped, an
// edited and an inserted row, and a dropped partition, and accepts what
// retention removed.
func TestAuditVerifyDetectsTampering(t *testing.T) {
	t.Parallel() // a database of its own
	start := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	t.Run("intact", func(t *testing.T) {
		cfg := storetest.Config(t)
		s := storetest.Open(t, cfg)
		es := chainOf(t, s, start, 5)
		for i, e := range es {
			if e.Seq != uint64(i+1) || e.Hash != store.AuditHash(e) || (i > 0 && e.PrevHash != es[i-1].Hash) {
				t.Fatalf("entry %d is not linked: %+v", i, e)
			}
		}
		// A second writer (another process) on the same database keeps
		// a chain of its own.
		s2, err := store.Open(t.Context(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		chainOf(t, s2, start.Add(time.Hour), 3)
		if r := verify(t, s); !r.OK() || r.Rows != 8 || r.Writers != 2 {
			t.Fatalf("intact chain: %+v", r)
		}
	})
	t.Run("dropped row", func(t *testing.T) {
		s := storetest.New(t)
		es := chainOf(t, s, start, 5)
		mutate(t, s, "ALTER TABLE audit_log DELETE WHERE seq = ?", es[2].Seq)
		if r := verify(t, s); !kinds(r)["missing"] {
			t.Fatalf("a deleted row was not found: %+v", r)
		}
	})
	t.Run("edited row", func(t *testing.T) {
		s := storetest.New(t)
		es := chainOf(t, s, start, 5)
		mutate(t, s, "ALTER TABLE audit_log UPDATE detail = 'actor=someone-else' WHERE seq = ?", es[1].Seq)
		if r := verify(t, s); !kinds(r)["edited"] {
			t.Fatalf("an edited row was not found: %+v", r)
		}
	})
	t.Run("edited row with its hash recomputed", func(t *testing.T) {
		s := storetest.New(t)
		es := chainOf(t, s, start, 5)
		forged := es[1]
		forged.Detail = "actor=someone-else"
		forged.Hash = store.AuditHash(forged)
		mutate(t, s, "ALTER TABLE audit_log DELETE WHERE seq = ?", es[1].Seq)
		if err := store.InsertAuditRowForTest(t.Context(), s, forged); err != nil {
			t.Fatal(err)
		}
		if r := verify(t, s); !kinds(r)["broken_link"] {
			t.Fatalf("a replaced row was not found: %+v", r)
		}
	})
	t.Run("inserted row", func(t *testing.T) {
		s := storetest.New(t)
		es := chainOf(t, s, start, 5)
		// A well-formed row slotted in after seq 2 with a valid hash.
		in := store.AuditEntry{TS: es[1].TS.Add(time.Second), User: "mallory", Role: "admin", Source: "web",
			Action: "history", Writer: es[1].Writer, Seq: es[1].Seq + 1, PrevHash: es[1].Hash}
		in.Hash = store.AuditHash(in)
		if err := store.InsertAuditRowForTest(t.Context(), s, in); err != nil {
			t.Fatal(err)
		}
		if r := verify(t, s); !kinds(r)["duplicate"] {
			t.Fatalf("an inserted row was not found: %+v", r)
		}
	})
	t.Run("inserted row without a chain", func(t *testing.T) {
		s := storetest.New(t)
		chainOf(t, s, start, 2)
		if err := store.InsertAuditRowForTest(t.Context(), s, store.AuditEntry{TS: time.Now(), User: "mallory", Action: "login"}); err != nil {
			t.Fatal(err)
		}
		if r := verify(t, s); !kinds(r)["unchained"] {
			t.Fatalf("an unchained row was not found: %+v", r)
		}
	})
	t.Run("dropped partition", func(t *testing.T) {
		s := storetest.New(t)
		oct := time.Date(2026, 10, 31, 23, 58, 0, 0, time.UTC)
		chainOf(t, s, oct, 4) // two rows in October, two in November
		mutate(t, s, "ALTER TABLE audit_log DROP PARTITION 202610")
		r := verify(t, s)
		if !kinds(r)["head_missing"] {
			t.Fatalf("a dropped partition was not found: %+v", r)
		}
	})
	t.Run("retention drop is not tampering", func(t *testing.T) {
		s := storetest.New(t)
		oct := time.Date(2026, 10, 31, 23, 58, 0, 0, time.UTC)
		chainOf(t, s, oct, 4)
		res, err := s.Retain(t.Context(), store.RetentionConfig{EventsDays: 1, DeadLettersDays: 1, AlertsDays: 1, AuditDays: 1},
			time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		for _, dp := range res.Dropped { // as cmd's retainOnce audits them
			b, _ := json.Marshal(dp)
			if err := s.InsertAudit(t.Context(), store.AuditEntry{TS: time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC),
				User: "chatwarden", Role: "system", Source: "serve", Action: "retention_drop", Detail: string(b)}); err != nil {
				t.Fatal(err)
			}
		}
		if r := verify(t, s); !r.OK() || r.Trimmed != 1 {
			t.Fatalf("after retention: %+v, dropped %+v", r, res.Dropped)
		}
	})
}

// TestMigrateReRunsAddColumn: a migration that adds columns can run again
// after it stopped half-way (18.16 has no ADD COLUMN IF NOT EXISTS).
func TestMigrateReRunsAddColumn(t *testing.T) {
	t.Parallel() // a database of its own
	s := storetest.New(t)
	mutate(t, s, "ALTER TABLE schema_migrations DELETE WHERE version = 301")
	mutate(t, s, "ALTER TABLE audit_log DROP COLUMN hash")
	res, err := s.Migrate(t.Context(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 1 || res.Applied[0] != 301 {
		t.Fatalf("applied %v, want [301]", res.Applied)
	}
	chainOf(t, s, time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC), 2)
}

// TestAuditTenantScope (issue 10 item 8): an audit row names the tenants it
// is about; an admin limited to tenants sees only rows whose tenants are
// all theirs (a row of no tenant, or of every tenant, is for admins of every
// tenant). The tenants are part of the row's hash: rows with and without
// tenants verify, and taking a row's tenants away is found as an edit.
func TestAuditTenantScope(t *testing.T) {
	t.Parallel() // databases of their own
	s := storetest.New(t)
	t0 := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	for i, ts := range [][]string{{"retail"}, {"bank"}, {"retail", "bank", "retail"}, nil} {
		if err := s.InsertAudit(t.Context(), store.AuditEntry{TS: t0.Add(time.Duration(i) * time.Minute), User: "ana", Role: "admin",
			Source: "web", Action: "history", Detail: fmt.Sprintf("row=%d", i), Tenants: ts}); err != nil {
			t.Fatal(err)
		}
	}
	rows := func(tenants ...string) string {
		t.Helper()
		es, err := s.AuditLog(t.Context(), store.AuditFilter{From: t0, To: t0.Add(time.Hour), Tenants: tenants})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for i := len(es) - 1; i >= 0; i-- {
			out = append(out, es[i].Detail+fmt.Sprint(es[i].Tenants))
		}
		return fmt.Sprint(out)
	}
	for _, tc := range []struct {
		scope []string
		want  string
	}{
		{nil, "[row=0[retail] row=1[bank] row=2[bank retail] row=3[]]"},
		{[]string{"retail"}, "[row=0[retail]]"},
		{[]string{"bank"}, "[row=1[bank]]"},
		{[]string{"retail", "bank"}, "[row=0[retail] row=1[bank] row=2[bank retail]]"},
		{[]string{"other"}, "[]"},
	} {
		if got := rows(tc.scope...); got != tc.want {
			t.Errorf("audit rows of an admin of %v: %s, want %s", tc.scope, got, tc.want)
		}
	}
	if r := verify(t, s); !r.OK() {
		t.Fatalf("rows with and without tenants do not verify: %+v", r)
	}
	mutate(t, s, "ALTER TABLE audit_log UPDATE tenants = ['bank'] WHERE detail = 'row=0'")
	if r := verify(t, s); !kinds(r)["edited"] {
		t.Fatalf("a row moved to another tenant was not found: %+v", r)
	}
}
