-- Per-vendor-actor per-hour aggregates (UTC hours): the events that have
-- an actor_vendor, and only those. The weekly report's vendor activity
-- reads this instead of actor_hour, whose rows are every actor's (at 10M
-- events in make bench-query, 336k rows merged to find the vendors'). Read
-- with the -Merge combinators. The columns are actor_hour's vendor_
-- columns; events counts the vendor events (CompletePartialInsert checks
-- it against the events table's vendor events).
CREATE TABLE IF NOT EXISTS vendor_hour (
    hour DateTime,
    tenant String,
    actor_id String,
    events AggregateFunction(sum, UInt64),
    records_sum AggregateFunction(sum, UInt64),
    vendor_type AggregateFunction(anyLast, String),
    vendor_role AggregateFunction(anyLast, String),
    vendor_name AggregateFunction(anyLast, String),
    subjects AggregateFunction(uniqExactIf, String, UInt8)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMMDD(hour)
ORDER BY (hour, tenant, actor_id);

-- Read by the weekly report, never by detection: not in chatwarden eval's
-- detection schema (store.DetectionSchema).
-- +schema full
CREATE MATERIALIZED VIEW IF NOT EXISTS vendor_hour_mv TO vendor_hour AS
SELECT
    toDateTime(intDiv(toUInt32(ts), 3600) * 3600) AS hour,
    tenant,
    actor_id,
    sumState(toUInt64(1)) AS events,
    sumState(records) AS records_sum,
    anyLastState(actor_type) AS vendor_type,
    anyLastState(actor_role) AS vendor_role,
    anyLastState(actor_vendor) AS vendor_name,
    uniqExactIfState(subject_id, subject_id != '') AS subjects
FROM events
WHERE actor_vendor != ''
GROUP BY hour, tenant, actor_id;

-- Back-fill: the vendor events stored before the view existed, by the
-- view's own SELECT, one UTC hour at a time with each daily partition
-- dropped first (store/backfill.go), so that it runs again without
-- counting an event twice. Run migrate with ingest stopped.
INSERT INTO vendor_hour (hour, tenant, actor_id, events, records_sum, vendor_type, vendor_role, vendor_name, subjects)
SELECT
    toDateTime(intDiv(toUInt32(ts), 3600) * 3600) AS hour,
    tenant,
    actor_id,
    sumState(toUInt64(1)) AS events,
    sumState(records) AS records_sum,
    anyLastState(actor_type) AS vendor_type,
    anyLastState(actor_role) AS vendor_role,
    anyLastState(actor_vendor) AS vendor_name,
    uniqExactIfState(subject_id, subject_id != '') AS subjects
FROM events
WHERE actor_vendor != ''
GROUP BY hour, tenant, actor_id;
