-- The audit trail becomes a hash chain (see store/auditchain.go): every row
-- names the process that wrote it (writer), its place in that writer's chain
-- (seq, from 1), the hash of the writer's previous row (prev_hash, empty for
-- seq 1) and its own hash over the canonical fields (hash). os_user is the
-- operating-system account of a CLI run, next to the name given with --as.
-- Each statement adds one column, so that a half-applied migration re-runs
-- (Migrate skips a column that already exists; 18.16 has no IF NOT EXISTS).
ALTER TABLE audit_log ADD COLUMN os_user String;
ALTER TABLE audit_log ADD COLUMN writer String;
ALTER TABLE audit_log ADD COLUMN seq UInt64;
ALTER TABLE audit_log ADD COLUMN prev_hash String;
ALTER TABLE audit_log ADD COLUMN hash String;
