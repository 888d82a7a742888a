package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/report"
	"github.com/chatwarden/chatwarden/store"
)

// TestCLITenantScope: `chatwarden history` and `dsar` look a raw customer
// id up in one tenant (-tenant, else the -as user's only tenant, else
// "default"), and a -as user limited by dashboards.users[].tenants cannot
// ask for another tenant; `chatwarden report weekly` covers the -as user's
// tenants (or -tenant's).
func TestCLITenantScope(t *testing.T) {
	t.Setenv("CHATWARDEN_CLICKHOUSE_DATABASE", "")
	t.Setenv("CHATWARDEN_PSEUDONYM_KEY_FILE", "")
	ch := storetest.Config(t)
	s := storetest.Open(t, ch)
	keyHex := strings.Repeat("cd", 32)
	p, err := pseudonym.New(pseudonym.Key{ID: '1', Secret: bytes.Repeat([]byte{0xcd}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-time.Hour)
	ev := func(id, tenant, actor string) models.Event {
		return models.Event{EventID: id, TS: at, Tenant: tenant, Actor: models.Actor{ID: actor, Type: models.ActorHuman},
			Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"},
			SubjectID: p.HashTenant(tenant, "cust-9"), Records: 1, Result: models.ResultAllowed}
	}
	if err := s.InsertEvents(t.Context(), []models.Event{ev("r", "retail", "agent-r"), ev("b", "bank", "agent-b"), ev("d", "default", "agent-d")}, time.Now()); err != nil {
		t.Fatal(err)
	}
	week := report.WeekOf(at).String()
	cli := limitedUserCLI(t, ch, keyHex, "rita", "retail")
	for _, tc := range []struct {
		args []string
		code int
		want []string
		not  []string
	}{
		{[]string{"dsar", "-subject", "cust-9", "-tenant", "bank", "-as", "ops", "-format", "json"}, 0, []string{"agent-b"}, []string{"agent-r", "agent-d"}},
		{[]string{"dsar", "-subject", "cust-9", "-as", "ops", "-format", "json"}, 0, []string{"agent-d"}, []string{"agent-r", "agent-b"}},
		{[]string{"dsar", "-subject", "cust-9", "-as", "rita", "-format", "json"}, 0, []string{"agent-r"}, []string{"agent-b", "agent-d"}},
		{[]string{"dsar", "-subject", "cust-9", "-tenant", "bank", "-as", "rita"}, 1, []string{"may see only tenants [retail]"}, []string{"agent-b"}},
		{[]string{"history", "-actor", "agent-b", "-as", "rita", "-format", "json"}, 0, nil, []string{"agent-b\","}},
		{[]string{"history", "-subject", "cust-9", "-tenant", "retail", "-as", "ops", "-format", "json"}, 0, []string{"agent-r"}, []string{"agent-b", "agent-d"}},
		// The weekly report of a limited user covers their tenants (one of
		// the three events); another user's covers every tenant.
		{[]string{"report", "weekly", "-week", week, "-as", "rita", "-format", "json"}, 0, []string{`"tenants": [`, `"retail"`, `"events": 1,`}, []string{`"bank"`, `"events": 3,`}},
		{[]string{"report", "weekly", "-week", week, "-as", "ops", "-format", "json"}, 0, []string{`"events": 3,`}, []string{`"tenants"`}},
		{[]string{"report", "weekly", "-week", week, "-as", "ops", "-tenant", "bank", "-format", "json"}, 0, []string{`"bank"`, `"events": 1,`}, []string{`"retail"`}},
		{[]string{"report", "weekly", "-week", week, "-tenant", "bank", "-as", "rita"}, 1, []string{"may see only tenants [retail]"}, nil},
	} {
		code, out := cli(tc.args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d\n%s", tc.args, code, tc.code, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: %q missing:\n%s", tc.args, w, out)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(out, w) {
				t.Errorf("%v: %q found:\n%s", tc.args, w, out)
			}
		}
	}
	// The audit rows of these runs name the tenants they were about
	// (item 8): an admin of bank sees the bank look-ups, not rita's.
	now := time.Now().UTC()
	for _, tc := range []struct{ tenant, want, not string }{
		{"bank", "tenant=bank", "tenant=retail"},
		{"retail", "tenant=retail", "tenant=bank"},
	} {
		es, err := s.AuditLog(t.Context(), store.AuditFilter{From: now.Add(-time.Hour), To: now.Add(time.Hour), Tenants: []string{tc.tenant}})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range es {
			if len(e.Tenants) != 1 || e.Tenants[0] != tc.tenant || strings.Contains(e.Detail, tc.not) {
				t.Errorf("admin of %s sees %+v", tc.tenant, e)
			}
			found = found || (e.Action == "dsar" || e.Action == "history") && strings.Contains(e.Detail, tc.want)
		}
		if !found {
			t.Errorf("admin of %s sees no look-up of theirs among %d rows", tc.tenant, len(es))
		}
	}
}

// limitedUserCLI writes a configuration for the database ch with the
// pseudonym key keyHex and one dashboards user, name, a responder limited
// to tenant, and returns a runner of chatwarden with it: exit code and
// stdout+stderr.
func limitedUserCLI(t *testing.T, ch store.Config, keyHex, name, tenant string) func(args ...string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "k")
	if err := os.WriteFile(keyFile, []byte(keyHex), 0o600); err != nil {
		t.Fatal(err)
	}
	h, _ := bcrypt.GenerateFromPassword([]byte("x"), bcrypt.MinCost)
	cfg := filepath.Join(dir, "c.yaml")
	y := fmt.Sprintf("clickhouse:\n  addr: %s\n  database: %s\npseudonym:\n  key_file: %s\ndashboards:\n  users:\n    - name: %s\n      role: responder\n      password_hash: %q\n      tenants: [%s]\n",
		ch.Addr, ch.Database, keyFile, name, h, tenant)
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(t.Context(), append(args, "-config", cfg), &out, &errb)
		return code, out.String() + errb.String()
	}
}
