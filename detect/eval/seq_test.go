package eval

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/chatwarden/chatwarden/models"
)

// TestItemSeqSpansAndAt: a sequence of blocks (an empty one among them)
// reads as one slice, by index and by ranges that cross blocks.
func TestItemSeqSpansAndAt(t *testing.T) {
	base := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var all []item
	for i := range 10 {
		all = append(all, item{ts: base.Add(time.Duration(i) * time.Second), ev: models.Event{EventID: fmt.Sprint(i)}})
	}
	s := seqOf(all[:3], nil, all[3:4], all[4:9], all[9:])
	if s.Len() != 10 || len(s.blocks) != 4 {
		t.Fatalf("Len %d, blocks %d; want 10, 4", s.Len(), len(s.blocks))
	}
	for i := range 10 {
		if got := s.at(i).ev.EventID; got != fmt.Sprint(i) {
			t.Errorf("at(%d) = %s", i, got)
		}
	}
	for from := 0; from <= 10; from++ {
		for to := from; to <= 10; to++ {
			var ids []string
			for _, sp := range s.spans(from, to) {
				if len(sp) == 0 {
					t.Errorf("spans(%d, %d) holds an empty span", from, to)
				}
				for _, it := range sp {
					ids = append(ids, it.ev.EventID)
				}
			}
			var want []string
			for i := from; i < to; i++ {
				want = append(want, fmt.Sprint(i))
			}
			if !reflect.DeepEqual(ids, want) {
				t.Errorf("spans(%d, %d) = %v, want %v", from, to, ids, want)
			}
		}
	}
	if empty := seqOf(); empty.Len() != 0 || len(empty.spans(0, 0)) != 0 {
		t.Errorf("empty sequence: Len %d", empty.Len())
	}
}

// TestItemSeqDrop: drop lets go of exactly the blocks every item of which
// comes before the index; the items after it still read the same.
func TestItemSeqDrop(t *testing.T) {
	base := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	var all []item
	for i := range 10 {
		all = append(all, item{ts: base.Add(time.Duration(i) * time.Second), ev: models.Event{EventID: fmt.Sprint(i)}})
	}
	for _, tc := range []struct {
		to   int
		kept []bool // per block (ends 3, 4, 9, 10)
	}{
		{0, []bool{true, true, true, true}},
		{2, []bool{true, true, true, true}},
		{3, []bool{false, true, true, true}},
		{5, []bool{false, false, true, true}},
		{9, []bool{false, false, false, true}},
		{10, []bool{false, false, false, false}},
	} {
		s := seqOf(all[:3], all[3:4], all[4:9], all[9:])
		s.drop(tc.to)
		for b, want := range tc.kept {
			if got := s.blocks[b] != nil; got != want {
				t.Errorf("drop(%d): block %d kept %v, want %v", tc.to, b, got, want)
			}
		}
		if s.Len() != 10 {
			t.Errorf("drop(%d): Len %d, want 10", tc.to, s.Len())
		}
		// the items of the blocks kept read as before
		first := 0
		for b, kept := range tc.kept {
			if !kept {
				first = s.ends[b]
			}
		}
		for i := first; i < 10; i++ {
			if got := s.at(i).ev.EventID; got != fmt.Sprint(i) {
				t.Errorf("drop(%d): at(%d) = %s", tc.to, i, got)
			}
		}
	}
}

