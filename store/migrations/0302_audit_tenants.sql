-- Each audit row names the tenants whose data the audited action read or
-- changed (empty: not about one tenant's data, or about every tenant), so
-- that an admin limited to some tenants sees the rows about those only
-- (issue 10 item 8; AuditFilter.Tenants).
ALTER TABLE audit_log ADD COLUMN tenants Array(String);
