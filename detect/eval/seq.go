package eval

import (
	"slices"
	"sort"
	"time"
)

// itemSeq is a scenario's valid lines in time order, held as the decoder's
// blocks: a file written in time order (as simulate writes it) is replayed
// from the blocks it was decoded into, never copied into one slice (1.6M
// items of 416 bytes were 670 MB copied, and as many fresh pages touched).
type itemSeq struct {
	blocks [][]item // none empty
	ends   []int    // ends[i] is the index after the last item of blocks[i]
}

// seqOf returns the blocks as one sequence, skipping empty blocks.
func seqOf(blocks ...[]item) *itemSeq {
	s := &itemSeq{}
	n := 0
	for _, b := range blocks {
		if len(b) == 0 {
			continue
		}
		n += len(b)
		s.blocks = append(s.blocks, b)
		s.ends = append(s.ends, n)
	}
	return s
}

// add appends a block (an empty one is skipped).
func (s *itemSeq) add(b []item) {
	if len(b) == 0 {
		return
	}
	s.blocks = append(s.blocks, b)
	s.ends = append(s.ends, s.Len()+len(b))
}

// Len is the number of items.
func (s *itemSeq) Len() int {
	if len(s.ends) == 0 {
		return 0
	}
	return s.ends[len(s.ends)-1]
}

// at returns item i.
func (s *itemSeq) at(i int) *item {
	b := sort.SearchInts(s.ends, i+1)
	start := 0
	if b > 0 {
		start = s.ends[b-1]
	}
	return &s.blocks[b][i-start]
}

// spans returns the items [from, to) as slices of the blocks, in order.
func (s *itemSeq) spans(from, to int) [][]item {
	var out [][]item
	for b := sort.SearchInts(s.ends, from+1); b < len(s.blocks) && from < to; b++ {
		start := 0
		if b > 0 {
			start = s.ends[b-1]
		}
		hi := min(to, s.ends[b])
		out = append(out, s.blocks[b][from-start:hi-start])
		from = hi
	}
	return out
}

// sorted reports whether the items are in time order.
func (s *itemSeq) sorted() bool {
	var prev time.Time
	for i, b := range s.blocks {
		for j := range b {
			if (i > 0 || j > 0) && b[j].ts.Before(prev) {
				return false
			}
			prev = b[j].ts
		}
	}
	return true
}

// drop lets go of the blocks whose items all come before item to: a
// replay calls it once it has taken those items, so that a long file's
// decoded blocks are not all held until its end. The items of a dropped
// block must not be read again (at and spans then fail).
func (s *itemSeq) drop(to int) {
	for b := range sort.SearchInts(s.ends, to+1) {
		s.blocks[b] = nil
	}
}

// inTimeOrder returns the items sorted by time, file order among equal
// times: s itself when it is in order, otherwise the items moved once,
// in order, into new blocks of the size of s's largest (so that drop can
// let go of them as they are replayed).
func (s *itemSeq) inTimeOrder() *itemSeq {
	if s.sorted() {
		return s
	}
	n := s.Len()
	ts := make([]time.Time, 0, n)
	size := 1
	for _, b := range s.blocks {
		size = max(size, len(b))
		for j := range b {
			ts = append(ts, b[j].ts)
		}
	}
	idx := timeOrder(ts)
	blocks := make([][]item, 0, (n+size-1)/size)
	for lo := 0; lo < n; lo += size {
		b := make([]item, min(size, n-lo))
		for i := range b {
			b[i] = *s.at(int(idx[lo+i]))
		}
		blocks = append(blocks, b)
	}
	return seqOf(blocks...)
}

// timeOrder returns the indexes 0..len(ts)-1 in time order, index order
// among equal times.
func timeOrder(ts []time.Time) []int32 {
	idx := make([]int32, len(ts))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(a, b int32) int { return ts[a].Compare(ts[b]) })
	return idx
}

// sortByTime returns items sorted by time, file order among equal times.
// A slice already in time order is returned as it is; otherwise the order
// is found on indexes (cheap to move) and the items are moved once.
func sortByTime(items []item) []item {
	less := func(a, b *item) bool { return a.ts.Before(b.ts) }
	sorted := true
	for i := 1; i < len(items); i++ {
		if less(&items[i], &items[i-1]) {
			sorted = false
			break
		}
	}
	if sorted {
		return items
	}
	ts := make([]time.Time, len(items))
	for i := range items {
		ts[i] = items[i].ts
	}
	out := make([]item, len(items))
	for i, j := range timeOrder(ts) {
		out[i] = items[j]
	}
	return out
}
