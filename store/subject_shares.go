package store

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// SubjectShare is one line of where a customer's data went: the shares and
// exports (not refused) that named a destination, per destination, action
// and kind of actor.
type SubjectShare struct {
	Tenant      string    `json:"tenant"`
	Destination string    `json:"destination"`
	Action      string    `json:"action"`
	ActorType   string    `json:"actor_type"`
	ActorRole   string    `json:"actor_role,omitempty"`
	ActorVendor string    `json:"actor_vendor,omitempty"`
	Purpose     string    `json:"purpose"`
	Categories  []string  `json:"categories"`
	Events      uint64    `json:"events"`
	Records     uint64    `json:"records"`
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
}

// MaxSubjectShareLines bounds the lines of SubjectShares.
const MaxSubjectShareLines = 1000

// SubjectShares returns where the data of the customers given by their
// pseudonyms went in [from, to): one line per (tenant, destination, action,
// actor type, role, vendor, purpose), most recent first, and whether lines
// were cut at MaxSubjectShareLines. It reads shares (only the events with a
// destination); refused shares are left out, as nothing left.
// tenants (nil: all) bounds the tenants searched.
func (s *Store) SubjectShares(ctx context.Context, tenants, subjectIDs []string, from, to time.Time) ([]SubjectShare, bool, error) {
	if len(subjectIDs) == 0 {
		return nil, false, fmt.Errorf("data-subject shares: no subject id")
	}
	where, args := "", []any{InList(subjectIDs)}
	if len(tenants) > 0 {
		where, args = "tenant IN ? AND ", []any{InList(tenants), InList(subjectIDs)}
	}
	rows, err := s.conn.Query(ctx, `SELECT tenant, destination, action, actor_type, actor_role, actor_vendor, purpose,
groupUniqArrayArray(fields), count(), sum(records), min(ts) AS first_ts, max(ts) AS last_ts
FROM shares
WHERE `+where+`subject_id IN ? AND ts >= ? AND ts < ? AND result != 'denied'
GROUP BY tenant, destination, action, actor_type, actor_role, actor_vendor, purpose
ORDER BY last_ts DESC, destination
LIMIT ?`, append(args, from.UTC(), ceilSecond(to), uint64(MaxSubjectShareLines+1))...)
	if err != nil {
		return nil, false, fmt.Errorf("querying data-subject shares: %w", err)
	}
	defer rows.Close()
	var out []SubjectShare
	for rows.Next() {
		var a SubjectShare
		if err := rows.Scan(&a.Tenant, &a.Destination, &a.Action, &a.ActorType, &a.ActorRole, &a.ActorVendor, &a.Purpose,
			&a.Categories, &a.Events, &a.Records, &a.First, &a.Last); err != nil {
			return nil, false, fmt.Errorf("reading data-subject share: %w", err)
		}
		sort.Strings(a.Categories)
		a.First, a.Last = a.First.UTC(), a.Last.UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("reading data-subject shares: %w", err)
	}
	more := len(out) > MaxSubjectShareLines
	if more {
		out = out[:MaxSubjectShareLines]
	}
	return out, more, nil
}
