package ingest

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkGather gathers a decoded batch of 20,000 access events (four
// partitions) into the batch to store: the per-batch work between decoding
// and the first ClickHouse call.
func BenchmarkGather(b *testing.B) {
	const n = 20000
	c, err := New(Config{}, Deps{Source: newFakeSource(&journal{}), DeadLetters: &fakeWriter{j: &journal{}}, Store: &fakeStore{j: &journal{}}, Hasher: fakeHasher{}})
	if err != nil {
		b.Fatal(err)
	}
	fs := make([]Fetched, n)
	for i := range fs {
		fs[i] = Fetched{Message: msg(DefaultAccessTopic, i%4, int64(i/4), accessJSON(fmt.Sprintf("g%d", i), testNow.Add(-time.Duration(n-i)*time.Millisecond), fmt.Sprintf("bot-%d", i%100))), Generation: 1}
	}
	res, evs := c.decodeAll(fs, testNow)
	pb := &pendingBatch{msgs: fs, res: res, evs: evs, now: testNow}
	b.ReportAllocs()
	for b.Loop() {
		out, live := gather(pb, 1)
		if len(out.events) != n || len(live) != n {
			b.Fatalf("gathered %d events of %d messages", len(out.events), len(live))
		}
	}
}
