package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/store"
)

// runToCommitted runs ingest until the group has committed every offset of
// the access topic (lag 0), then stops it; what names the input in a failure.
func runToCommitted(t *testing.T, cfg Config, st *store.Store, m *Metrics, what string, opts ...RunOption) {
	t.Helper()
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, cfg, st, testPseudonymizer(t), nil, m, nil, opts...) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-errc:
			t.Fatalf("ingest stopped on %s: %v", what, err)
		default:
		}
		ls, err := GroupLag(t.Context(), cfg, cfg.Group, cfg.AccessTopic)
		lag := int64(-1)
		if err == nil && len(ls) > 0 {
			lag = 0
			for _, l := range ls {
				lag += l.Lag
			}
		}
		if lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lag %d after 60s (err %v): ingest stalled on %s", lag, err, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
	stop()
	if err := <-errc; err != nil {
		t.Fatalf("ingest: %v", err)
	}
}
