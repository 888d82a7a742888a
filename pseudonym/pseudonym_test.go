package pseudonym

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
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

// TestPseudonymsAsDefined: the pooled states (HashTenant, Hash) give the
// pseudonyms the package doc defines, computed here with a fresh
// crypto/hmac, for ids of every length up to past the scratch buffer's
// bound, from several goroutines; and a fixed answer (Python's hmac) pins
// the stored form.
func TestPseudonymsAsDefined(t *testing.T) {
	k := Key{ID: '1', Secret: []byte("0123456789abcdef0123456789abcdef")}
	p, err := New(k)
	if err != nil {
		t.Fatal(err)
	}
	// python3: "t1" + hmac.new(key, struct.pack(">I", 4) + b"acme" + b"cust-1", sha256).hexdigest()[:32]
	if got, want := p.HashTenant("acme", "cust-1"), "t195f08bd06e59bef19c4d132282d28a50"; got != want {
		t.Errorf(`HashTenant("acme", "cust-1") = %s, want %s`, got, want)
	}
	if got, want := p.Hash("cust-1"), "p1014edb0187e5c6bac4d04e6c2fc84d42"; got != want {
		t.Errorf(`Hash("cust-1") = %s, want %s`, got, want)
	}
	define := func(scheme byte, input []byte) string {
		m := hmac.New(sha256.New, k.Secret)
		m.Write(input)
		return string([]byte{scheme, k.ID}) + hex.EncodeToString(m.Sum(nil)[:16])
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for n := 1; n < 1400; n += 1 + n/8 {
				raw := strings.Repeat(string(rune('a'+g)), n)
				tenant := strings.Repeat("t", n%7)
				in := binary.BigEndian.AppendUint32(nil, uint32(len(tenant)))
				in = append(append(in, tenant...), raw...)
				if got, want := p.HashTenant(tenant, raw), define('t', in); got != want {
					t.Errorf("HashTenant(%d-byte tenant, %d-byte id) = %s, want %s", len(tenant), n, got, want)
				}
				if got, want := p.Hash(raw), define('p', []byte(raw)); got != want {
					t.Errorf("Hash(%d-byte id) = %s, want %s", n, got, want)
				}
			}
		})
	}
	wg.Wait()
}
