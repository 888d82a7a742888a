package alert

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
)

var t0 = time.Date(2025, 1, 6, 10, 0, 0, 0, time.UTC) // a Monday

// fakePoster records deliveries in memory.
type fakePoster struct {
	mu      sync.Mutex
	posts   []fakePost
	updates int
	last    map[string]*Message // by ts
}

type fakePost struct {
	channel, ts string
	msg         *Message
}

func (f *fakePoster) Post(_ context.Context, channel string, m *Message) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ts := fmt.Sprintf("%d.000100", len(f.posts)+1)
	f.posts = append(f.posts, fakePost{channel, ts, m})
	if f.last == nil {
		f.last = map[string]*Message{}
	}
	f.last[ts] = m
	return channel, ts, nil
}

func (f *fakePoster) Update(_ context.Context, _, ts string, m *Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates++
	f.last[ts] = m
	return nil
}

func (f *fakePoster) Find(context.Context, string, string, time.Time) (string, string, error) {
	return "", "", nil
}

func (f *fakePoster) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.posts), f.updates
}

func newTestDispatcher(t *testing.T, cfg Config, st Store, o Options) *Dispatcher {
	t.Helper()
	o.Store = st
	d, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func testFinding(detector, actor string, sev models.Severity, at time.Time) models.Finding {
	end := at.Truncate(time.Minute)
	return models.Finding{Detector: detector, Tenant: "acme", ActorID: actor, ActorType: models.ActorHuman,
		WindowStart: end.Add(-time.Minute), WindowEnd: end, DetectedAt: at, Severity: sev, Score: 5,
		Summary: detector + " on " + actor, Evidence: models.Evidence{Metric: "events", Observed: 100, Baseline: 10,
			Subjects: 3, Records: 100, Categories: []string{"email"}, TopStores: []string{"crm"}}}
}

func step(t *testing.T, d *Dispatcher, now time.Time) {
	t.Helper()
	if err := d.Tick(t.Context(), now); err != nil {
		t.Fatalf("tick at %s: %v", now.Sub(t0), err)
	}
	if _, err := d.Deliver(t.Context(), now); err != nil {
		t.Fatalf("deliver at %s: %v", now.Sub(t0), err)
	}
}

func parseOffset(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("bad time %q: %v", s, err)
	}
	return d
}

// TestGroupingScript replays testdata/grouping.script on a simulated clock,
// with the alert state in memory.
func TestGroupingScript(t *testing.T) {
	runGroupingScript(t, newMemStore())
}

// TestGroupingScriptClickHouse replays the same script with the alert state
// in a real ClickHouse: alerting end to end through *store.Store.
func TestGroupingScriptClickHouse(t *testing.T) {
	t.Parallel()
	runGroupingScript(t, storetest.New(t))
}

func runGroupingScript(t *testing.T, st Store) {
	t.Helper()
	f, err := os.Open("testdata/grouping.script")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	poster := &fakePoster{}
	d := newTestDispatcher(t, Config{DefaultChannel: "C1"}, st, Options{Poster: poster})
	now, stepBy := t0, time.Second
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if fields[0] == "step" {
			stepBy = parseOffset(t, fields[1])
			continue
		}
		at := t0.Add(parseOffset(t, fields[0]))
		if at.Before(now) {
			t.Fatalf("line %d: %s is earlier than the previous line", line, fields[0])
		}
		for now.Add(stepBy).Before(at) || now.Add(stepBy).Equal(at) {
			now = now.Add(stepBy)
			step(t, d, now)
		}
		if now.Before(at) {
			now = at
			step(t, d, now)
		}
		switch fields[1] {
		case "find":
			sev, err := models.ParseSeverity(fields[4])
			if err != nil {
				t.Fatalf("line %d: %v", line, err)
			}
			fd := testFinding(fields[2], fields[3], sev, now)
			if len(fields) > 5 && fields[5] == "rule" {
				fd.Evidence.BaselineSource = "rule"
			}
			if err := d.Notify(t.Context(), now, fd); err != nil {
				t.Fatalf("line %d: %v", line, err)
			}
			step(t, d, now)
		case "expect":
			posts, updates := poster.counts()
			for _, kv := range fields[2:] {
				k, v, _ := strings.Cut(kv, "=")
				n, _ := strconv.Atoi(v)
				switch k {
				case "posts":
					if posts != n {
						t.Errorf("line %d (%s): posts=%d, want %d", line, fields[0], posts, n)
					}
				case "updates":
					if updates != n {
						t.Errorf("line %d (%s): updates=%d, want %d", line, fields[0], updates, n)
					}
				case "reminded":
					m := poster.last[poster.posts[0].ts]
					if m.RemindedAt.IsZero() {
						t.Errorf("line %d: a1's message was not marked as a reminder", line)
					}
				default:
					t.Fatalf("line %d: unknown expectation %q", line, k)
				}
			}
		default:
			t.Fatalf("line %d: unknown command %q", line, fields[1])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}
