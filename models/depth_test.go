package models

import (
	"math/rand/v2"
	"testing"
)

// depthBytewise is depth as it was, one byte at a time: the reference the
// string-skipping depth must match.
func depthBytewise(b []byte) int {
	d, deepest, inStr, esc := 0, 0, false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			d++
			deepest = max(deepest, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return deepest
}

// TestDepthMatchesBytewise: depth agrees with the byte-at-a-time scan on
// random texts of brackets, quotes and backslashes (escaped quotes, runs
// of backslashes, unterminated strings, brackets outside and inside
// strings).
func TestDepthMatchesBytewise(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = `{}[]"\\a`
	for range 200_000 {
		b := make([]byte, r.IntN(24))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		if got, want := depth(b), depthBytewise(b); got != want {
			t.Fatalf("depth(%q) = %d, want %d", b, got, want)
		}
		checkNestBound(t, b)
	}
}

// checkNestBound: mayNestDeeper, which lets precheck skip depth, is false
// only when depth is within the limit (at every limit up to depth + 1).
func checkNestBound(t *testing.T, b []byte) {
	t.Helper()
	d := depth(b)
	for limit := range d + 2 {
		if !mayNestDeeper(b, limit) && d > limit {
			t.Fatalf("mayNestDeeper(%q, %d) = false, but depth is %d", b, limit, d)
		}
	}
}

// FuzzDepthMatchesBytewise: the same on arbitrary bytes.
func FuzzDepthMatchesBytewise(f *testing.F) {
	for _, s := range []string{`{"a":"}\"{","b":[[{}]]}`, `{"a":"\\\\"}]`, `"\\\"[`, `{"x":"[[[`, `[]{}"\\"{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := depth(b), depthBytewise(b); got != want {
			t.Fatalf("depth(%q) = %d, want %d", b, got, want)
		}
		checkNestBound(t, b)
	})
}
