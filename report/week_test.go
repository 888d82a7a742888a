package report

import (
	"testing"
	"time"
)

func TestWeeks(t *testing.T) {
	cases := []struct {
		in    string
		start string
		prev  string
	}{
		{"2026-W47", "2026-11-16", "2026-W46"},
		{"2026-W01", "2025-12-29", "2025-W52"},
		{"2020-W53", "2020-12-28", "2020-W52"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			w, err := ParseWeek(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := w.Start().Format("2006-01-02"); got != c.start {
				t.Fatalf("start = %s, want %s", got, c.start)
			}
			if w.String() != c.in || w.Add(-1).String() != c.prev || w.End().Sub(w.Start()) != 7*24*time.Hour {
				t.Fatalf("week arithmetic: %s %s", w, w.Add(-1))
			}
		})
	}
	for _, bad := range []string{"2026-47", "2026-W54", "2026-W00", "2025-W53", "x"} {
		if _, err := ParseWeek(bad); err == nil {
			t.Errorf("ParseWeek(%q) accepted", bad)
		}
	}
	if got := LastComplete(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)).String(); got != "2026-W47" {
		t.Errorf("last complete = %s", got)
	}
}
