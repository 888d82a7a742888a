package ingest

import (
	"context"
	"sync"
)

// assumedMaxMessage is the message size the per-partition reader queues are
// sized for: Kafka's default message.max.bytes (1 MiB). kafka-go's reader
// queues count messages, so a queue of n holds up to n such messages.
const assumedMaxMessage = 1 << 20

// byteBudget bounds the bytes of the messages between fetching and
// committing: fetch acquires each message's size before handing it on, and
// a batch's bytes are released once it is stored and committed (or
// dropped). A slow ClickHouse then stops fetching instead of growing memory.
type byteBudget struct {
	mu    sync.Mutex
	total int64
	used  int64
	freed chan struct{} // closed and replaced on every release
}

func newByteBudget(total int64) *byteBudget {
	return &byteBudget{total: total, freed: make(chan struct{})}
}

// acquire waits until n bytes fit (a message larger than the whole budget
// waits for an empty budget, then takes it all) or ctx ends.
func (b *byteBudget) acquire(ctx context.Context, n int64) error {
	n = min(n, b.total)
	for {
		b.mu.Lock()
		if b.used+n <= b.total {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release returns n bytes (as acquired: capped at the budget).
func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	b.used = max(b.used-min(n, b.total), 0)
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// inUse returns the bytes held now.
func (b *byteBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// messageBytes is what a message counts against the budget.
func messageBytes(f *Fetched) int64 {
	n := len(f.Key) + len(f.Value)
	for _, h := range f.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// pipelineBudget is the share of Config.MaxBufferBytes for the messages
// between fetch and commit; the rest is for the partition readers' queues
// and fetch buffers (a quarter) and GroupSource's hand-off queue (an
// eighth).
func (c Config) pipelineBudget() int64 { return c.MaxBufferBytes * 5 / 8 }

// batchBytes closes a batch: a third of the pipeline budget, so that one
// batch is stored while the next is collected and a third waits.
func (c Config) batchBytes() int64 { return c.pipelineBudget() / 3 }

// readerSizing returns each partition reader's queue length and fetch
// size when partitions are assigned: a quarter of MaxBufferBytes shared
// among them, queues sized for 1 MiB messages.
func (c Config) readerSizing(partitions int) (queue, fetchBytes int) {
	per := c.MaxBufferBytes / 4 / int64(max(partitions, 1))
	queue = int(min(max(per/assumedMaxMessage, 1), int64(min(c.BatchSize, 1000))))
	fetchBytes = int(min(max(per, 64<<10), int64(c.FetchMaxBytes)))
	return queue, fetchBytes
}

// handoffQueue is GroupSource's queue length between the partition readers
// and fetch: an eighth of MaxBufferBytes in 1 MiB messages, 8 to 4096.
func (c Config) handoffQueue() int {
	return int(min(max(c.MaxBufferBytes/8/assumedMaxMessage, 8), int64(min(c.BatchSize, 4096))))
}
