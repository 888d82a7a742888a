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

// inTimeOrder returns the items sorted by time, file order among equal
// times: s itself when it is in order, otherwise one sorted block (the
// blocks joined, then sortByTime).
func (s *itemSeq) inTimeOrder() *itemSeq {
	if s.sorted() {
		return s
	}
	all := make([]item, 0, s.Len())
	for i, b := range s.blocks {
		all = append(all, b...)
		s.blocks[i] = nil
	}
	return seqOf(sortByTime(all))
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
	idx := make([]int32, len(items))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(a, b int32) int { return items[a].ts.Compare(items[b].ts) })
	out := make([]item, len(items))
	for i, j := range idx {
		out[i] = items[j]
	}
	return out
}
