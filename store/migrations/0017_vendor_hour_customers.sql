-- vendor_hour's customer sets as 64-bit hashes (issue 12, session 9):
-- customers holds cityHash64 of each vendor event's subject_id (the
-- pseudonym), where subjects held the pseudonyms' 128-bit hashes. Merging
-- the sets is nearly all of the weekly report's vendor activity, and a set
-- of UInt64 merges in about 40% of the CPU of a set of strings (half the
-- bytes to read and insert, no string hashing). Counts stay exact unless
-- two customers of one vendor actor's range share a 64-bit hash: about
-- n^2 / 2^65 for n customers, 7e-9 at 500,000 (docs/scaling.md, "The
-- weekly report at 100M"). The view is created anew with the new column
-- and without subjects, which is dropped; the back-fill rebuilds every
-- partition from events. Run migrate with ingest stopped (the view does
-- not exist between its DROP and its CREATE).
DROP TABLE IF EXISTS vendor_hour_mv;

ALTER TABLE vendor_hour ADD COLUMN customers AggregateFunction(uniqExactIf, UInt64, UInt8);

ALTER TABLE vendor_hour DROP COLUMN subjects;

-- Not in chatwarden eval's detection schema (see 0015_vendor_hour.sql).
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
    uniqExactIfState(cityHash64(subject_id), subject_id != '') AS customers
FROM events
WHERE actor_vendor != ''
GROUP BY hour, tenant, actor_id;

-- Back-fill: every vendor event stored before, by the view's own SELECT,
-- one UTC hour at a time with each daily partition dropped first
-- (store/backfill.go): the rows written before this migration, without
-- customers, are replaced.
INSERT INTO vendor_hour (hour, tenant, actor_id, events, records_sum, vendor_type, vendor_role, vendor_name, customers)
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
