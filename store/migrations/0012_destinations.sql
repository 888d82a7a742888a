-- Third-party sharing: the destination (organisation, vendor or domain) that
-- received the data of a share or export; empty for every other event.
-- One column per statement (see 0301_audit_chain.sql); Migrate skips a
-- column that is already there (18.16 has no ADD COLUMN IF NOT EXISTS).
ALTER TABLE events ADD COLUMN destination String;

-- The events that sent data to a named destination, ordered by destination:
-- the destination detectors, the weekly report's "data shared with third
-- parties" and the breach assessment read this small table instead of
-- scanning events. Filled by a materialized view in the same INSERT as
-- events; a new table and view, so no existing view is dropped and no
-- insert is missed while the migration runs.
CREATE TABLE IF NOT EXISTS shares (
    tenant String,
    destination String,
    ts DateTime,
    event_id String,
    actor_id String,
    actor_type String,
    actor_role String,
    actor_vendor String,
    action String,
    store String,
    resource_type String,
    subject_id String,
    records UInt64,
    bytes UInt64,
    fields Array(String),
    purpose String,
    result String
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (tenant, destination, ts);

CREATE MATERIALIZED VIEW IF NOT EXISTS shares_mv TO shares AS
SELECT tenant, destination, ts, event_id, actor_id, actor_type, actor_role, actor_vendor,
       action, store, resource_type, subject_id, records, bytes, fields, purpose, result
FROM events
WHERE destination != '' AND action IN ('share', 'export');
