package main

import (
	"context"
	"fmt"
	"time"

	"github.com/chatwarden/chatwarden/store"
)

// openStore opens the configured ClickHouse database.
func openStore(ctx context.Context, e *env, c Config) (*store.Store, error) {
	return store.Open(ctx, c.ClickHouse, e.log)
}

func runMigrate(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "migrate")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(*cfgPath)
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
	return nil
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
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if _, err := c.pseudonymizer(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	fmt.Fprintln(e.stdout, "config OK")
	return nil
}
