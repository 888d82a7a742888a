package eval

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestFindingWriterStoresEveryBatch: every batch written is stored by the
// time close returns, empty ones skipped, in the order written (a batch's
// risk scores with it); write does not wait for the INSERTs.
func TestFindingWriterStoresEveryBatch(t *testing.T) {
	s := storetest.New(t)
	times := newStoreTimes(time.Now) //nolint:forbidigo // the timing line only
	w := newFindingWriter(t.Context(), s, times)
	at := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	const batches = 12
	for i := range batches {
		f := models.Finding{Detector: "volume_spike", Tenant: "default", ActorID: fmt.Sprintf("a-%02d", i),
			WindowStart: at.Add(time.Duration(i) * time.Minute), WindowEnd: at.Add(time.Duration(i+1) * time.Minute),
			DetectedAt: at.Add(time.Duration(i+1) * time.Minute), Severity: models.SeverityMedium, Summary: "s"}
		if err := w.write(findingBatch{findings: []store.StoredFinding{{Finding: f}}}); err != nil {
			t.Fatal(err)
		}
		if err := w.write(findingBatch{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	if err := w.close(); err != nil {
		t.Fatalf("a second close: %v", err)
	}
	got, err := s.Findings(t.Context(), store.FindingFilter{From: at, To: at.Add(time.Hour), Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != batches {
		t.Fatalf("%d findings stored, want %d", len(got), batches)
	}
	if !regexp.MustCompile(fmt.Sprintf(`findings stored in the background [0-9.]+s \(%d\)`, batches)).MatchString(times.String()) {
		t.Errorf("timing line %q: want %d background stores (empty batches skipped)", times.String(), batches)
	}
}

// TestFindingWriterError: a batch that fails to store is the error of the
// next write and of close, and nothing written after it is stored.
func TestFindingWriterError(t *testing.T) {
	s := storetest.New(t)
	w := newFindingWriter(t.Context(), s, nil)
	at := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	f := models.Finding{Detector: "volume_spike", Tenant: "default", ActorID: "a", WindowStart: at,
		WindowEnd: at.Add(time.Minute), DetectedAt: at.Add(time.Minute), Severity: models.SeverityMedium}
	if err := s.DropDatabase(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.write(findingBatch{findings: []store.StoredFinding{{Finding: f}}}); err != nil {
		t.Fatalf("the first write: %v (it only queues)", err)
	}
	deadline := time.Now().Add(30 * time.Second)           //nolint:forbidigo // waits for the background INSERT
	for w.failed() == nil && time.Now().Before(deadline) { //nolint:forbidigo // as above
		time.Sleep(10 * time.Millisecond)
	}
	if err := w.write(findingBatch{findings: []store.StoredFinding{{Finding: f}}}); err == nil || !strings.Contains(err.Error(), "storing the replay's findings") {
		t.Errorf("write after a failed batch: %v, want the batch's error", err)
	}
	if err := w.close(); err == nil {
		t.Error("close after a failed batch returned no error")
	}
}
