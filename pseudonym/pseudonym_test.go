package pseudonym

import (
	"bytes"
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
