package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/testsecure"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestEncryptedConnection runs a ClickHouse whose only port is the native
// protocol over TLS and whose only user has a password, and checks that
// store connects, migrates, inserts and reads back through it, and that a
// wrong password, an untrusted certificate or a plain-text client are
// refused. One server serves every case.
func TestEncryptedConnection(t *testing.T) {
	ch := testsecure.StartClickHouse(t, testsecure.NewPKI(t))
	passwordFile := filepath.Join(t.TempDir(), "clickhouse-password")
	if err := os.WriteFile(passwordFile, []byte(ch.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := store.Config{
		Addr: ch.Addr, Database: "tls_test", User: ch.User, PasswordFile: passwordFile,
		TLS: true, TLSCAFile: ch.PKI.CAFile, DialTimeout: 5 * time.Second, QueryTimeout: 20 * time.Second,
	}

	t.Run("tls and password: migrate, insert, select", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		s, err := store.Open(ctx, good, nil)
		if err != nil {
			t.Fatalf("opening over TLS with the right password: %v", err)
		}
		defer s.Close()
		if _, err := s.Migrate(ctx, time.Now()); err != nil {
			t.Fatalf("migrating over TLS: %v", err)
		}
		now := time.Now().UTC().Truncate(time.Second)
		evs := []models.Event{
			{EventID: "tls-1", TS: now.Add(-time.Minute), Tenant: "default", Actor: models.Actor{ID: "agent-1", Type: models.ActorHuman},
				Action: models.ActionRead, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, Records: 1, Result: models.ResultAllowed},
			{EventID: "tls-2", TS: now, Tenant: "default", Actor: models.Actor{ID: "agent-1", Type: models.ActorHuman},
				Action: models.ActionExport, Store: "crm", Resource: models.Resource{Type: "customer_profile"}, Records: 40, Result: models.ResultAllowed},
		}
		if err := s.InsertEvents(ctx, evs, now); err != nil {
			t.Fatalf("inserting over TLS: %v", err)
		}
		got, err := s.ExistingEventIDs(ctx, []string{"tls-1", "tls-2", "tls-3"})
		if err != nil {
			t.Fatalf("selecting over TLS: %v", err)
		}
		if len(got) != 2 || !got["tls-1"] || !got["tls-2"] {
			t.Fatalf("event ids read back over TLS = %v, want tls-1 and tls-2", got)
		}
	})

	refused := []struct {
		name string
		cfg  func(c store.Config) store.Config
		want string // a fragment of the error ("": any error will do)
	}{
		{"wrong password", func(c store.Config) store.Config {
			c.PasswordFile, c.Password = "", ch.Password+"x"
			return c
		}, "password"},
		{"no password", func(c store.Config) store.Config {
			c.PasswordFile = ""
			return c
		}, "password"},
		{"default user", func(c store.Config) store.Config {
			c.User, c.PasswordFile = "", ""
			return c
		}, "default"},
		{"certificate not trusted", func(c store.Config) store.Config {
			c.TLSCAFile = ""
			return c
		}, "certificate"},
		{"plain text to the TLS port", func(c store.Config) store.Config {
			c.TLS, c.TLSCAFile = false, ""
			return c
		}, ""},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cfg := tc.cfg(good)
			cfg.DialTimeout, cfg.QueryTimeout = 3*time.Second, 5*time.Second
			s, err := store.Open(ctx, cfg, nil)
			if err == nil {
				s.Close()
				t.Fatalf("store.Open succeeded; want it refused")
			}
			t.Logf("refused as expected: %v", err)
			if !strings.Contains(strings.ToLower(err.Error()), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}
