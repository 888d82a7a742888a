package progress

import (
	"strings"
	"testing"
	"time"
)

// fakeClock advances by step on every reading.
func fakeClock(step time.Duration) func() time.Time {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(step); return t }
}

func TestPlainLines(t *testing.T) {
	var out strings.Builder
	no := false
	b := New(&out, "simulate", "events", Options{Terminal: &no, Every: 5 * time.Second, Now: fakeClock(time.Second)})
	for i := int64(1); i <= 10; i++ {
		b.Update(i*1000, float64(i)/20)
	}
	b.Done()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	// start at t=1s; updates at 2..11s: lines at 6s and 11s, then Done.
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), out.String())
	}
	if want := "simulate: 25%, 5000 events, 1000 events/s, 5s elapsed, ETA 15s"; lines[0] != want {
		t.Errorf("first line\n%q, want\n%q", lines[0], want)
	}
	if strings.Contains(out.String(), "\r") || strings.Contains(out.String(), "\033") {
		t.Error("plain lines contain terminal control characters")
	}
}

func TestTerminalBar(t *testing.T) {
	var out strings.Builder
	yes := true
	b := New(&out, "produce", "messages", Options{Terminal: &yes, Now: fakeClock(time.Second)})
	b.Update(500, 0.5)
	b.Update(800, -1) // unknown fraction: no bar, no ETA
	b.Done()
	s := out.String()
	if !strings.Contains(s, "\r\033[Kproduce [############------------]  50% 500 messages, 500 messages/s, ETA 1s") {
		t.Errorf("bar missing:\n%q", s)
	}
	if !strings.HasSuffix(s, "\r\033[Kproduce 800 messages, 267 messages/s\n") {
		t.Errorf("final state:\n%q", s)
	}
}

func TestIsTerminal(t *testing.T) {
	if IsTerminal(&strings.Builder{}) {
		t.Error("a strings.Builder is a terminal")
	}
}
