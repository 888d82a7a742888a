-- The events that name a customer, ordered by customer: data-subject reports
-- and blast-radius queries read this instead of scanning events.
CREATE TABLE IF NOT EXISTS events_by_subject (
    tenant String,
    subject_id String,
    ts DateTime,
    event_id String,
    actor_id String,
    actor_type String,
    actor_role String,
    actor_vendor String,
    action String,
    store String,
    resource_type String,
    records UInt64,
    fields Array(String),
    purpose String,
    conversation_id String,
    conversation_subject_id String,
    tool String,
    result String,
    client_country String
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (tenant, subject_id, ts);

-- Read by data-subject reports and the investigation pages, never by
-- detection: not in chatwarden eval's detection schema (store.DetectionSchema).
-- +schema full
CREATE MATERIALIZED VIEW IF NOT EXISTS events_by_subject_mv TO events_by_subject AS
SELECT tenant, subject_id, ts, event_id, actor_id, actor_type, actor_role, actor_vendor,
       action, store, resource_type, records, fields, purpose, conversation_id,
       conversation_subject_id, tool, result, client_country
FROM events
WHERE subject_id != '';
