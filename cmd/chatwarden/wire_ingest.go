package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/store"
)

var _ ingest.Store = (*store.Store)(nil)

// ingesting is serve's Kafka consumer: its component and its health check
// (nil while healthy) for /healthz.
type ingesting struct {
	component component
	health    func() error
}

// wireIngest runs the Kafka consumer; observe (nil: none) sees every
// stored batch before its offsets are committed, findings (nil: none) takes
// ingest's own findings (pii_in_payload against a producer); wm follows
// the event time it commits.
func wireIngest(c ingest.Config, s *store.Store, p *pseudonym.Pseudonymizer, reg prometheus.Registerer, log *slog.Logger,
	observe ingest.BatchObserver, findings ingest.FindingSink, wm *ingest.Watermark) ingesting {
	m := ingest.NewMetrics(reg)
	return ingesting{health: m.Health, component: component{name: "ingest", run: func(ctx context.Context) error {
		return ingest.Run(ctx, c, s, p, observe, m, log, ingest.WithWatermark(wm), ingest.WithFindings(findings))
	}}}
}
