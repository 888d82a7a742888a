-- Per-actor per-minute export actions alone: actor_minute's exports and
-- export_records count export AND share actions, and agents that share a
-- case with a contracted desk many times a day are not agents that export
-- customer lists. The window detectors read this next to actor_minute
-- (store.WindowAggregates: WindowActivity.ExportOnly, ExportOnlyRecords):
-- an actor's first export, judged against its role's peers, is first_seen's
-- `action:export` item. Only the minutes with an export have a row. Read
-- with the -Merge combinators; events counts the export events
-- (CompletePartialInsert checks it against the events table's exports).
CREATE TABLE IF NOT EXISTS actor_minute_exports (
    minute DateTime,
    tenant String,
    actor_id String,
    events AggregateFunction(sum, UInt64),
    records_sum AggregateFunction(sum, UInt64)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, tenant, actor_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS actor_minute_exports_mv TO actor_minute_exports AS
SELECT
    toStartOfMinute(ts) AS minute,
    tenant,
    actor_id,
    sumState(toUInt64(1)) AS events,
    sumState(records) AS records_sum
FROM events
WHERE action = 'export'
GROUP BY minute, tenant, actor_id;

-- Back-fill: the exports stored before the view existed, by the view's own
-- SELECT, one UTC hour of events at a time with each daily partition
-- dropped first (store/backfill.go), so that it runs again without
-- counting an event twice. Run migrate with ingest stopped. Without it
-- (events already past retention), the minutes before the migration have
-- no exports here: detection, restarted from a checkpoint saved before
-- the split, takes every actor that had exported or shared as having
-- exported (detect: snapshot.ExportSplit), so no first export is
-- reported for what was routine.
INSERT INTO actor_minute_exports (minute, tenant, actor_id, events, records_sum)
SELECT
    toStartOfMinute(ts) AS minute,
    tenant,
    actor_id,
    sumState(toUInt64(1)) AS events,
    sumState(records) AS records_sum
FROM events
WHERE action = 'export'
GROUP BY minute, tenant, actor_id;
