package eval

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync"
	"time"
)

// source hands the replay a scenario's valid items in time order: either
// all at once (decoded whole and sorted, decodedSource) or block by block
// while a goroutine decodes a file in time order (streamBlocks), so that
// decoding overlaps the replay.
type source struct {
	mu   sync.Mutex
	cond *sync.Cond
	seq  itemSeq // the items decoded so far, in time order
	dec  *decoded
	done bool  // every line is decoded (dec is set), or err
	err  error // decoding failed, or the file is out of time order
	// last is the time of the last item decoded.
	last time.Time
	// decodedAt is when the last line was decoded (set once done).
	decodedAt time.Time
	// taken is where release was called up to; want the most items an
	// upTo waited for (all: every one). While ahead (0: no bound) items
	// past taken are decoded and none more are wanted, the decoding
	// pauses: the decoded items a replay has not reached are held in
	// memory, so the decoder keeps only a few chunks ahead of it.
	taken, want, ahead int
	paused             bool // the decoder waits for the replay (tests wait on it)
	cancel             context.CancelFunc
	finished           chan struct{} // closed when the decoding goroutine returned
}

// outOfOrderError says a streamed file is not in time order: a line is
// earlier than one before it.
type outOfOrderError struct {
	after    int       // the items in time order before it
	ts, prev time.Time // the item's time and the one before it
}

func (e *outOfOrderError) Error() string {
	return fmt.Sprintf("the events are not in time order (after %d in order, %s comes after %s)",
		e.after, e.ts.UTC().Format(time.RFC3339Nano), e.prev.UTC().Format(time.RFC3339Nano))
}

// decodedSource is a source of a file decoded whole (and sorted), done at
// at.
func decodedSource(dec *decoded, at time.Time) *source {
	s := &source{seq: *dec.items, dec: dec, done: true, decodedAt: at, finished: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	close(s.finished)
	return s
}

// streamBlocks decodes r in a goroutine (decodeStream, block lines at a
// time) and makes each block's items available as soon as it is decoded.
// A block with an item earlier than the item before it ends the decoding
// with an *outOfOrderError: a file out of time order has to be decoded
// whole and sorted before any of it is replayed. clock (optional) stamps
// decodedAt. The decoding keeps at most ahead items (0: no bound), and
// a block, past those released, unless more are asked for (upTo, all).
func streamBlocks(ctx context.Context, r io.Reader, progress io.Writer, clock func() time.Time, block, ahead int) *source {
	ctx, cancel := context.WithCancel(ctx)
	s := &source{cancel: cancel, finished: make(chan struct{}), ahead: ahead}
	s.cond = sync.NewCond(&s.mu)
	// a decoder waiting for the replay to catch up stops once ctx is done
	stopWaking := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.cond.Broadcast()
	})
	go func() {
		defer close(s.finished)
		defer stopWaking()
		dec, err := decodeStream(ctx, r, progress, block, func(valid []item) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			for i := range valid {
				if (s.seq.Len() > 0 || i > 0) && valid[i].ts.Before(s.last) {
					return &outOfOrderError{after: s.seq.Len() + i, ts: valid[i].ts, prev: s.last}
				}
				s.last = valid[i].ts
			}
			s.seq.add(valid)
			s.cond.Broadcast()
			for s.ahead > 0 && s.seq.Len() >= max(s.taken+s.ahead, s.want) && ctx.Err() == nil {
				s.paused = true
				s.cond.Broadcast()
				s.cond.Wait()
			}
			s.paused = false
			return nil
		})
		s.mu.Lock()
		defer s.mu.Unlock()
		s.dec, s.err, s.done = dec, err, true
		if clock != nil {
			s.decodedAt = clock()
		}
		s.cond.Broadcast()
	}()
	return s
}

// upTo waits until the first k items are decoded, or every line is, and
// returns the items decoded so far (a sequence that stays valid while more
// are decoded). It fails once decoding failed or found the file out of
// time order.
func (s *source) upTo(k int) (*itemSeq, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k > s.want {
		s.want = k
		s.paused = false
		s.cond.Broadcast()
	}
	for !s.done && s.seq.Len() < k {
		s.cond.Wait()
	}
	if s.err != nil {
		return nil, s.err
	}
	snap := itemSeq{blocks: s.seq.blocks[:len(s.seq.blocks):len(s.seq.blocks)], ends: s.seq.ends[:len(s.seq.ends):len(s.seq.ends)]}
	return &snap, nil
}

// release lets go of the decoded blocks whose items all come before item
// to (itemSeq.drop): the replay has taken them. Sequences upTo returned
// must not read those items any more.
func (s *source) release(to int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq.drop(to)
	s.taken = max(s.taken, to)
	s.paused = false // until the decoder finds it still has to wait
	s.cond.Broadcast()
}

// count is how many items are decoded so far.
func (s *source) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq.Len()
}

// all waits until every line is decoded and returns the counts.
func (s *source) all() (*decoded, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.want = math.MaxInt
	s.paused = false
	s.cond.Broadcast()
	for !s.done {
		s.cond.Wait()
	}
	return s.dec, s.err
}

// stop ends the decoding (if it still runs) and waits until the file is no
// longer read.
func (s *source) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	<-s.finished
}
