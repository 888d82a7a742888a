-- The events ordered by UTC hour and actor, with the columns the blast
-- radius of alert windows reads (ExposureOfWindows). events is ordered by
-- actor, and a week of most actors fits in a few granules, so the alert
-- windows of a weekly report (hundreds of actors) selected nearly every
-- granule of the week (9.2M of 10M rows in make bench-query); here the
-- (hour, tenant, actor) of the windows select only their own small
-- granules. Filled by a materialized view in the same INSERT as events.
CREATE TABLE IF NOT EXISTS events_by_hour (
    hour DateTime,
    tenant String,
    actor_id String,
    ts DateTime,
    event_id String,
    store String,
    client_country String,
    fields Array(String),
    records UInt64,
    action String,
    result String,
    subject_id String
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(hour)
ORDER BY (hour, tenant, actor_id, ts)
SETTINGS index_granularity = 1024;

-- Read by the blast radius of reports and pages, never by detection: not in
-- chatwarden eval's detection schema (store.DetectionSchema).
-- +schema full
CREATE MATERIALIZED VIEW IF NOT EXISTS events_by_hour_mv TO events_by_hour AS
SELECT toDateTime(intDiv(toUInt32(ts), 3600) * 3600) AS hour, tenant, actor_id, ts, event_id, store,
       client_country, fields, records, action, result, subject_id
FROM events;

-- Back-fill: the events stored before the view existed, by the view's own
-- SELECT. Migrate runs it one UTC hour of events at a time, each daily
-- partition dropped first (store/backfill.go), so a back-fill that stopped
-- part-way runs again without counting an event twice. Run migrate with
-- ingest stopped: an event stored while it runs could be counted twice.
INSERT INTO events_by_hour (hour, tenant, actor_id, ts, event_id, store, client_country, fields, records, action,
    result, subject_id)
SELECT toDateTime(intDiv(toUInt32(ts), 3600) * 3600) AS hour, tenant, actor_id, ts, event_id, store,
       client_country, fields, records, action, result, subject_id
FROM events;
