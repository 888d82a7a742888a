// Package progress shows how far long work has got: on a terminal a bar
// redrawn in place with the rate and the time left, elsewhere (a log, CI, a
// pipe) a plain line every few seconds, so that logs stay readable.
//
// It is our own, not a library: schollz/progressbar (the maintained choice)
// draws only the in-place bar and writes carriage-return frames into files
// and CI logs; the periodic plain lines we want there, and the work whose
// progress is a fraction of something other than the count it rates (a
// simulated time span, file bytes), would be code around it anyway. This
// is about a hundred lines with no dependency.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Bar reports the progress of one piece of work. Its methods may be called
// from several goroutines.
type Bar struct {
	w        io.Writer
	what     string
	unit     string
	terminal bool
	every    time.Duration
	now      func() time.Time

	mu       sync.Mutex
	start    time.Time
	last     time.Time
	count    int64
	fraction float64
}

// Options tune a Bar; the zero value is the default.
type Options struct {
	// Terminal forces the in-place bar (true) or plain lines (false);
	// nil: a terminal when w is a character device.
	Terminal *bool
	// Every is the interval of plain lines (default 5s); the bar redraws
	// at most every 200ms.
	Every time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// New starts a bar for work named what that counts unit (e.g. "events").
func New(w io.Writer, what, unit string, o Options) *Bar {
	b := &Bar{w: w, what: what, unit: unit, every: o.Every, now: o.Now, fraction: -1}
	if b.now == nil {
		b.now = time.Now
	}
	if o.Terminal != nil {
		b.terminal = *o.Terminal
	} else {
		b.terminal = IsTerminal(w)
	}
	switch {
	case b.terminal:
		b.every = 200 * time.Millisecond
	case b.every <= 0:
		b.every = 5 * time.Second
	}
	b.start = b.now()
	b.last = b.start
	return b
}

// IsTerminal reports whether w is a character device.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Stat() (os.FileInfo, error) })
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Update records count units done and the fraction of the work done (0..1;
// negative: unknown, no bar and no time left), and shows them if it is time.
func (b *Bar) Update(count int64, fraction float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count, b.fraction = count, min(fraction, 1)
	if t := b.now(); t.Sub(b.last) >= b.every {
		b.last = t
		b.show(t)
	}
}

// Done shows the final state and ends the bar's line.
func (b *Bar) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.show(b.now())
	if b.terminal {
		fmt.Fprintln(b.w)
	}
}

// show draws the bar (terminal) or writes a line; b.mu is held.
func (b *Bar) show(t time.Time) {
	el := t.Sub(b.start)
	rate := float64(b.count) / max(el.Seconds(), 1e-9)
	var eta string
	if b.fraction > 0 && b.fraction < 1 {
		left := time.Duration(float64(el) * (1 - b.fraction) / b.fraction)
		eta = ", ETA " + left.Round(time.Second).String()
	}
	if !b.terminal {
		pct := ""
		if b.fraction >= 0 {
			pct = fmt.Sprintf("%.0f%%, ", 100*b.fraction)
		}
		fmt.Fprintf(b.w, "%s: %s%d %s, %.0f %s/s, %s elapsed%s\n", b.what, pct, b.count, b.unit, rate, b.unit, el.Round(time.Second), eta)
		return
	}
	bar := ""
	if b.fraction >= 0 {
		const width = 24
		n := int(b.fraction * width)
		bar = fmt.Sprintf(" [%s%s] %3.0f%%", strings.Repeat("#", n), strings.Repeat("-", width-n), 100*b.fraction)
	}
	// \r and erase-to-end-of-line: redraw the same line.
	fmt.Fprintf(b.w, "\r\033[K%s%s %d %s, %.0f %s/s%s", b.what, bar, b.count, b.unit, rate, b.unit, eta)
}
