package testsecure

import (
	"encoding/base64"
	"testing"
)

// TestClusterIDIsNoOption: no cluster id starts with '-' (kafka-storage
// would take it for an option); each is a 16-byte base64url UUID. With
// 5,000 draws an id starting with '-' (1 in 64) would all but surely turn
// up if clusterID did not draw again.
func TestClusterIDIsNoOption(t *testing.T) {
	for range 5000 {
		id := clusterID()
		if id[0] == '-' {
			t.Fatalf("cluster id %q starts with '-'", id)
		}
		b, err := base64.RawURLEncoding.DecodeString(id)
		if err != nil || len(b) != 16 || b[6]>>4 != 4 || b[8]>>6 != 2 {
			t.Fatalf("cluster id %q is not a base64url version-4 UUID (%x, %v)", id, b, err)
		}
	}
}