// TestDecodeBlocksMatchesLineByLine: decoding in blocks (here of 7 lines,
// so that every block boundary falls somewhere different), with the reader
// ahead of the decoders and the blocks kept as they are, gives the items,
// line count, rejections by reason, examples (line numbers) and payload PII
// findings that decoding the file line by line and sorting it does: for a
// file in time order (kept as blocks, not joined) and one out of order.
func TestDecodeBlocksMatchesLineByLine(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	build := func(order func(i int) int) string {
		var s scenario
		for i := range 60 {
			ts := start.Add(time.Duration(order(i)) * time.Minute)
			switch {
			case i%11 == 3:
				s.consent(ts, "cust-1", "marketing", i%2 == 0)
			case i%13 == 5:
				s.lines = append(s.lines, `not json`, ``)
			case i%17 == 2:
				s.lines = append(s.lines, fmt.Sprintf(`{"event_id":"pii-%d","ts":%q,"tenant":"default","actor":{"id":"a1","type":"human"},"action":"read","store":"crm","resource":{"type":"customer_profile","id":"4111 1111 1111 1111"},"records":1,"result":"allowed"}`, i, ts.Format(time.RFC3339)))
			case i%19 == 7:
				s.lines = append(s.lines, `{"event_id":"bad","ts":"2026-03-02T10:00:00Z","actor":{"id":"x","type":"robot"},"action":"read","store":"crm","resource":{"type":"customer_profile"}}`)
			default:
				s.access(ts, fmt.Sprintf("a%d", i%3), "support", fmt.Sprintf("cust-%d", i%5), 1)
			}
		}
		return s.text()
	}
	for name, order := range map[string]func(int) int{
		"in time order":     func(i int) int { return i / 2 }, // equal times too
		"out of time order": func(i int) int { return (i * 37) % 23 },
	} {
		t.Run(name, func(t *testing.T) {
			text := build(order)
			got, err := decodeBlocks(t.Context(), strings.NewReader(text), nil, 7)
			if err != nil {
				t.Fatal(err)
			}
			// The reference: line by line, in one slice, sorted.
			want := &decoded{rejected: map[models.Reason]int{}}
			var items []item
			for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
				if strings.TrimSpace(line) == "" {
					continue
				}
				want.lines++
				it, err := decodeLine([]byte(line+"\n"), nil)
				if err == nil {
					items = append(items, it)
					continue
				}
				r := models.ReasonOf(err)
				if r == "" {
					r = models.ReasonBadJSON
				}
				want.rejected[r]++
				if r == models.ReasonPIIInPayload {
					if f, ok := piiFinding([]byte(line)); ok {
						want.pii = append(want.pii, f)
					}
				}
				if want.rejected[r] <= maxExamples {
					want.examples = append(want.examples, Rejection{Line: i + 1, Reason: r})
				}
			}
			items = sortByTime(items)
			if got.lines != want.lines || !reflect.DeepEqual(got.rejected, want.rejected) {
				t.Errorf("lines %d rejected %v; want %d %v", got.lines, got.rejected, want.lines, want.rejected)
			}
			if len(want.rejected) < 3 || len(want.pii) == 0 {
				t.Fatalf("the file rejects too little to test: %v, %d pii", want.rejected, len(want.pii))
			}
			var gotEx []Rejection
			for _, x := range got.examples {
				gotEx = append(gotEx, Rejection{Line: x.Line, Reason: x.Reason})
			}
			if !reflect.DeepEqual(gotEx, want.examples) {
				t.Errorf("examples %v, want %v", gotEx, want.examples)
			}
			if !reflect.DeepEqual(got.pii, want.pii) {
				t.Errorf("pii findings %v, want %v", got.pii, want.pii)
			}
			if got.items.Len() != len(items) {
				t.Fatalf("%d items, want %d", got.items.Len(), len(items))
			}
			for i := range items {
				g := got.items.at(i)
				if !reflect.DeepEqual(*g, items[i]) {
					t.Fatalf("item %d: %s %s, want %s %s", i, g.ts, g.ev.EventID, items[i].ts, items[i].ev.EventID)
				}
			}
			if len(got.items.blocks) < 2 {
				t.Errorf("%s: the items are in %d block(s), want several (drop lets go of them one by one)", name, len(got.items.blocks))
			}
			for i, b := range got.items.blocks {
				if len(b) > 7 {
					t.Errorf("%s: block %d holds %d items, more than a decoded block's 7 lines", name, i, len(b))
				}
			}
		})
	}
}

