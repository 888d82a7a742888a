-- Actor risk scores: the decayed sum of an actor's recent findings, written
-- by detection each hour for every actor with a non-zero score (and after
-- every cycle that produced findings). The weekly report reads the latest
-- score per actor in a range (argMax on ts).
CREATE TABLE IF NOT EXISTS actor_risk (
    ts DateTime,
    tenant String,
    actor_id String,
    actor_type String,
    actor_role String,
    score Float64,
    findings UInt32,
    top_detector String,
    max_severity String
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, actor_id, ts);
