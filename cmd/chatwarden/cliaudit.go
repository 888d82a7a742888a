package main

import (
	"context"
	"os"
	"os/user"
	"time"

	"github.com/chatwarden/chatwarden/store"
)

// cliUser is who runs a CLI query: -as, else the OS user.
func cliUser(as string) string {
	if as != "" {
		return as
	}
	return osUser()
}

// osUser is the operating-system account running the process, as the kernel
// knows it (the user id looked up in the password database). $USER is used
// only when that look-up fails, since anyone can set it.
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if n := os.Getenv("USER"); n != "" {
		return n
	}
	return "unknown"
}

// auditCLI writes a CLI query about tenants (nil: none or every tenant) to
// the audit trail with the OS account next to who (the -as name); the
// query's result must not be shown when it fails.
func auditCLI(ctx context.Context, s *store.Store, who, action, detail string, rows int, tenants []string) error {
	host, _ := os.Hostname()
	return s.InsertAudit(ctx, store.AuditEntry{TS: time.Now(), User: who, OSUser: osUser(), Role: "cli", Source: "cli",
		Action: action, Detail: detail, Rows: uint64(rows), Remote: host, Tenants: tenants})
}
