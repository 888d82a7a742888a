package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// DeadLetter is a rejected message's record: where it came from and why.
// The payload itself goes to the dead-letter topic only.
type DeadLetter struct {
	ReceivedAt time.Time
	Topic      string
	Partition  int32
	Offset     int64
	Reason     string
	Field      string
	Detail     string
	// Store is the producer store of a pii_in_payload event ("" for other
	// reasons), for the per-producer counts of status.
	Store   string
	Payload []byte // hashed and measured on insert, never stored
}

// InsertDeadLetters records rejected messages.
func (s *Store) InsertDeadLetters(ctx context.Context, dls []DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO dead_letters (received_at, topic, partition,
offset, reason, field, detail, payload_bytes, payload_sha256, store)`)
	if err != nil {
		return fmt.Errorf("preparing insert of %d dead letters: %w", len(dls), err)
	}
	for _, d := range dls {
		sum := sha256.Sum256(d.Payload)
		if err := batch.Append(d.ReceivedAt.UTC(), d.Topic, d.Partition, d.Offset, d.Reason, d.Field,
			d.Detail, uint32(len(d.Payload)), hex.EncodeToString(sum[:]), d.Store); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("appending dead letter: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d dead letters: %w", len(dls), err)
	}
	return nil
}

// DeadLetterCounts returns the number of distinct dead-lettered source
// offsets per reason code.
func (s *Store) DeadLetterCounts(ctx context.Context) (map[string]uint64, error) {
	return s.countsOf(ctx, "counting dead letters", `SELECT reason, count() FROM dead_letters FINAL GROUP BY reason`)
}

// PIIDeadLetterCounts returns the number of distinct source offsets
// dead-lettered as pii_in_payload per producer store (the 50 largest).
func (s *Store) PIIDeadLetterCounts(ctx context.Context) (map[string]uint64, error) {
	return s.countsOf(ctx, "counting pii dead letters", `SELECT store, count() AS n FROM dead_letters FINAL
WHERE reason = 'pii_in_payload' GROUP BY store ORDER BY n DESC, store LIMIT 50`)
}

// PIIStoredCounts returns, per producer store (the 50 largest), the number
// of events stored with their payload PII pseudonymized: the sum of the
// scores (events) of the pii_in_payload findings ingest raised against the
// producer.
func (s *Store) PIIStoredCounts(ctx context.Context) (map[string]uint64, error) {
	return s.countsOf(ctx, "counting pseudonymized pii events", `SELECT actor_id, toUInt64(sum(score)) AS n FROM findings
WHERE detector = 'pii_in_payload' GROUP BY actor_id ORDER BY n DESC, actor_id LIMIT 50`)
}
