package store

import "testing"

// TestCompresses: auto (the default) compresses unless the server is on a
// loopback address; lz4 and none are what they say.
func TestCompresses(t *testing.T) {
	for _, tc := range []struct {
		mode, addr string
		want       bool
	}{
		{"", "127.0.0.1:9000", false},
		{"auto", "127.0.0.1:9000", false},
		{"", "127.8.9.10:9000", false},
		{"", "localhost:9000", false},
		{"", "LOCALHOST:9000", false},
		{"", "[::1]:9000", false},
		{"", "10.0.0.5:9000", true},
		{"", "[2001:db8::1]:9000", true},
		{"", "clickhouse.internal:9000", true}, // a name is not resolved: it may be remote
		{"", "localhost.example.com:9000", true},
		{"lz4", "127.0.0.1:9000", true},
		{"none", "10.0.0.5:9000", false},
	} {
		if got := compresses(tc.mode, tc.addr); got != tc.want {
			t.Errorf("compresses(%q, %q) = %t, want %t", tc.mode, tc.addr, got, tc.want)
		}
	}
	for mode, ok := range map[string]bool{"": true, "auto": true, "lz4": true, "none": true, "zstd": false, "LZ4": false} {
		c := Config{Compression: mode}.WithDefaults()
		if err := c.Validate(); (err == nil) != ok {
			t.Errorf("compression %q: %v, want valid %t", mode, err, ok)
		}
	}
}
