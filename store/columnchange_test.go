package store

import "testing"

// TestColumnChangeRe: the statements Migrate checks against system.columns
// before running them (so that a half-applied migration re-runs) are the
// ADD and DROP of one column, with a type whose parentheses hold commas,
// in their single-server and cluster forms; two changes in one ALTER are
// not one column's.
func TestColumnChangeRe(t *testing.T) {
	for _, tc := range []struct {
		stmt, table, verb, column string
	}{
		{"ALTER TABLE events ADD COLUMN destination String", "events", "ADD", "destination"},
		{"ALTER TABLE vendor_hour ADD COLUMN customers AggregateFunction(uniqExactIf, UInt64, UInt8)", "vendor_hour", "ADD", "customers"},
		{"ALTER TABLE db1.vendor_hour_local ON CLUSTER c1 ADD COLUMN customers AggregateFunction(uniqExactIf, UInt64, UInt8)", "vendor_hour_local", "ADD", "customers"},
		{"ALTER TABLE audit_log ADD COLUMN tenants Array(Nullable(String))", "audit_log", "ADD", "tenants"},
		{"ALTER TABLE vendor_hour DROP COLUMN subjects", "vendor_hour", "DROP", "subjects"},
		{"ALTER TABLE db1.vendor_hour_local ON CLUSTER c1 DROP COLUMN subjects", "vendor_hour_local", "DROP", "subjects"},
		{"ALTER TABLE t ADD COLUMN a String, ADD COLUMN b String", "", "", ""},
		{"ALTER TABLE t DROP COLUMN a, DROP COLUMN b", "", "", ""},
		{"ALTER TABLE t MODIFY COLUMN a UInt64", "", "", ""},
	} {
		m := columnChangeRe.FindStringSubmatch(tc.stmt)
		if tc.table == "" {
			if m != nil {
				t.Errorf("%q: matched %q, want no match", tc.stmt, m)
			}
			continue
		}
		if m == nil || m[1] != tc.table || m[2] != tc.verb || m[3] != tc.column {
			t.Errorf("%q: matched %q, want table %s, %s COLUMN %s", tc.stmt, m, tc.table, tc.verb, tc.column)
		}
	}
}
