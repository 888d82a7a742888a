-- Raw access events, ordered for actor lookups. Customer ids are HMACs.
CREATE TABLE IF NOT EXISTS events (
    event_id String,
    ts DateTime,
    tenant String,
    actor_id String,
    actor_type String,
    actor_role String,
    actor_vendor String,
    action String,
    store String,
    resource_type String,
    resource_id String,
    subject_id String,
    records UInt64,
    bytes UInt64,
    fields Array(String),
    purpose String,
    conversation_id String,
    conversation_subject_id String,
    tool String,
    result String,
    client_ip String,
    client_country String,
    client_user_agent String,
    ingested_at DateTime
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (tenant, actor_id, ts);

-- Event ids, ordered by id, so that ingest can drop redelivered events with a
-- primary-key lookup. Filled by a materialized view, in the same INSERT as events.
CREATE TABLE IF NOT EXISTS event_ids (
    event_id String,
    tenant String,
    ts DateTime
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY event_id;

-- Only ingest's dedupe reads event_ids: not in chatwarden eval's detection
-- schema (store.DetectionSchema).
-- +schema full
CREATE MATERIALIZED VIEW IF NOT EXISTS event_ids_mv TO event_ids AS
SELECT event_id, tenant, ts FROM events;
