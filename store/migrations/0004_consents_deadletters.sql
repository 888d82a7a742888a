-- The consent register: the latest event per (tenant, subject, purpose) wins
-- (read with argMax on ts). Subject ids are HMACs.
CREATE TABLE IF NOT EXISTS consents (
    tenant String,
    subject_id String,
    purpose String,
    granted UInt8,
    ts DateTime,
    event_id String,
    ingested_at DateTime
) ENGINE = ReplacingMergeTree(ts)
ORDER BY (tenant, subject_id, purpose);

-- Dead letters: why a message was rejected and where it came from. The
-- original bytes go to the dead-letter topic only; here we keep their size and
-- SHA-256, so that no raw customer id reaches ClickHouse. One row per source
-- offset (redelivery replaces, read with FINAL).
CREATE TABLE IF NOT EXISTS dead_letters (
    received_at DateTime,
    topic String,
    partition Int32,
    offset Int64,
    reason String,
    field String,
    detail String,
    payload_bytes UInt32,
    payload_sha256 String
) ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMMDD(received_at)
ORDER BY (topic, partition, offset);