// TestStreamDecodeMatchesSortedDecode: streaming a file in time order
// (blocks of 7 lines, so that every block boundary falls somewhere
// different) hands out the items decodeBlocks sorts, in the same order, and
// counts the same lines, rejections by reason, examples (line numbers) and
// payload PII findings; a file out of time order ends the stream with an
// *outOfOrderError naming the item that came after a later one.
func TestStreamDecodeMatchesSortedDecode(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	build := func(order func(i int) int) string {
		var s scenario
		for i := range 80 {
			ts := start.Add(time.Duration(order(i)) * time.Minute)
			switch {
			case i%11 == 3:
				s.consent(ts, "cust-1", "marketing", i%2 == 0)
			case i%13 == 5:
				s.lines = append(s.lines, `not json`, ``)
			case i%17 == 2:
				s.lines = append(s.lines, fmt.Sprintf(`{"event_id":"pii-%d","ts":%q,"tenant":"default","actor":{"id":"a1","type":"human"},"action":"read","store":"crm","resource":{"type":"customer_profile","id":"4111 1111 1111 1111"},"records":1,"result":"allowed"}`, i, ts.Format(time.RFC3339)))
			case i%19 == 7:
				// rejected, and earlier than the lines around it: a
				// rejected line does not count against the order
				s.lines = append(s.lines, `{"event_id":"bad","ts":"2026-03-01T10:00:00Z","actor":{"id":"x","type":"robot"},"action":"read","store":"crm","resource":{"type":"customer_profile"}}`)
			default:
				s.access(ts, fmt.Sprintf("a%d", i%3), "support", fmt.Sprintf("cust-%d", i%5), 1)
			}
		}
		return s.text()
	}
	stream := func(text string) (*source, []item) {
		src := streamBlocks(t.Context(), strings.NewReader(text), nil, nil, 7, 3)
		t.Cleanup(src.stop)
		var got []item
		for from := 0; ; {
			items, err := src.upTo(from + 5)
			if err != nil {
				return src, got
			}
			if from >= items.Len() {
				return src, got
			}
			to := min(items.Len(), from+5)
			for _, sp := range items.spans(from, to) {
				got = append(got, sp...)
			}
			from = to
		}
	}

	t.Run("in time order", func(t *testing.T) {
		text := build(func(i int) int { return i / 2 }) // equal times too
		want, err := decodeBlocks(t.Context(), strings.NewReader(text), nil, 7)
		if err != nil {
			t.Fatal(err)
		}
		src, items := stream(text)
		got, err := src.all()
		if err != nil {
			t.Fatal(err)
		}
		if got.lines != want.lines || got.valid != want.items.Len() || !reflect.DeepEqual(got.rejected, want.rejected) {
			t.Errorf("lines %d valid %d rejected %v; want %d %d %v", got.lines, got.valid, got.rejected, want.lines, want.items.Len(), want.rejected)
		}
		if len(want.rejected) < 3 || len(want.pii) == 0 {
			t.Fatalf("the file rejects too little to test: %v, %d pii", want.rejected, len(want.pii))
		}
		if !reflect.DeepEqual(got.examples, want.examples) {
			t.Errorf("examples %v, want %v", got.examples, want.examples)
		}
		if !reflect.DeepEqual(got.pii, want.pii) {
			t.Errorf("pii findings %v, want %v", got.pii, want.pii)
		}
		if len(items) != want.items.Len() || src.count() != len(items) {
			t.Fatalf("%d items streamed (count %d), want %d", len(items), src.count(), want.items.Len())
		}
		for i := range items {
			if w := want.items.at(i); !reflect.DeepEqual(items[i], *w) {
				t.Fatalf("item %d: %s %s, want %s %s", i, items[i].ts, items[i].ev.EventID, w.ts, w.ev.EventID)
			}
		}
	})

	t.Run("out of time order", func(t *testing.T) {
		// in order but for line 40 onwards, which go back an hour
		text := build(func(i int) int {
			if i >= 40 {
				return i - 60
			}
			return i
		})
		src, items := stream(text)
		_, err := src.all()
		var ooo *outOfOrderError
		if !errors.As(err, &ooo) {
			t.Fatalf("stream of a file out of order: %v, want an outOfOrderError", err)
		}
		if !ooo.ts.Before(ooo.prev) || ooo.after == 0 || ooo.after > 40 {
			t.Errorf("out of order: %v", ooo)
		}
		if _, err := src.upTo(1 << 20); !errors.As(err, &ooo) {
			t.Errorf("upTo after the stream failed: %v", err)
		}
		for i := 1; i < len(items); i++ {
			if items[i].ts.Before(items[i-1].ts) {
				t.Fatalf("item %d handed out of order", i)
			}
		}
	})
}

