package eval

import (
	"fmt"
	"testing"

	"github.com/chatwarden/chatwarden/pseudonym"
)

// TestHashCacheMatchesPseudonymizer: through generations small enough to
// turn over many times, every id gets the pseudonymizer's own pseudonym,
// repeated ids included, and "" stays "".
func TestHashCacheMatchesPseudonymizer(t *testing.T) {
	p, err := pseudonym.New(pseudonym.Key{ID: 'e', Secret: evalKey[:]})
	if err != nil {
		t.Fatal(err)
	}
	h := newHashCache(p, 8)
	if got := h.Hash(""); got != "" {
		t.Fatalf(`Hash("") = %q`, got)
	}
	for i := range 2000 {
		// a few hot ids among many seen once, and ids seen again after
		// their generation was dropped
		for _, raw := range []string{fmt.Sprintf("cust-%d", i%5), fmt.Sprintf("tk-%d", i), fmt.Sprintf("prof-%d", (i*7)%300),
			// ids of 14 to 17 bytes (the packed key holds up to 15), and
			// ids whose packed bytes differ only in length or by a NUL
			fmt.Sprintf("customer-%05d", i%13), fmt.Sprintf("customer-%08d", i%11), fmt.Sprintf("c\x00%d", i%3), fmt.Sprintf("c%d", i%3)} {
			if got, want := h.Hash(raw), p.Hash(raw); got != want {
				t.Fatalf("step %d: Hash(%q) = %q, want %q", i, raw, got, want)
			}
		}
		for _, n := range []int{len(h.short.m), len(h.short.old), len(h.long.m), len(h.long.old)} {
			if n > 8 {
				t.Fatalf("step %d: a generation of %d entries, bound 8", i, n)
			}
		}
	}
}

// TestRecentHashCacheMatchesPseudonymizer: through a table of 8 slots
// (ids replacing each other in them all the time) and long ids'
// generations of 8, every id gets the pseudonymizer's own pseudonym, a
// short id's slot holds it (and its pseudonym) after it was hashed, and
// "" stays "".
func TestRecentHashCacheMatchesPseudonymizer(t *testing.T) {
	p, err := pseudonym.New(pseudonym.Key{ID: 'e', Secret: evalKey[:]})
	if err != nil {
		t.Fatal(err)
	}
	h := newRecentHashCache(p, 3)
	if got := h.Hash(""); got != "" {
		t.Fatalf(`Hash("") = %q`, got)
	}
	for i := range 2000 {
		for _, raw := range []string{fmt.Sprintf("cust-%d", i%5), fmt.Sprintf("tk-%d", i), fmt.Sprintf("prof-%d", (i*7)%300),
			fmt.Sprintf("customer-%05d", i%13), fmt.Sprintf("customer-%08d", i%11), fmt.Sprintf("c\x00%d", i%3), fmt.Sprintf("c%d", i%3),
			"\x00", "\x00\x00"} {
			if got, want := h.Hash(raw), p.Hash(raw); got != want {
				t.Fatalf("step %d: Hash(%q) = %q, want %q", i, raw, got, want)
			}
			if len(raw) < len(shortID{}) {
				// the table holds raw's pseudonym now, under raw's key
				var k shortID
				copy(k[:], raw)
				k[len(k)-1] = byte(len(raw))
				held := false
				for _, sl := range h.recent {
					if sl.k == k {
						held = sl.v == p.Hash(raw)
						if !held {
							t.Fatalf("step %d: the slot of %q holds %q", i, raw, sl.v)
						}
					}
				}
				if !held {
					t.Fatalf("step %d: no slot holds %q", i, raw)
				}
			}
		}
		if n := len(h.long.m) + len(h.long.old); n > 16 || h.short.m != nil || len(h.recent) != 8 {
			t.Fatalf("step %d: long ids' generations hold %d, short ids' map %v, %d slots", i, n, h.short.m, len(h.recent))
		}
	}
}
