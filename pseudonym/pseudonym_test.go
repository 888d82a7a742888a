package pseudonym

import (
	"bytes"
	"fmt"
	"testing"
)

func TestHash(t *testing.T) {
	k1 := Key{ID: '1', Secret: bytes.Repeat([]byte{1}, 32)}
	k2 := Key{ID: '2', Secret: bytes.Repeat([]byte{2}, 32)}
	p, err := New(k2, k1)
	if err != nil {
		t.Fatal(err)
	}
	a, b := p.Hash("cust-42"), p.Hash("cust-42")
	if a != b || a == "cust-42" || !IsPseudonym(a) || a[1] != '2' {
		t.Fatalf("hash %q %q", a, b)
	}
	if p.Hash("") != "" {
		t.Fatal("empty id must stay empty")
	}
	old, _ := New(k1)
	all := p.All("cust-42")
	if len(all) != 2 || all[0] != a || all[1] != old.Hash("cust-42") {
		t.Fatalf("All = %v", all)
	}
	if _, err := New(Key{ID: '1', Secret: []byte("short")}); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestHashConcurrentMatchesFresh(t *testing.T) {
	k := Key{ID: '3', Secret: bytes.Repeat([]byte{7}, 40)}
	p, _ := New(k)
	done := make(chan bool)
	for g := range 4 {
		go func() {
			for i := range 500 {
				raw := string(rune('a'+g)) + string(bytes.Repeat([]byte{'x'}, i%90))
				if got, want := p.Hash(raw), hashWith(k, raw); got != want {
					t.Errorf("pooled %q != fresh %q", got, want)
				}
			}
			done <- true
		}()
	}
	for range 4 {
		<-done
	}
}

func BenchmarkHash(b *testing.B) {
	p, _ := New(Key{ID: '1', Secret: bytes.Repeat([]byte{1}, 32)})
	b.ReportAllocs()
	for b.Loop() {
		p.Hash("cust-0001234")
	}
}

func BenchmarkHashFresh(b *testing.B) {
	k := Key{ID: '1', Secret: bytes.Repeat([]byte{1}, 32)}
	b.ReportAllocs()
	for b.Loop() {
		hashWith(k, "cust-0001234")
	}
}

// TestTenantScopedPseudonyms: the same raw id in two tenants is two people
// and gets two pseudonyms; within a tenant a conversation's customer and
// the customer read still compare equal; a look-up also searches the
// pre-tenant pseudonyms under every key.
func TestTenantScopedPseudonyms(t *testing.T) {
	k1 := Key{ID: '1', Secret: []byte("0123456789abcdef0123456789abcdef")}
	k2 := Key{ID: '2', Secret: []byte("fedcba9876543210fedcba9876543210")}
	p, err := New(k2, k1)
	if err != nil {
		t.Fatal(err)
	}
	a, b := p.HashTenant("acme", "cust-1"), p.HashTenant("globex", "cust-1")
	if a == b {
		t.Fatalf("cust-1 in two tenants has one pseudonym %s", a)
	}
	if p.HashTenant("acme", "cust-1") != a || !IsPseudonym(a) || a[0] != 't' || a[1] != '2' {
		t.Fatalf("HashTenant not stable or malformed: %s", a)
	}
	if p.HashTenant("ab", "c") == p.HashTenant("a", "bc") {
		t.Fatal("tenant and id run together: (ab, c) and (a, bc) collide")
	}
	if p.HashTenant("acme", "") != "" {
		t.Fatal("empty id not kept empty")
	}
	old, err := New(k1)
	if err != nil {
		t.Fatal(err)
	}
	all := p.AllTenant("acme", "cust-1")
	want := []string{a, old.HashTenant("acme", "cust-1"), p.Hash("cust-1"), old.Hash("cust-1")}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("AllTenant = %v, want %v", all, want)
	}
}
