-- Per-actor per-minute aggregates: what window detectors read, so that a
-- detection cycle never scans raw events. Read with the -Merge combinators
-- (sumMerge(records_sum), uniqExactIfMerge(subjects), ...). Column names
-- differ from events' so that the view's aliases do not shadow its inputs.
CREATE TABLE IF NOT EXISTS actor_minute (
    minute DateTime,
    tenant String,
    actor_id String,
    actor_type_any AggregateFunction(anyLast, String),
    actor_role_any AggregateFunction(anyLast, String),
    actor_vendor_any AggregateFunction(anyLast, String),
    events AggregateFunction(sum, UInt64),
    records_sum AggregateFunction(sum, UInt64),
    bytes_sum AggregateFunction(sum, UInt64),
    exports AggregateFunction(sum, UInt64),
    export_records AggregateFunction(sum, UInt64),
    denied AggregateFunction(sum, UInt64),
    subjects AggregateFunction(uniqExactIf, String, UInt8),
    stores AggregateFunction(groupUniqArray, String),
    resource_types AggregateFunction(groupUniqArray, String),
    categories AggregateFunction(groupUniqArrayArray, Array(String)),
    countries AggregateFunction(groupUniqArrayIf, String, UInt8)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, tenant, actor_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS actor_minute_mv TO actor_minute AS
SELECT
    toStartOfMinute(ts) AS minute,
    tenant,
    actor_id,
    anyLastState(actor_type) AS actor_type_any,
    anyLastState(actor_role) AS actor_role_any,
    anyLastState(actor_vendor) AS actor_vendor_any,
    sumState(toUInt64(1)) AS events,
    sumState(records) AS records_sum,
    sumState(bytes) AS bytes_sum,
    sumState(toUInt64(action IN ('export', 'share'))) AS exports,
    sumState(if(action IN ('export', 'share'), records, toUInt64(0))) AS export_records,
    sumState(toUInt64(result = 'denied')) AS denied,
    uniqExactIfState(subject_id, subject_id != '') AS subjects,
    groupUniqArrayState(store) AS stores,
    groupUniqArrayState(resource_type) AS resource_types,
    groupUniqArrayArrayState(fields) AS categories,
    groupUniqArrayIfState(client_country, client_country != '') AS countries
FROM events
GROUP BY minute, tenant, actor_id;
