-- Per-actor per-hour aggregates (UTC hours, whatever the server's time
-- zone): the weekly report's daily volume and vendor activity read this
-- instead of merging a week of actor_minute (millions of rows) or scanning
-- a week of events. Read with the -Merge combinators. The vendor_ columns
-- count only the events with an actor_vendor (VendorActivity's rows).
-- Column names differ from events' so that the view's aliases do not
-- shadow its inputs.
CREATE TABLE IF NOT EXISTS actor_hour (
    hour DateTime,
    tenant String,
    actor_id String,
    events AggregateFunction(sum, UInt64),
    records_sum AggregateFunction(sum, UInt64),
    exports AggregateFunction(sum, UInt64),
    denied AggregateFunction(sum, UInt64),
    vendor_type AggregateFunction(anyLastIf, String, UInt8),
    vendor_role AggregateFunction(anyLastIf, String, UInt8),
    vendor_name AggregateFunction(anyLastIf, String, UInt8),
    vendor_events AggregateFunction(sum, UInt64),
    vendor_records AggregateFunction(sum, UInt64),
    vendor_subjects AggregateFunction(uniqExactIf, String, UInt8)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMMDD(hour)
ORDER BY (hour, tenant, actor_id);

-- Read by the weekly report, never by detection: not in chatwarden eval's
-- detection schema (store.DetectionSchema).
-- +schema full
CREATE MATERIALIZED VIEW IF NOT EXISTS actor_hour_mv TO actor_hour AS
SELECT
    toDateTime(intDiv(toUInt32(ts), 3600) * 3600) AS hour,
    tenant,
    actor_id,
    sumState(toUInt64(1)) AS events,
    sumState(records) AS records_sum,
    sumState(toUInt64(action IN ('export', 'share'))) AS exports,
    sumState(toUInt64(result = 'denied')) AS denied,
    anyLastIfState(actor_type, actor_vendor != '') AS vendor_type,
    anyLastIfState(actor_role, actor_vendor != '') AS vendor_role,
    anyLastIfState(actor_vendor, actor_vendor != '') AS vendor_name,
    sumState(toUInt64(actor_vendor != '')) AS vendor_events,
    sumState(if(actor_vendor != '', records, toUInt64(0))) AS vendor_records,
    uniqExactIfState(subject_id, subject_id != '' AND actor_vendor != '') AS vendor_subjects
FROM events
GROUP BY hour, tenant, actor_id;

-- Back-fill: the events stored before the view existed, by the view's own
-- SELECT. Migrate runs it one UTC hour of events at a time, each daily
-- partition dropped first (store/backfill.go), so a back-fill that stopped
-- part-way runs again without counting an event twice. Run migrate with
-- ingest stopped: an event stored while it runs could be counted twice.
INSERT INTO actor_hour (hour, tenant, actor_id, events, records_sum, exports, denied, vendor_type, vendor_role,
    vendor_name, vendor_events, vendor_records, vendor_subjects)
SELECT
    toDateTime(intDiv(toUInt32(ts), 3600) * 3600) AS hour,
    tenant,
    actor_id,
    sumState(toUInt64(1)) AS events,
    sumState(records) AS records_sum,
    sumState(toUInt64(action IN ('export', 'share'))) AS exports,
    sumState(toUInt64(result = 'denied')) AS denied,
    anyLastIfState(actor_type, actor_vendor != '') AS vendor_type,
    anyLastIfState(actor_role, actor_vendor != '') AS vendor_role,
    anyLastIfState(actor_vendor, actor_vendor != '') AS vendor_name,
    sumState(toUInt64(actor_vendor != '')) AS vendor_events,
    sumState(if(actor_vendor != '', records, toUInt64(0))) AS vendor_records,
    uniqExactIfState(subject_id, subject_id != '' AND actor_vendor != '') AS vendor_subjects
FROM events
GROUP BY hour, tenant, actor_id;
