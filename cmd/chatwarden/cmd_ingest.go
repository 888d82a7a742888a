package main

import (
	"context"
	"fmt"

	"github.com/chatwarden/chatwarden/ingest"
)

func runIngest(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "ingest")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	p, err := c.pseudonymizer()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	s, err := openStore(ctx, e, c)
	if err != nil {
		return err
	}
	defer s.Close()
	return ingest.Run(ctx, c.Ingest, s, p, nil, ingest.NewMetrics(nil), e.log)
}
