-- The producer store of a dead-lettered access event whose free fields held
-- personal data (pii_in_payload), so that `chatwarden status` counts them
-- per producer; empty for every other reason. One column per statement (see
-- 0301_audit_chain.sql).
ALTER TABLE dead_letters ADD COLUMN store String;
