-- Findings of the detection engine (event rules and window detectors), one row
-- per finding. Read by alerting, the dashboards and the weekly report.
-- evidence is the JSON of models.Evidence (observed, baseline, spread,
-- threshold, peers, top subjects/stores/categories, the reproducing query).
-- suppressed = 1 marks a finding muted by an allow-list entry, a silence or a
-- false-positive mark (stored for audit, not sent to alerting).
CREATE TABLE IF NOT EXISTS findings (
    detected_at DateTime,
    window_start DateTime,
    window_end DateTime,
    tenant String,
    actor_id String,
    actor_type String,
    actor_role String,
    actor_vendor String,
    detector String,
    fingerprint String,
    severity String,
    severity_level UInt8,
    score Float64,
    probability Float64,
    summary String,
    evidence String,
    suppressed UInt8,
    suppression_id String
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(detected_at)
ORDER BY (tenant, actor_id, detected_at);
