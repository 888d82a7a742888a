-- Checkpoints of the detectors' in-memory baselines, one per shard and time.
-- state is a versioned, compressed binary encoding (see detect.State); a
-- missing or unreadable checkpoint is rebuilt from actor_minute.
CREATE TABLE IF NOT EXISTS detect_checkpoints (
    shards UInt16,
    shard UInt16,
    as_of DateTime,
    created_at DateTime,
    format UInt16,
    actors UInt32,
    state String
) ENGINE = ReplacingMergeTree(created_at)
ORDER BY (shards, shard, as_of);

-- Audit of detection tuning: configuration changes (thresholds, severities,
-- policies) and suppression changes made through detection, who and why.
CREATE TABLE IF NOT EXISTS detect_audit (
    ts DateTime,
    kind String,
    author String,
    subject String,
    detail String
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (ts, kind);
