package pseudonym

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyIDsMustDiffer(t *testing.T) {
	k1 := Key{ID: '1', Secret: bytes.Repeat([]byte{1}, 32)}
	k1b := Key{ID: '1', Secret: bytes.Repeat([]byte{2}, 32)}
	if _, err := New(k1b, k1); err == nil || !strings.Contains(err.Error(), "'1'") {
		t.Fatalf("a current and an old key with the same id: %v", err)
	}
	if _, err := New(Key{ID: '2', Secret: k1b.Secret}, k1, k1); err == nil {
		t.Fatal("two old keys with the same id accepted")
	}
}

// TestLoadKey: hex or raw, file or environment, trimmed; errors name the
// source, never the secret.
func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	hexKey := strings.Repeat("ab", 32)
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("TEST_PSEUDONYM_KEY", "  "+hexKey+"\n")
	t.Setenv("TEST_EMPTY_KEY", " \n")
	rawSecret := "a raw passphrase that is long enough, 40+ bytes"
	tests := []struct {
		name, file, env string
		want            []byte
		wantErr         string
	}{
		{"hex file", write("hex", hexKey+"\n"), "", bytes.Repeat([]byte{0xab}, 32), ""},
		{"raw file", write("raw", rawSecret+"\n"), "", []byte(rawSecret), ""},
		{"file wins over env", write("hex2", hexKey), "TEST_EMPTY_KEY", bytes.Repeat([]byte{0xab}, 32), ""},
		{"hex env", "", "TEST_PSEUDONYM_KEY", bytes.Repeat([]byte{0xab}, 32), ""},
		{"empty env", "", "TEST_EMPTY_KEY", nil, "TEST_EMPTY_KEY is empty"},
		{"missing file", filepath.Join(dir, "nope"), "", nil, "reading pseudonymization key file"},
		{"nothing", "", "", nil, "neither key_file nor key_env"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := LoadKey(tc.file, tc.env, '7')
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || k.ID != '7' || !bytes.Equal(k.Secret, tc.want) {
				t.Fatalf("got %q %x %v", k.ID, k.Secret, err)
			}
		})
	}
	// A short key is refused without echoing it.
	short := write("short", "deadbeef")
	k, err := LoadKey(short, "", '1')
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(k); err == nil || strings.Contains(err.Error(), "deadbeef") || strings.Contains(err.Error(), "\xde\xad") {
		t.Fatalf("short key: %v", err)
	}
}
