package ingest

import (
	"context"
	"sync"
	"time"
)

// Watermark is ingest's event-time progress over the access topic's
// partitions it owns: per partition, the newest event time it has stored
// and committed, and whether messages remained behind the last one
// committed. Detection closes a window only once the low watermark has
// passed it (plus the allowed lateness), so consumer lag does not make it
// evaluate windows whose events are still in Kafka. It is safe for
// concurrent use.
type Watermark struct {
	mu    sync.Mutex
	parts map[partitionKey]partMark
	// lag, when set (Run sets it), asks the brokers which partitions have
	// messages not yet committed: the truth after a pause or a crash, when
	// this process has not committed anything since.
	lag func(ctx context.Context) ([]PartitionLag, error)
}

type partMark struct {
	newest time.Time // the newest event time stored
	behind bool      // messages remained after the last one committed
}

// NewWatermark returns a Watermark with no partitions yet.
func NewWatermark() *Watermark { return &Watermark{parts: map[partitionKey]partMark{}} }

// Low returns the low watermark: the oldest of the newest event times
// stored of the partitions that still have messages to read, and true;
// false when no partition is behind (ingest is caught up and event time
// holds nothing back). Which partitions are behind comes from the brokers
// (the group's committed offsets against the end offsets) when they
// answer within 2 s, else from the last commits. A partition behind with no
// event stored yet holds the watermark at the oldest event time stored of
// any partition (the zero time when none is).
func (w *Watermark) Low() (time.Time, bool) {
	if w == nil {
		return time.Time{}, false
	}
	behind := map[partitionKey]bool{}
	asked := false
	w.mu.Lock()
	lag := w.lag
	w.mu.Unlock()
	if lag != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ls, err := lag(ctx)
		cancel()
		if err == nil {
			asked = true
			for _, l := range ls {
				if l.Lag > 0 {
					behind[partitionKey{l.Topic, l.Partition}] = true
				}
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !asked {
		for k, p := range w.parts {
			if p.behind {
				behind[k] = true
			}
		}
	}
	if len(behind) == 0 {
		return time.Time{}, false
	}
	var oldest time.Time
	for _, p := range w.parts {
		if !p.newest.IsZero() && (oldest.IsZero() || p.newest.Before(oldest)) {
			oldest = p.newest
		}
	}
	var low time.Time
	found := false
	for k := range behind {
		t := w.parts[k].newest
		if t.IsZero() {
			t = oldest
		}
		if !found || t.Before(low) {
			low, found = t, true
		}
	}
	return low, true
}

// reset forgets which partitions were behind (a new consumer group
// generation: the partitions owned may have changed); the event times
// stored stay.
func (w *Watermark) reset() {
	if w == nil {
		return
	}
	w.mu.Lock()
	for k, p := range w.parts {
		p.behind = false
		w.parts[k] = p
	}
	w.mu.Unlock()
}

// committed records a committed batch of one partition: the newest event
// time in it (zero: none) and whether messages remain behind it.
func (w *Watermark) committed(k partitionKey, newest time.Time, behind bool) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.parts[k]
	if newest.After(p.newest) {
		p.newest = newest
	}
	p.behind = behind
	w.parts[k] = p
}
