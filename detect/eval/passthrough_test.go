package eval

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/store"
)

// TestReplayAgainWhenRawEventsAreNeeded: a replay on a database that keeps
// no raw events (store.PassThroughSchema) that meets a read only raw events
// answer (here the window aggregates of 30 s windows, read from raw
// events) stops, gets a database that keeps them from Reset, and replays
// the file again there: its alerts and summary are those of a replay on
// such a database from the start. Without Reset it fails with
// store.ErrNoRawEvents rather than go on with empty answers.
func TestReplayAgainWhenRawEventsAreNeeded(t *testing.T) {
	onOneServer(t)
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var s scenario
	for day := range 2 {
		for m := 8 * 60; m < 18*60; m += 3 {
			at := start.Add(time.Duration(day*24*60+m) * time.Minute)
			for a := range 4 {
				records := 1
				if a == 2 && day == 1 && m >= 14*60 && m < 14*60+30 {
					records = 5000 // bulk reads
				}
				s.access(at.Add(time.Duration(a)*time.Second), fmt.Sprintf("agent-%d", a), "support", fmt.Sprintf("cust-%d", (m/3+a)%40), records)
			}
		}
	}
	cfg := detect.Config{Window: 30 * time.Second}
	if PassThrough(cfg, false) {
		t.Fatal("30 s windows are for the pass-through schema")
	}
	replay := func(sc store.Schema, reset bool) (string, *Summary, string, error) {
		st := storetest.OpenSchema(t, storetest.Config(t), sc)
		var alerts, progress bytes.Buffer
		opts := Options{Events: strings.NewReader(s.text()), Config: cfg, Store: st, Alerts: &alerts, Progress: &progress, ChunkEvents: 500}
		var resets []store.Schema
		if reset {
			opts.Reset = func(_ context.Context, sc store.Schema) (*store.Store, error) {
				resets = append(resets, sc)
				return storetest.OpenSchema(t, storetest.Config(t), sc), nil
			}
		}
		sum, err := Run(t.Context(), opts)
		if sum != nil {
			sum.ElapsedS, sum.EventsPerS = 0, 0
		}
		if want := map[bool]int{true: 1}[reset && sc == store.PassThroughSchema]; len(resets) != want || (want == 1 && resets[0] != store.DetectionSchema) {
			t.Errorf("%s schema: reset with %v", sc, resets)
		}
		return alerts.String(), sum, progress.String(), err
	}
	want, wantSum, _, err := replay(store.DetectionSchema, true)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(want, "\n") < 2 {
		t.Fatalf("the scenario raised too little to compare:\n%s", want)
	}
	got, gotSum, progress, err := replay(store.PassThroughSchema, true)
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress)
	}
	if got != want || fmt.Sprintf("%+v", gotSum) != fmt.Sprintf("%+v", wantSum) {
		t.Errorf("replayed again, alerts or summary differ:\n got %s\n%+v\nwant %s\n%+v", got, gotSum, want, wantSum)
	}
	if !strings.Contains(progress, "replaying it again into a fresh database that keeps raw events") {
		t.Errorf("progress does not say the replay started again:\n%s", progress)
	}
	if _, _, _, err := replay(store.PassThroughSchema, false); !errors.Is(err, store.ErrNoRawEvents) {
		t.Errorf("without Reset: %v, want ErrNoRawEvents", err)
	}
}

// TestSubjectIndexNotesReadsOfRawEvents: a read the replay's indexes do not
// hold goes to the store; on a database that keeps no raw events that read
// fails, and the index notes it (needsRaw) so that the replay stops even
// where the engine only logs the error (evidence reads).
func TestSubjectIndexNotesReadsOfRawEvents(t *testing.T) {
	onOneServer(t)
	st := storetest.OpenSchema(t, storetest.Config(t), store.PassThroughSchema)
	x := newSubjectIndex(st, 10*time.Minute)
	x.evidence = newEvidenceIndex()
	if err := x.needsRaw(); err != nil {
		t.Fatalf("before any read: %v", err)
	}
	from := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	if _, err := x.TopSubjects(t.Context(), "default", "agent-1", from, from.Add(time.Hour), 5); !errors.Is(err, store.ErrNoRawEvents) {
		t.Fatalf("evidence the index does not hold: %v, want ErrNoRawEvents", err)
	}
	if err := x.needsRaw(); !errors.Is(err, store.ErrNoRawEvents) {
		t.Errorf("after it: %v, want ErrNoRawEvents", err)
	}
}

// onOneServer skips a test of the pass-through schema on a cluster, where
// store.MigrateSchema refuses it (store's TestMigratePassThroughSchema
// checks that there) and chatwarden eval does not use it (PassThrough).
func onOneServer(t *testing.T) {
	t.Helper()
	if storetest.Cluster() != "" {
		t.Skip("the pass-through schema is for one server")
	}
}
