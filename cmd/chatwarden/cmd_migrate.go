package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/store"
)

// openStore connects to ClickHouse and, with audit.kafka_topic set, copies
// every audit entry written through the store to that topic.
func openStore(ctx context.Context, e *env, c Config) (*store.Store, error) {
	s, err := store.Open(ctx, c.ClickHouse, e.log)
	if err != nil || c.Audit.KafkaTopic == "" {
		return s, err
	}
	cp, err := ingest.NewAuditCopier(c.Ingest, c.Audit.KafkaTopic)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("audit.kafka_topic: %w", err)
	}
	s.SetAuditCopy(cp)
	return s, nil
}

func runMigrate(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "migrate")
	copyFrom := fs.String("copy-from", "", "after migrating, copy a single server's database (host:port of its native protocol) into this cluster database (clickhouse.cluster; docs/scaling.md)")
	copyDB := fs.String("copy-from-database", "chatwarden", "the database to copy from, with -copy-from")
	copyUser := fs.String("copy-from-user", "default", "the ClickHouse user the cluster node reads the source as, with -copy-from (password: $CHATWARDEN_COPY_FROM_PASSWORD)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	s, err := openStore(ctx, e, c)
	if err != nil {
		return err
	}
	defer s.Close()
	res, err := s.Migrate(ctx, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "database %s on ClickHouse %s: schema version %d (applied %d migrations now)\n",
		s.Database(), s.Version().Raw, res.Current, len(res.Applied))
	if *copyFrom == "" {
		return nil
	}
	copies, err := s.CopyFromServer(ctx, *copyFrom, *copyDB, *copyUser, os.Getenv("CHATWARDEN_COPY_FROM_PASSWORD"))
	for _, c := range copies {
		fmt.Fprintf(e.stdout, "copied %s: %d of %d rows\n", c.Table, c.Copied, c.Source)
	}
	return err
}

func runConfig(_ context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(e.stderr, "usage: chatwarden config check -config FILE")
		return errUsage
	}
	fs, cfgPath := newFlags(e, "config check")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	c, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if _, err := c.pseudonymizer(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	fmt.Fprintln(e.stdout, "config OK")
	return nil
}
