package eval

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/store"
)

// TestLoadHistory: a history in any order is stored in full through the
// replay path, pseudonymized with the deployment's key (a responder who
// hashes the customer id finds its events), and loading it again stores
// no event twice.
func TestLoadHistory(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var s scenario
	s.consent(start.Add(-time.Hour), "cust-7", "marketing", false)
	for i := range 3000 {
		s.access(start.Add(time.Duration(i)*2*time.Minute), fmt.Sprintf("agent-%d", i%10), "support", fmt.Sprintf("cust-%d", i%50), 1)
	}
	r := rand.New(rand.NewPCG(3, 4))
	r.Shuffle(len(s.lines), func(i, j int) { s.lines[i], s.lines[j] = s.lines[j], s.lines[i] })
	key := sha256.Sum256([]byte("a deployment's own key"))
	p, err := pseudonym.New(pseudonym.Key{ID: 'k', Secret: key[:]})
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.New(t)
	load := func() *LoadResult {
		t.Helper()
		var progress bytes.Buffer
		res, err := Load(t.Context(), LoadOptions{Events: strings.NewReader(s.text()), Store: st, Pseudonymizer: p,
			ChunkEvents: 1000, Progress: &progress})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := load()
	if res.Events != 3000 || res.Consents != 1 || res.Rejected != 0 || res.Duplicates != 0 ||
		!res.First.Equal(start.Add(-time.Hour)) || !res.Last.Equal(start.Add(5998*time.Minute)) {
		t.Fatalf("first load: %+v", res)
	}
	sum, err := st.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != 3000 || sum.Consents != 1 {
		t.Fatalf("stored %d events, %d consents; want 3000, 1", sum.Events, sum.Consents)
	}
	evs, _, err := st.History(t.Context(), store.HistoryFilter{Tenant: "default", SubjectIDs: []string{p.Hash("cust-7")},
		From: start.Add(-time.Hour), To: start.Add(7 * 24 * time.Hour), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 60 {
		t.Errorf("customer cust-7 by its pseudonym: %d events, want 60", len(evs))
	}
	again := load()
	if again.Events != 0 || again.Duplicates != 3000 {
		t.Errorf("second load stored %d events (%d duplicates); want 0 and 3000", again.Events, again.Duplicates)
	}
	if sum, err = st.Summary(t.Context()); err != nil || sum.Events != 3000 {
		t.Errorf("after a second load: %d events (%v); want 3000", sum.Events, err)
	}
}
