package detect

import (
	"context"
	"errors"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/chatwarden/chatwarden/store"
)

// flakyAggregates fails its first failures window reads with err, then
// serves the fixture.
type flakyAggregates struct {
	*fixture
	failures int
	err      error
	calls    int
}

func (f *flakyAggregates) WindowAggregates(ctx context.Context, from, to time.Time, w time.Duration, s store.Shard) ([]store.WindowActivity, error) {
	f.calls++
	if f.calls > 1 && f.failures > 0 { // the first batch succeeds: the outage hits mid back-fill
		f.failures--
		return nil, f.err
	}
	return f.fixture.WindowAggregates(ctx, from, to, w, s)
}

// TestStartResumesBackfillAfterOutage: a ClickHouse outage during the
// start-up back-fill is waited out, and the baselines learned are exactly
// those of an uninterrupted back-fill (no window learned twice or skipped);
// an error retrying cannot fix is returned at once.
func TestStartResumesBackfillAfterOutage(t *testing.T) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC) // a Monday
	text := `actor=a1 role=support records: (5*480 -*960)*8
actor=a2 role=support records: (-*480 3*480 -*480)*8
`
	now := start.Add(8*24*time.Hour + 7*time.Minute)
	cfg := Config{BackfillDays: 9}
	reference := func() []byte {
		e, err := New(cfg, parseFixture(t, start, text), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(t.Context(), nil, now); err != nil {
			t.Fatal(err)
		}
		b, err := e.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	tests := []struct {
		name    string
		err     error
		wantErr bool
	}{
		{"connection refused twice", refused, false},
		{"schema error", &clickhouse.Exception{Code: 60, Name: "DB::Exception", Message: "Table chatwarden.actor_minute doesn't exist"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			agg := &flakyAggregates{fixture: parseFixture(t, start, text), failures: 2, err: tc.err}
			e, err := New(cfg, agg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			err = e.Start(t.Context(), nil, now)
			if tc.wantErr {
				if err == nil {
					t.Fatal("Start succeeded past an error retrying cannot fix")
				}
				return
			}
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if agg.failures != 0 {
				t.Fatalf("%d injected failures left: the outage was not exercised", agg.failures)
			}
			got, err := e.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			// Compare the decoded state: gob writes maps in random order,
			// so equal baselines need not be equal bytes.
			gs, err := decodeSnapshot(got)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := decodeSnapshot(reference)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gs, rs) {
				t.Error("baselines after a resumed back-fill differ from an uninterrupted one")
			}
		})
	}
}

// TestStepOnEvents: on detect.clock: events, windows close on the ingest
// watermark minus the lateness, not on the wall clock: nothing happens
// before the first event, a watermark inside the next window (plus
// lateness) closes nothing, and one that is ten windows on closes all ten.
func TestStepOnEvents(t *testing.T) {
	start := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	e, err := New(Config{AllowedLateness: 30 * time.Second}, parseFixture(t, start, "actor=a1 role=support records: 5*30\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.StartAt(start.Add(time.Minute))
	steps := []struct {
		wm       time.Time
		advanced bool
		next     time.Time
	}{
		{time.Time{}, false, start.Add(time.Minute)},
		{start.Add(70 * time.Second), false, start.Add(time.Minute)},                    // 1m10s - 30s < 1m
		{start.Add(90 * time.Second), true, start.Add(2 * time.Minute)},                 // closes 9:00-9:01
		{start.Add(10*time.Minute + 45*time.Second), true, start.Add(11 * time.Minute)}, // closes up to 9:10
		{start.Add(10*time.Minute + 50*time.Second), false, start.Add(11 * time.Minute)},
	}
	for i, s := range steps {
		adv, err := e.stepOnEvents(t.Context(), s.wm)
		if err != nil {
			t.Fatal(err)
		}
		if adv != s.advanced || !e.Next().Equal(s.next) {
			t.Errorf("step %d (watermark %s): advanced %v, next window ends %s; want %v, %s", i, s.wm.Format(time.TimeOnly),
				adv, e.Next().Format(time.TimeOnly), s.advanced, s.next.Format(time.TimeOnly))
		}
	}
}
