-- vendor_hour ordered by actor (issue 12, session 14): vendor_actor_hour
-- holds the same rows as vendor_hour (0015, 0017), ordered by (tenant,
-- actor_id, hour) in granules of 256 rows instead of by hour in granules
-- of 8192. The weekly report merges the customer sets of its kept vendor
-- actors in two queries side by side, each over its own range of actors
-- (store.VendorActivity): ordered by hour, every query read and
-- deserialized every vendor row's set of the week (a week is a few
-- granules); ordered by actor, the primary key gives each query the
-- granules of its own actors, and each set is read once, not once per
-- query (at 100M events: 1,483-1,598 ms of CPU per query before, 569-927
-- after; docs/scaling.md, "The weekly report at 100M"). A new table, not
-- vendor_hour created anew: on a cluster a replicated table's ZooKeeper
-- path keeps its old structure. Run migrate with ingest stopped (no view
-- fills either table between the DROP of vendor_hour_mv and the CREATE).
CREATE TABLE IF NOT EXISTS vendor_actor_hour (
    hour DateTime,
    tenant String,
    actor_id String,
    events AggregateFunction(sum, UInt64),
    records_sum AggregateFunction(sum, UInt64),
    vendor_type AggregateFunction(anyLast, String),
    vendor_role AggregateFunction(anyLast, String),
    vendor_name AggregateFunction(anyLast, String),
    customers AggregateFunction(uniqExactIf, UInt64, UInt8)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMMDD(hour)
ORDER BY (tenant, actor_id, hour)
SETTINGS index_granularity = 256;

DROP TABLE IF EXISTS vendor_hour_mv;

-- Read by the weekly report, never by detection: not in chatwarden eval's
-- detection schema (store.DetectionSchema).
-- +schema full
CREATE MATERIALIZED VIEW IF NOT EXISTS vendor_actor_hour_mv TO vendor_actor_hour AS
SELECT
    toDateTime(intDiv(toUInt32(ts), 3600) * 3600) AS hour,
    tenant,
    actor_id,
    sumState(toUInt64(1)) AS events,
    sumState(records) AS records_sum,
    anyLastState(actor_type) AS vendor_type,
    anyLastState(actor_role) AS vendor_role,
    anyLastState(actor_vendor) AS vendor_name,
    uniqExactIfState(cityHash64(subject_id), subject_id != '') AS customers
FROM events
WHERE actor_vendor != ''
GROUP BY hour, tenant, actor_id;

-- Back-fill: every vendor event stored before, by the view's own SELECT,
-- one UTC hour at a time with each daily partition dropped first
-- (store/backfill.go).
INSERT INTO vendor_actor_hour (hour, tenant, actor_id, events, records_sum, vendor_type, vendor_role, vendor_name, customers)
SELECT
    toDateTime(intDiv(toUInt32(ts), 3600) * 3600) AS hour,
    tenant,
    actor_id,
    sumState(toUInt64(1)) AS events,
    sumState(records) AS records_sum,
    anyLastState(actor_type) AS vendor_type,
    anyLastState(actor_role) AS vendor_role,
    anyLastState(actor_vendor) AS vendor_name,
    uniqExactIfState(cityHash64(subject_id), subject_id != '') AS customers
FROM events
WHERE actor_vendor != ''
GROUP BY hour, tenant, actor_id;

-- vendor_hour is filled no more; its rows are all in vendor_actor_hour.
DROP TABLE IF EXISTS vendor_hour;
