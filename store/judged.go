package store

import (
	"context"
	"fmt"
	"time"
)

// OffsetRange is the source offsets [First, Last] of one partition: an
// ingest batch's messages of that partition.
type OffsetRange struct {
	Topic     string
	Partition int32
	First     int64
	Last      int64
	// Judged is false while the batch is inserted but its events are not
	// yet seen by the event rules.
	Judged bool
}

// MarkBatches records ingest batches' offset ranges (idempotent: a
// repeated range replaces itself, judged winning).
func (s *Store) MarkBatches(ctx context.Context, ranges []OffsetRange, at time.Time) error {
	if len(ranges) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO ingest_batches (marked_at, topic, partition, first_offset, last_offset, judged)`)
	if err != nil {
		return fmt.Errorf("preparing insert of %d batch marks: %w", len(ranges), err)
	}
	for _, r := range ranges {
		var j uint8
		if r.Judged {
			j = 1
		}
		if err := batch.Append(at.UTC(), r.Topic, r.Partition, r.First, r.Last, j); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("appending batch mark: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("inserting %d batch marks: %w", len(ranges), err)
	}
	return nil
}

// BatchMarks returns the marked ranges of topic's partition that overlap
// [first, last], each once (judged if it was ever marked judged).
func (s *Store) BatchMarks(ctx context.Context, topic string, partition int32, first, last int64) ([]OffsetRange, error) {
	rows, err := s.conn.Query(ctx, `SELECT first_offset, last_offset, max(judged) FROM ingest_batches
WHERE topic = ? AND partition = ? AND last_offset >= ? AND first_offset <= ?
GROUP BY first_offset, last_offset`, topic, partition, first, last)
	if err != nil {
		return nil, fmt.Errorf("reading batch marks of %s/%d: %w", topic, partition, err)
	}
	defer rows.Close()
	var out []OffsetRange
	for rows.Next() {
		r := OffsetRange{Topic: topic, Partition: partition}
		var j uint8
		if err := rows.Scan(&r.First, &r.Last, &j); err != nil {
			return nil, err
		}
		r.Judged = j == 1
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading batch marks of %s/%d: %w", topic, partition, err)
	}
	return out, nil
}
