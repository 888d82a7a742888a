package store

import (
	"slices"
	"strings"
	"testing"
)

// TestVendorSetRanges: the kept vendor actors are cut, in key order
// (tenant, actor_id), into contiguous ranges (each query of
// vendorActivityHourly reads only its own range's granules of
// vendor_actor_hour) of about equal records, each actor in exactly one
// range, none empty while there are actors enough.
func TestVendorSetRanges(t *testing.T) {
	act := func(tenant, id string, records uint64) ActorInfo {
		return ActorInfo{Tenant: tenant, ActorID: id, Records: records}
	}
	for _, tc := range []struct {
		name string
		as   []ActorInfo
		n    int
		want [][]string // tenant/actor per range
	}{
		{name: "none", n: 2},
		{name: "one actor", as: []ActorInfo{act("t", "a", 5)}, n: 2, want: [][]string{{"t/a"}}},
		{name: "two actors", as: []ActorInfo{act("t", "b", 1), act("t", "a", 100)}, n: 2, want: [][]string{{"t/a"}, {"t/b"}}},
		{
			// rank order (records) is not key order; the cut balances
			// the records: 10+10+10 | 10+20
			name: "balanced by records",
			as:   []ActorInfo{act("t", "e", 20), act("t", "a", 10), act("t", "b", 10), act("t", "c", 10), act("t", "d", 10)},
			n:    2,
			want: [][]string{{"t/a", "t/b", "t/c"}, {"t/d", "t/e"}},
		},
		{
			// one heavy actor first in key order takes a range alone
			name: "heavy first",
			as:   []ActorInfo{act("t", "a", 1000), act("t", "b", 1), act("t", "c", 1), act("t", "d", 1)},
			n:    2,
			want: [][]string{{"t/a"}, {"t/b", "t/c", "t/d"}},
		},
		{
			// a heavy actor last still leaves the first range its
			// actors, and no range is empty
			name: "heavy last",
			as:   []ActorInfo{act("t", "a", 1), act("t", "b", 1), act("t", "z", 1000)},
			n:    2,
			want: [][]string{{"t/a", "t/b"}, {"t/z"}},
		},
		{
			// tenant before actor id: the same id in two tenants
			name: "tenants",
			as:   []ActorInfo{act("u", "a", 5), act("t", "b", 5), act("t", "a", 5), act("u", "b", 5)},
			n:    2,
			want: [][]string{{"t/a", "t/b"}, {"u/a", "u/b"}},
		},
		{
			name: "three ranges",
			as:   []ActorInfo{act("t", "a", 3), act("t", "b", 3), act("t", "c", 3), act("t", "d", 3), act("t", "e", 3), act("t", "f", 3)},
			n:    3,
			want: [][]string{{"t/a", "t/b"}, {"t/c", "t/d"}, {"t/e", "t/f"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [][]string
			for _, r := range vendorSetRanges(tc.as, tc.n) {
				var ids []string
				for _, i := range r {
					ids = append(ids, tc.as[i].Tenant+"/"+tc.as[i].ActorID)
				}
				got = append(got, ids)
			}
			if !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Errorf("ranges %v, want %v", got, tc.want)
			}
		})
	}
}

// TestVendorSetRangesCoverEveryActor: for many sizes, every actor is in
// exactly one range, the ranges follow key order without overlap, and
// there are min(n, actors) of them.
func TestVendorSetRangesCoverEveryActor(t *testing.T) {
	for size := 0; size <= 40; size++ {
		as := make([]ActorInfo, size)
		for i := range as {
			// records from a fixed, uneven pattern; ids not in key order
			as[i] = ActorInfo{Tenant: "t", ActorID: string(rune('a'+(i*7)%size)) + strings.Repeat("x", i%3), Records: uint64(1 + (i*i*31)%97)}
		}
		for n := 1; n <= 4; n++ {
			ranges := vendorSetRanges(as, n)
			if want := min(n, size); len(ranges) != want {
				t.Fatalf("%d actors, %d queries: %d ranges, want %d", size, n, len(ranges), want)
			}
			seen := make([]bool, size)
			var last string
			for _, r := range ranges {
				if len(r) == 0 {
					t.Fatalf("%d actors, %d queries: an empty range in %v", size, n, ranges)
				}
				for _, i := range r {
					k := as[i].Tenant + "\x00" + as[i].ActorID
					if seen[i] || k < last {
						t.Fatalf("%d actors, %d queries: actor %d twice or out of key order in %v", size, n, i, ranges)
					}
					seen[i], last = true, k
				}
			}
			if slices.Contains(seen, false) {
				t.Fatalf("%d actors, %d queries: an actor in no range: %v", size, n, ranges)
			}
		}
	}
}