// TestStreamDecodeStaysAhead: a streamed file is decoded only a bounded
// number of items past those the replay released (and further when more
// are asked for), goes on once more are released, and stops when the
// source is stopped while it waits.
func TestStreamDecodeStaysAhead(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var sc scenario
	for i := range 100 {
		sc.access(start.Add(time.Duration(i)*time.Second), "a1", "support", fmt.Sprintf("cust-%d", i%5), 1)
	}
	text := sc.text()
	const block, ahead = 7, 10
	// waitPaused waits until the decoder waits for the replay and returns
	// how many items it decoded.
	waitPaused := func(t *testing.T, src *source) int {
		t.Helper()
		src.mu.Lock()
		defer src.mu.Unlock()
		for !src.paused && !src.done {
			src.cond.Wait()
		}
		if src.done {
			t.Fatalf("the decoding ended (%d items) instead of waiting for the replay", src.seq.Len())
		}
		return src.seq.Len()
	}

	src := streamBlocks(t.Context(), strings.NewReader(text), nil, nil, block, ahead)
	t.Cleanup(src.stop)
	if _, err := src.upTo(1); err != nil {
		t.Fatal(err)
	}
	if n := waitPaused(t, src); n < ahead || n >= ahead+block {
		t.Fatalf("paused at %d items, want %d to %d", n, ahead, ahead+block-1)
	}
	// asking for more lets it decode that far
	items, err := src.upTo(40)
	if err != nil || items.Len() < 40 {
		t.Fatalf("upTo(40): %d items, %v", items.Len(), err)
	}
	if n := waitPaused(t, src); n < 40 || n >= 40+block {
		t.Fatalf("paused at %d items after upTo(40), want 40 to %d", n, 40+block-1)
	}
	// releasing lets it go ahead of the release
	src.release(45)
	if n := waitPaused(t, src); n < 45+ahead || n >= 45+ahead+block {
		t.Fatalf("paused at %d items after release(45), want %d to %d", n, 45+ahead, 45+ahead+block-1)
	}
	// all waits for every line
	dec, err := src.all()
	if err != nil || dec.lines != 100 || src.count() != 100 {
		t.Fatalf("all: %d lines, %d items, %v; want 100", dec.lines, src.count(), err)
	}

	// stopping a source whose decoder waits ends it
	stopped := streamBlocks(t.Context(), strings.NewReader(text), nil, nil, block, ahead)
	waitPaused(t, stopped)
	stopped.stop()
	if _, err := stopped.all(); !errors.Is(err, context.Canceled) {
		t.Errorf("a source stopped while its decoder waited: %v, want context.Canceled", err)
	}
}

// TestReadBlocksMatchesReadBytes: the block reader gives the lines, line
// numbers, block boundaries and read error that reading line by line
// (bufio.Reader.ReadBytes) gives, whatever sizes the reads come in (a line
// split over reads, a line longer than a read, no final line end, blank
// and white-space-only lines, CRLF), while each block's buffer is recycled
// as soon as its lines are copied out.
func TestReadBlocksMatchesReadBytes(t *testing.T) {
	errRead := errors.New("disk on fire")
	long := strings.Repeat("x", readSize+17)
	texts := map[string]string{
		"empty":            "",
		"one line":         "a",
		"one line end":     "a\n",
		"blank lines":      "\n\n  \n\t\r\n",
		"mixed":            "a\n\nb\r\n  \nccc\n   d  \n\ne",
		"long line":        "a\n" + long + "\nb",
		"many":             strings.Repeat("line one\nline two\n\n", 40),
		"ends on boundary": "1\n2\n3\n4\n5\n6\n",
	}
	readers := map[string]func(string) io.Reader{
		"whole":    func(s string) io.Reader { return strings.NewReader(s) },
		"one byte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"half":     func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
		"data+eof": func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
		"then an error": func(s string) io.Reader {
			return io.MultiReader(strings.NewReader(s), iotest.ErrReader(errRead))
		},
	}
	type got struct {
		lines []string
		nums  []int
		err   bool
	}
	// want reads as readBlocks did with bufio.Reader.ReadBytes.
	want := func(r io.Reader, block int) []got {
		var out []got
		br := bufio.NewReader(r)
		lineNo := 0
		for eof := false; !eof; {
			var g got
			for len(g.lines) < block {
				b, err := br.ReadBytes('\n')
				if len(b) > 0 {
					lineNo++
				}
				if len(bytes.TrimSpace(b)) > 0 {
					g.lines = append(g.lines, string(b))
					g.nums = append(g.nums, lineNo)
				}
				if err != nil {
					g.err, eof = err != io.EOF, true
					break
				}
			}
			out = append(out, g)
		}
		return out
	}
	for tn, text := range texts {
		for rn, reader := range readers {
			for _, block := range []int{1, 3, 7, 1000} {
				t.Run(fmt.Sprintf("%s/%s/%d", tn, rn, block), func(t *testing.T) {
					stop := make(chan struct{})
					blocks, recycle, done := readBlocks(reader(text), block, stop)
					var gots []got
					for lb := range blocks {
						var g got
						for i, l := range lb.lines {
							g.lines = append(g.lines, string(l))
							g.nums = append(g.nums, lb.nums[i])
						}
						if lb.err != nil {
							if !errors.Is(lb.err, errRead) {
								t.Errorf("read error %v, want %v", lb.err, errRead)
							}
							g.err = true
						}
						gots = append(gots, g)
						// scribble over the buffer: the reader must not
						// read from it once it is recycled
						for i := range lb.data {
							lb.data[i] = '#'
						}
						recycle(lb)
					}
					close(stop)
					<-done
					if w := want(reader(text), block); !reflect.DeepEqual(gots, w) {
						t.Errorf("blocks\n%v\nwant\n%v", gots, w)
					}
				})
			}
		}
	}
}
