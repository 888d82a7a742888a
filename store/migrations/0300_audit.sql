-- The audit trail of who looked at what: every history search, export,
-- blast-radius and data-subject query from the pages, the API and the CLI.
-- detail holds the filter as the query ran (customer ids only as pseudonyms).
CREATE TABLE IF NOT EXISTS audit_log (
    ts DateTime,
    user String,
    role String,
    source String,
    action String,
    detail String,
    rows UInt64,
    remote String
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY ts;
