-- Alerts: one row per version of an alert (the findings of one fingerprint
-- (detector, tenant, actor) between opening and resolution). Append-only;
-- the latest version per id wins (argMax on version). latest holds the most
-- recent finding as JSON (evidence numbers, no raw customer ids).
CREATE TABLE IF NOT EXISTS alerts (
    id String,
    version UInt64,
    fingerprint String,
    detector String,
    tenant String,
    actor_id String,
    actor_type String,
    severity UInt8,
    status String,
    first_seen DateTime,
    last_seen DateTime,
    findings UInt32,
    latest String,
    updated_at DateTime,
    updated_by String,
    muted_by String,
    acked_at DateTime,
    escalated_at DateTime
) ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- Every state change of an alert (open, acknowledged, escalated, resolved,
-- false_positive, silenced), who made it and when: the audit trail and the
-- source of time-to-acknowledge.
CREATE TABLE IF NOT EXISTS alert_changes (
    alert_id String,
    at DateTime,
    status String,
    previous String,
    by String,
    note String,
    tenant String,
    actor_id String,
    detector String,
    severity UInt8
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(at)
ORDER BY (alert_id, at);

-- Slack messages (alert groups, escalations, weekly digests): what should be
-- shown (rev) and what was delivered (sent_rev, channel + ts). intent_at is
-- set before chat.postMessage, so that a crash between posting and recording
-- the ts is resolved by looking the message up instead of posting twice.
CREATE TABLE IF NOT EXISTS alert_messages (
    id String,
    version UInt64,
    kind String,
    channel String,
    group_key String,
    tenant String,
    actor_id String,
    alert_ids Array(String),
    rev UInt32,
    sent_rev UInt32,
    ts String,
    posted_channel String,
    intent_at DateTime,
    created_at DateTime,
    updated_at DateTime,
    closed UInt8,
    body String
) ENGINE = ReplacingMergeTree(version)
ORDER BY id;
