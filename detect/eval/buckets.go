package eval

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// bucketFeed answers the subject index's reads of customers per bucket
// (store.SubjectBuckets) from the events the replay feeds it, for a
// database that keeps no raw events (store.PassThroughSchema). Its rows
// are store.SubjectBucketsSQL's: the events that name a customer, per
// (tenant, actor, customer), the buckets (intDiv(ts, bucket) * bucket,
// ts in whole seconds as the events table's DateTime holds it) in which
// the actor touched the customer, those in which the result was not
// denied, and those in which such a read was outside the customer's own
// conversation (conversation_subject_id another customer's or empty).
// TestBucketFeedAgreesWithStore compares the two.
//
// The replay feeds each group's events before it inserts them; the subject
// index reads the ranges in time order, each once, as their events are
// stored, and a read takes the events it answers for out of the feed. A
// read of a range that does not follow the last one, or before every
// event of it was fed, or of an event fed after its range was read, fails
// with store.ErrNoRawEvents: the replay then starts again on a database
// that keeps raw events (Run).
type bucketFeed struct {
	mu sync.Mutex
	// pending are the events fed and not read yet, in the order fed.
	pending []bucketEvent
	// fedTo: every event before it (Unix seconds) has been fed; readTo:
	// every read so far ended at or before it.
	fedTo, readTo int64
	// broken is set when an event came in that a read already passed,
	// or outside DateTime's range.
	broken bool
}

// bucketEvent is one fed event that names a customer.
type bucketEvent struct {
	sec                    uint32
	tenant, actor, subject string
	read, outside          bool
}

func newBucketFeed() *bucketFeed { return &bucketFeed{readTo: math.MinInt64} }

// feed adds evs (each group's events, in time order) and notes that every
// event before fedTo has been fed.
func (f *bucketFeed) feed(evs []models.Event, fedTo time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range evs {
		e := &evs[i]
		if e.SubjectID == "" {
			continue // SubjectBucketsSQL: subject_id != ''
		}
		sec := e.TS.Unix()
		if sec < 0 || sec > math.MaxUint32 || sec < f.readTo {
			f.broken = true
			continue
		}
		read := e.Result != models.ResultDenied
		f.pending = append(f.pending, bucketEvent{sec: uint32(sec), tenant: e.Tenant, actor: e.Actor.ID, subject: e.SubjectID,
			read: read, outside: read && e.SubjectID != e.Conversation.SubjectID})
	}
	f.fedTo = max(f.fedTo, fedTo.Unix())
}

// subjectKey is one (tenant, actor, customer).
type subjectKey struct{ tenant, actor, subject string }

// buckets implements the subject index's read (its signature is
// store.Store.SubjectBuckets'): the rows of [from, to), ordered by tenant,
// actor and customer, each bucket list ascending. The ranges must follow
// each other.
func (f *bucketFeed) buckets(_ context.Context, from, to time.Time, bucket time.Duration, shard store.Shard) ([]store.SubjectBuckets, error) {
	b := int64(bucket / time.Second)
	fr, t := from.Unix(), to.Unix()
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case b < 1 || bucket%time.Second != 0 || shard.Count > 1:
		return nil, fmt.Errorf("subject buckets of %s (shard %d of %d) from the replay's events: %w", bucket, shard.Index, shard.Count, store.ErrNoRawEvents)
	case f.broken || t > f.fedTo || (f.readTo != math.MinInt64 && fr != f.readTo) || fr > t:
		return nil, fmt.Errorf("subject buckets %s..%s from the replay's events (fed to %s, read to %s): %w",
			from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), time.Unix(f.fedTo, 0).UTC().Format(time.RFC3339),
			time.Unix(f.readTo, 0).UTC().Format(time.RFC3339), store.ErrNoRawEvents)
	}
	rows := map[subjectKey]*store.SubjectBuckets{}
	kept := f.pending[:0]
	for _, e := range f.pending {
		if int64(e.sec) >= t {
			kept = append(kept, e)
			continue
		}
		if int64(e.sec) < fr {
			continue // before the first read: no read asks for it
		}
		k := subjectKey{e.tenant, e.actor, e.subject}
		r := rows[k]
		if r == nil {
			r = &store.SubjectBuckets{Tenant: e.tenant, ActorID: e.actor, SubjectID: e.subject}
			rows[k] = r
		}
		bk := uint32(int64(e.sec) / b * b)
		r.Buckets = addBucket(r.Buckets, bk)
		if e.read {
			r.ReadBuckets = addBucket(r.ReadBuckets, bk)
		}
		if e.outside {
			r.OutsideBuckets = addBucket(r.OutsideBuckets, bk)
		}
	}
	clear(f.pending[len(kept):])
	f.pending = kept
	f.readTo = t
	out := make([]store.SubjectBuckets, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(p, q store.SubjectBuckets) int {
		return cmp.Or(strings.Compare(p.Tenant, q.Tenant), strings.Compare(p.ActorID, q.ActorID), strings.Compare(p.SubjectID, q.SubjectID))
	})
	return out, nil
}

// addBucket adds bk to bs, a set of buckets kept ascending: events come
// in time order, so bk is nearly always the last one or a new last one.
func addBucket(bs []uint32, bk uint32) []uint32 {
	if n := len(bs); n > 0 && bs[n-1] >= bk {
		if bs[n-1] == bk {
			return bs
		}
		i, found := slices.BinarySearch(bs, bk)
		if found {
			return bs
		}
		return slices.Insert(bs, i, bk)
	}
	return append(bs, bk)
}
