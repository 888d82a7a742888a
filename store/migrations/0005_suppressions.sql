-- Allow-lists, silences and false-positive marks. Append-only: the latest row
-- per id wins (argMax on version); lifting a suppression appends a row with
-- deleted = 1. Read by detection (suppress, re-baseline) and alerting.
CREATE TABLE IF NOT EXISTS suppressions (
    id String,
    version UInt64,
    kind String,
    tenant String,
    actor_id String,
    detector String,
    store String,
    created_at DateTime,
    until DateTime,
    author String,
    reason String,
    deleted UInt8
) ENGINE = ReplacingMergeTree(version)
ORDER BY id;
