package store

import (
	"context"
	"fmt"
	"time"
)

// Summary is what `chatwarden status` shows of the store.
type Summary struct {
	Version       string            `json:"clickhouse_version"`
	Database      string            `json:"database"`
	SchemaVersion int               `json:"schema_version"`
	Events        uint64            `json:"events"`
	DistinctIDs   uint64            `json:"distinct_event_ids"`
	LastEventTS   time.Time         `json:"last_event_ts"`
	LastIngested  time.Time         `json:"last_ingested_at"`
	Consents      uint64            `json:"consents"`
	DeadLetters   map[string]uint64 `json:"dead_letters"`
	// PIIByStore counts pii_in_payload dead letters per producer store.
	PIIByStore map[string]uint64 `json:"pii_dead_letters_by_store"`
	// PIIStoredByStore counts the events stored with their payload PII
	// pseudonymized (ingest.pii: pseudonymize) per producer store, from
	// the pii_in_payload findings raised against the producers.
	PIIStoredByStore map[string]uint64 `json:"pii_pseudonymized_by_store"`
}

// Summary counts what is stored.
func (s *Store) Summary(ctx context.Context) (Summary, error) {
	sum := Summary{Version: s.version.Raw, Database: s.cfg.Database}
	var schema uint32
	if err := s.conn.QueryRow(ctx, "SELECT max(version) FROM schema_migrations").Scan(&schema); err != nil {
		return sum, fmt.Errorf("reading schema version: %w", err)
	}
	sum.SchemaVersion = int(schema)
	if err := s.conn.QueryRow(ctx, "SELECT count(), max(ts), max(ingested_at) FROM events").
		Scan(&sum.Events, &sum.LastEventTS, &sum.LastIngested); err != nil {
		return sum, fmt.Errorf("counting events: %w", err)
	}
	if err := s.conn.QueryRow(ctx, "SELECT uniqExact(event_id) FROM event_ids").Scan(&sum.DistinctIDs); err != nil {
		return sum, fmt.Errorf("counting event ids: %w", err)
	}
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM consents").Scan(&sum.Consents); err != nil {
		return sum, fmt.Errorf("counting consents: %w", err)
	}
	dl, err := s.DeadLetterCounts(ctx)
	if err != nil {
		return sum, err
	}
	sum.DeadLetters = dl
	if dl["pii_in_payload"] > 0 {
		if sum.PIIByStore, err = s.PIIDeadLetterCounts(ctx); err != nil {
			return sum, err
		}
	}
	if sum.PIIStoredByStore, err = s.PIIStoredCounts(ctx); err != nil {
		return sum, err
	}
	return sum, nil
}
