package detect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// slowEvidence is the fixture's Aggregates with TopSubjects answering
// after a delay that shrinks with each call (a later read finishes first),
// naming the actor and window it was asked for (or failing for the actor
// fail), and counting the reads in flight.
type slowEvidence struct {
	*fixture
	delay time.Duration // of the first call; each next one 1 ms less
	fail  string
	// started, if set, is called as each read starts
	started func()

	calls, inFlight, maxInFlight atomic.Int32
}

func (s *slowEvidence) TopSubjects(ctx context.Context, tenant, actor string, from, to time.Time, n int) ([]string, error) {
	c := s.calls.Add(1)
	in := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxInFlight.Load()
		if in <= m || s.maxInFlight.CompareAndSwap(m, in) {
			break
		}
	}
	if s.started != nil {
		s.started()
	}
	select {
	case <-time.After(max(s.delay-time.Duration(c)*time.Millisecond, 0)):
	case <-ctx.Done():
		return nil, fmt.Errorf("reading top subjects: %w", ctx.Err())
	}
	if actor == s.fail {
		return nil, errors.New("reading top subjects: clickhouse: timeout")
	}
	return []string{fmt.Sprintf("%s %s..%s %d", actor, from.Format("15:04"), to.Format("15:04"), n)}, nil
}

// evidenceFixture has support agents s1..s9 each spike in one window of
// their fifth day, half an hour apart, among peers who do not.
func evidenceFixture(t *testing.T) *fixture {
	t.Helper()
	four := days(4, workday(normal))
	text := team(four+" "+workday(normal), four+" "+workday(normal))
	for i := 1; i <= 9; i++ {
		text += fmt.Sprintf("actor=s%d role=support records: %s %s\n", i, four, workday(fmt.Sprintf("5*%d 900 5*%d", 30*i, 479-30*i)))
	}
	return parseFixture(t, monday, text)
}

// sunk is what the sinks of an engine received, in order.
type sunk struct {
	mu       sync.Mutex
	findings []string // "detector actor window_end subjects"
	stored   []string
}

func (k *sunk) options() Options {
	line := func(f models.Finding) string {
		return fmt.Sprintf("%s %s %s %v", f.Detector, f.ActorID, f.WindowEnd.Format("Mon 15:04"), f.Evidence.TopSubjects)
	}
	return Options{
		Findings: func(_ context.Context, fs ...models.Finding) error {
			k.mu.Lock()
			defer k.mu.Unlock()
			for _, f := range fs {
				k.findings = append(k.findings, line(f))
			}
			return nil
		},
		Stored: func(_ context.Context, fs []store.StoredFinding) error {
			k.mu.Lock()
			defer k.mu.Unlock()
			for _, f := range fs {
				k.stored = append(k.stored, line(f.Finding))
			}
			return nil
		},
	}
}

// runEvidence replays fx through an engine reading evidence from agg and
// returns what its sinks received.
func runEvidence(t *testing.T, ctx context.Context, fx *fixture, agg Aggregates) (*sunk, error) {
	t.Helper()
	k := &sunk{}
	e, err := New(Config{}, agg, k.options())
	if err != nil {
		t.Fatal(err)
	}
	e.StartAt(monday.Add(time.Minute))
	end := monday.Add(time.Duration(fx.last+1) * time.Minute).Truncate(time.Hour).Add(time.Hour)
	err = e.Advance(ctx, end)
	return k, err
}

// TestEvidenceReadsOverlap: the findings' evidence reads run a few at a
// time while the engine goes on with the next windows, and the sinks
// still receive every finding, in detection order, with the customers of
// its own window; an Advance returns with no read in flight.
func TestEvidenceReadsOverlap(t *testing.T) {
	fx := evidenceFixture(t)
	want, err := runEvidence(t, t.Context(), fx, &slowEvidence{fixture: fx})
	if err != nil {
		t.Fatal(err)
	}
	var spikes int
	for _, f := range want.findings {
		if f[:len(DetVolumeSpike)] == DetVolumeSpike {
			spikes++
		}
	}
	if spikes < 8 {
		t.Fatalf("the fixture raises %d volume_spike findings, want at least 8:\n%v", spikes, want.findings)
	}
	slow := &slowEvidence{fixture: fx, delay: 30 * time.Millisecond}
	got, err := runEvidence(t, t.Context(), fx, slow)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.findings, want.findings) || !slices.Equal(got.stored, want.stored) {
		t.Errorf("with slow reads the sinks received\n%v\n%v\nwant\n%v\n%v", got.findings, got.stored, want.findings, want.stored)
	}
	if n := slow.inFlight.Load(); n != 0 {
		t.Errorf("%d reads in flight after Advance returned", n)
	}
	if m := slow.maxInFlight.Load(); m < 2 || m > evidenceReads {
		t.Errorf("at most %d reads in flight at once, want 2..%d", m, evidenceReads)
	}
	if n := slow.calls.Load(); int(n) != len(want.stored) {
		t.Errorf("%d reads for %d findings", n, len(want.stored))
	}
}

// TestEvidenceReadFailure: a read that fails leaves its finding without
// customers, and the finding is still handed on.
func TestEvidenceReadFailure(t *testing.T) {
	fx := evidenceFixture(t)
	got, err := runEvidence(t, t.Context(), fx, &slowEvidence{fixture: fx, delay: 10 * time.Millisecond, fail: "s2"})
	if err != nil {
		t.Fatal(err)
	}
	var a1, a2 int // findings of the others with customers, of s2 without
	for _, f := range got.stored {
		var det, actor, day, hm, subs string
		fmt.Sscanf(f, "%s %s %s %s %s", &det, &actor, &day, &hm, &subs)
		switch {
		case actor == "s2" && subs == "[]":
			a2++
		case actor != "s2" && subs == "["+actor:
			a1++
		default:
			t.Errorf("stored %q", f)
		}
	}
	if a1 == 0 || a2 == 0 {
		t.Errorf("stored %d findings of others with customers and %d of s2 without; want some of each:\n%v", a1, a2, got.stored)
	}
}

// TestEvidenceReadsCancelled: with the context ended during a cycle,
// Advance returns once the reads started have ended, and hands the
// findings on without customers.
func TestEvidenceReadsCancelled(t *testing.T) {
	fx := evidenceFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	slow := &slowEvidence{fixture: fx, delay: time.Hour, started: cancel}
	done := make(chan struct{})
	var got *sunk
	go func() {
		defer close(done)
		got, _ = runEvidence(t, ctx, fx, slow)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Advance did not return after its context ended")
	}
	if n := slow.inFlight.Load(); n != 0 {
		t.Errorf("%d reads in flight after Advance returned", n)
	}
	if len(got.stored) == 0 {
		t.Fatal("no finding stored")
	}
	for _, f := range got.stored {
		if f[len(f)-2:] != "[]" {
			t.Errorf("stored %q, want no customers", f)
		}
	}
}
