// Package ingest moves access.v1 and consent.v1 events from Kafka into
// ClickHouse without losing or duplicating any: a kafka-go consumer group
// fetches messages, each is decoded and validated (models.DecodeAccess,
// models.DecodeConsent), customer ids are pseudonymized, messages are batched
// by size and linger, events already stored are dropped by event_id, the
// batch is inserted, a BatchObserver sees it, and only then are the batch's
// offsets committed (at-least-once delivery, exactly-once visibility).
//
// A message that fails validation is written to the dead-letter topic (the
// original bytes plus reason headers) and to the dead_letters table before
// its offset is committed with the batch; ingest never stops for it. When
// ClickHouse or Kafka is down, every step retries with exponential backoff
// bounded by the context and nothing is committed until it succeeds.
//
// The package also holds the other kafka-go code of the command line:
// producing JSONL files (Producer), creating topics (CreateTopics) and
// reading a group's lag (GroupLag).
package ingest
