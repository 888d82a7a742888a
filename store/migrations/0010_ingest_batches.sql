-- Ingest's batch markers, for the event rules: the source offset ranges of
-- each batch, written with judged = 0 before its events are inserted and
-- with judged = 1 after the event rules have seen them (before the offsets
-- are committed). Events that a redelivered batch finds already stored at
-- offsets of a batch never marked judged were stored by an ingest that
-- stopped before the rules saw them: they are judged then. (Events found
-- stored at offsets of no batch are a producer's duplicates: judged once
-- already.) The highest judged wins on merge.
CREATE TABLE IF NOT EXISTS ingest_batches (
    marked_at DateTime,
    topic String,
    partition Int32,
    first_offset Int64,
    last_offset Int64,
    judged UInt8
) ENGINE = ReplacingMergeTree(judged)
PARTITION BY toYYYYMMDD(marked_at)
ORDER BY (topic, partition, first_offset, last_offset);
