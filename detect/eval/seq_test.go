package eval

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
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
			if name == "in time order" && len(got.items.blocks) < 2 {
				t.Errorf("a file in time order was joined into %d block(s)", len(got.items.blocks))
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
		src := streamBlocks(t.Context(), strings.NewReader(text), nil, nil, 7)
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
