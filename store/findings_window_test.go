package store_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestWindowFindings: the keys of the findings stored for the windows
// ending at a time, suppressed ones too, once each; not those of other
// windows.
func TestWindowFindings(t *testing.T) {
	t.Parallel() // a database of its own
	s := storetest.New(t)
	end := time.Now().UTC().Add(-time.Hour).Truncate(time.Minute)
	f := func(det, actor string, end time.Time, supp string) store.StoredFinding {
		return store.StoredFinding{Finding: models.Finding{Detector: det, Tenant: "t", ActorID: actor,
			WindowStart: end.Add(-time.Minute), WindowEnd: end, DetectedAt: end, Severity: models.SeverityHigh}, SuppressedBy: supp}
	}
	if err := s.InsertFindings(t.Context(), []store.StoredFinding{
		f("volume_spike", "a1", end, ""), f("volume_spike", "a1", end, ""), f("peer_deviation", "a2", end, "sup-1"),
		f("volume_spike", "a3", end.Add(time.Minute), ""),
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.WindowFindings(t.Context(), end)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b store.FindingKey) int { return strings.Compare(a.Detector+a.ActorID, b.Detector+b.ActorID) })
	want := []store.FindingKey{{"peer_deviation", "t", "a2"}, {"volume_spike", "t", "a1"}}
	if !slices.Equal(got, want) {
		t.Fatalf("WindowFindings = %v, want %v", got, want)
	}
}
