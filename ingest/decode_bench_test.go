package ingest

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/chatwarden/chatwarden/pseudonym"
)

// BenchmarkDecodeAll decodes, validates and pseudonymizes (HMAC, the real
// pseudonymizer) a batch of 20,000 access events shaped like the
// simulator's (chatwarden simulate, what make bench-ingest sends) with one
// decoding worker: ingest's per-event CPU before the insert. ns/op is per
// batch; ns/event per event; cpu-ns/event the process's CPU (user and
// system, every thread) per event.
//
//	go test -run '^$' -bench BenchmarkDecodeAll -benchmem ./ingest/
func BenchmarkDecodeAll(b *testing.B) {
	const n = 20000
	p, err := pseudonym.New(pseudonym.Key{ID: '1', Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{DecodeWorkers: 1}, Deps{Source: newFakeSource(&journal{}), DeadLetters: &fakeWriter{j: &journal{}}, Store: &fakeStore{j: &journal{}}, Hasher: p})
	if err != nil {
		b.Fatal(err)
	}
	fs := make([]Fetched, n)
	for i := range fs {
		ts := testNow.Add(-time.Duration(n-i) * time.Millisecond).UTC().Format("2006-01-02T15:04:05.999Z07:00")
		cust := fmt.Sprintf("cust-%06d", (i*7919)%50000)
		v := fmt.Sprintf(`{"event_id":"sim1-20261019T0000-%d","ts":%q,"tenant":"brand-%c","actor":{"id":"assistant-%04d","type":"bot","role":"chat-assistant"},"action":"read","store":"orders","resource":{"type":"order","id":"ord-%08d"},"subject_id":%q,"records":2,"bytes":5484,"fields":["order_history"],"purpose":"support","conversation":{"id":"conv-%d","subject_id":%q},"tool":"lookup_order","result":"allowed","client":{"ip":"10.20.1.%d","country":"US","user_agent":"assistant-runtime/2.7 (tool-calls)"}}`,
			i, ts, 'a'+byte(i%3), i%125, i*31, cust, i%977, cust, i%250)
		fs[i] = Fetched{Message: msg(DefaultAccessTopic, i%4, int64(i/4), v), Generation: 1}
	}
	if res, _ := c.decodeAll(fs, testNow); res[0].err != nil || res[n-1].err != nil {
		b.Fatalf("not valid: %v %v", res[0].err, res[n-1].err)
	}
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		res, evs := c.decodeAll(fs, testNow)
		if len(res) != n || len(evs) != n {
			b.Fatal("short")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
	// The process's CPU (every thread: the garbage collector's included),
	// which a machine shared with other work disturbs less than the wall.
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N*n), "cpu-ns/event")
}

// processCPU is the user and system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
