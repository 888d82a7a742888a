package report

import (
	"fmt"
	"time"
)

// Week is an ISO 8601 week (Monday 00:00 UTC to the next Monday).
type Week struct {
	Year, Num int
}

// WeekOf returns the ISO week that holds t.
func WeekOf(t time.Time) Week {
	y, w := t.UTC().ISOWeek()
	return Week{y, w}
}

// LastComplete returns the latest week that ended before now.
func LastComplete(now time.Time) Week { return WeekOf(now).Add(-1) }

// ParseWeek parses "2026-W47".
func ParseWeek(s string) (Week, error) {
	var w Week
	if _, err := fmt.Sscanf(s, "%4d-W%2d", &w.Year, &w.Num); err != nil || len(s) != 8 {
		return Week{}, fmt.Errorf("week %q: want YYYY-Www, e.g. 2026-W47", s)
	}
	if w.Num < 1 || w.Num > 53 || WeekOf(w.Start()) != w {
		return Week{}, fmt.Errorf("week %q does not exist", s)
	}
	return w, nil
}

// Start returns Monday 00:00 UTC of the week.
func (w Week) Start() time.Time {
	jan4 := time.Date(w.Year, 1, 4, 0, 0, 0, 0, time.UTC)
	monday := jan4.AddDate(0, 0, -((int(jan4.Weekday()) + 6) % 7))
	return monday.AddDate(0, 0, 7*(w.Num-1))
}

// End returns the start of the next week.
func (w Week) End() time.Time { return w.Start().AddDate(0, 0, 7) }

// Add returns the week n weeks later (earlier when n < 0).
func (w Week) Add(n int) Week { return WeekOf(w.Start().AddDate(0, 0, 7*n)) }

// String formats the week as "2026-W47".
func (w Week) String() string { return fmt.Sprintf("%04d-W%02d", w.Year, w.Num) }
