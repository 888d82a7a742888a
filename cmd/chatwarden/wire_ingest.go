package main

import (
	"context"
	"time"

	"github.com/chatwarden/chatwarden/ingest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

var _ ingest.Store = (*store.Store)(nil)

// wireIngest runs the Kafka consumer. Observers registered by other wirings
// see every stored batch, in registration order.
func wireIngest(_ context.Context, d *serveDeps) ([]component, error) {
	m := ingest.NewMetrics(d.registry)
	d.health = append(d.health, m.Health)
	return []component{{name: "ingest", run: func(ctx context.Context) error {
		obs := d.observers
		var observe ingest.BatchObserver
		if len(obs) > 0 {
			observe = func(ctx context.Context, now time.Time, evs []models.Event, cs []models.Consent) {
				for _, o := range obs {
					o(ctx, now, evs, cs)
				}
			}
		}
		return ingest.Run(ctx, d.cfg.Ingest, d.store, d.pseudo, observe, m, d.log)
	}}}, nil
}
