// Package eval replays a labelled JSONL scenario through the real store and
// the whole detection engine on a simulated clock, and scores the alerts it
// would raise against the labels: `chatwarden eval`.
package eval

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/chatwarden/chatwarden/detect"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/store"
)

// Options configure one replay.
type Options struct {
	// Events is the JSONL scenario (access.v1 and consent.v1 lines).
	Events io.Reader
	// Labels are the attack labels; Negatives the hard-negative labels
	// (labels of kind negative:* may also sit in Labels).
	Labels, Negatives []Label
	// Config is the detection configuration (its Window is used).
	Config detect.Config
	// Store is a fresh, migrated database the replay fills.
	Store *store.Store
	// Alerts receives one JSON alert a line (optional).
	Alerts io.Writer
	// Progress receives progress lines (optional).
	Progress io.Writer
	// Tick, when set, is called after every chunk with the events and
	// consents replayed so far and the total to replay (for a progress
	// bar; while a file is streamed, the total decoded so far).
	Tick func(done, total int)
	// ChunkEvents is how many events one chunk holds (default 50000):
	// the detectors evaluate the windows a chunk completed once it is
	// stored.
	ChunkEvents int
	// InsertChunks is how many chunks one INSERT carries at most (default
	// 4; the first INSERT carries one, each next twice as many as the one
	// before): fewer, larger inserts make fewer parts for ClickHouse to
	// write and merge. What is stored and detected does not depend on it.
	InsertChunks int
	// Clock measures the replay speed (wall time; default time.Now).
	Clock func() time.Time
	// Reset, when set and Events is an io.ReadSeeker (a file, not a pipe),
	// lets the replay start while the file is still being decoded: a file
	// in time order (as simulate writes it) is replayed as its blocks are
	// decoded. Should a line turn out earlier than one before it, the
	// replay stops, Reset returns a fresh database migrated with schema
	// sc in place of Store, and the file is read again from where it
	// started, decoded whole and sorted by time (as without Reset). What
	// is stored and detected is the same either way.
	//
	// Store may keep no raw events (store.PassThroughSchema; see
	// PassThrough): the replay answers the detectors' reads of raw events
	// from its own indexes. Should it meet one they cannot answer, it
	// stops, and Reset (sc store.DetectionSchema) gives it a database that
	// keeps them to replay the file again into; without Reset such a
	// replay fails with store.ErrNoRawEvents.
	Reset func(ctx context.Context, sc store.Schema) (*store.Store, error)
	// streamBlock is how many lines a streamed block holds (default
	// 50000; tests make it small).
	streamBlock int
}

// evalKey is the fixed pseudonymization key of replays: ids only have to
// compare equal within one run.
var evalKey = sha256.Sum256([]byte("chatwarden eval pseudonymization key"))

// item is one decoded line.
type item struct {
	ev      models.Event
	consent *models.Consent
	ts      time.Time
}

// replayChunk is one chunk of the replay, pseudonymized, with the findings
// the event rules raised on it.
type replayChunk struct {
	to       int // the index after the chunk's last item
	evs      []models.Event
	cs       []models.Consent
	last     time.Time // the chunk's last item's time (its rows' ingested_at)
	findings []models.Finding
	stored   []store.StoredFinding
}

// Run replays opts.Events and returns the scored summary.
func Run(ctx context.Context, opts Options) (*Summary, error) {
	if opts.ChunkEvents <= 0 {
		opts.ChunkEvents = 50000
	}
	if opts.InsertChunks <= 0 {
		opts.InsertChunks = 4
	}
	if opts.Clock == nil {
		opts.Clock = time.Now //nolint:forbidigo // Clock measures the replay speed (wall time) only; detection runs on the events' simulated clock
	}
	started := opts.Clock()
	rs, seekable := opts.Events.(io.ReadSeeker)
	if !seekable || opts.Reset == nil {
		return run(ctx, opts, started, false)
	}
	at, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return run(ctx, opts, started, false)
	}
	sc := store.DetectionSchema
	if opts.Store != nil && !opts.Store.KeepsRawEvents() {
		sc = store.PassThroughSchema
	}
	// At most twice again: once sorted by time, once keeping raw events.
	for stream := true; ; {
		sum, err := run(ctx, opts, started, stream)
		var ooo *outOfOrderError
		switch {
		case stream && errors.As(err, &ooo):
			stream = false
			if opts.Progress != nil {
				fmt.Fprintf(opts.Progress, "eval: %v: replaying it again from a fresh database, decoded whole and sorted by time\n", err)
			}
		case sc == store.PassThroughSchema && errors.Is(err, store.ErrNoRawEvents):
			sc = store.DetectionSchema
			if opts.Progress != nil {
				fmt.Fprintf(opts.Progress, "eval: %v: replaying it again into a fresh database that keeps raw events\n", err)
			}
		default:
			return sum, err
		}
		if opts.Store, err = opts.Reset(ctx, sc); err != nil {
			return nil, fmt.Errorf("resetting the database to replay the file again: %w", err)
		}
		if _, err := rs.Seek(at, io.SeekStart); err != nil {
			return nil, fmt.Errorf("reading events again: %w", err)
		}
	}
}

// PassThrough reports whether a replay with cfg can run on a database that
// keeps no raw events (store.PassThroughSchema): one server, every
// actor's windows in one engine (no detection shards), windows of whole
// minutes (read from actor_minute), and an enumeration step of whole
// minutes dividing an hour, so that the subject index answers every
// count of customers from its buckets. Should a read still need raw
// events, the replay starts again on a database that keeps them (see
// Options.Reset).
func PassThrough(cfg detect.Config, cluster bool) bool {
	cfg = cfg.WithDefaults()
	every := cfg.Detectors.EnumEvery
	return !cluster && cfg.Shards <= 1 && cfg.Window%time.Minute == 0 &&
		every >= time.Minute && every%time.Minute == 0 && time.Hour%every == 0
}

// run is one replay, begun at started; stream replays the file while it is
// decoded (it fails with an *outOfOrderError if the file is not in time
// order), otherwise it is decoded whole and sorted first.
func run(ctx context.Context, opts Options, started time.Time, stream bool) (*Summary, error) { //nolint:gocognit // the replay loop (chunk, insert and detect overlapped, progress); its state is the loop's, and splitting it would pass that state around
	cfg := opts.Config.WithDefaults()
	p, err := pseudonym.New(pseudonym.Key{ID: 'e', Secret: evalKey[:]})
	if err != nil {
		return nil, err
	}
	// customers' and resources' pseudonyms, cached apart (see hashCache)
	ps, rs := newHashCache(p, subjectCacheSize), newRecentHashCache(p, resourceCacheBits)
	rules, err := detect.NewRules(cfg, detect.NewConsentRegister())
	if err != nil {
		return nil, err
	}
	al := &alerter{out: opts.Alerts, last: map[alertKey]time.Time{}}
	// Findings and risk scores are buffered and written once per chunk:
	// the same tables as production, fewer round trips.
	buf := &buffers{}
	aggs := newSubjectIndex(opts.Store, cfg.Detectors.EnumEvery)
	aggs.sharded = cfg.Shards > 1
	times := newStoreTimes(opts.Clock)
	aggs.times = times
	defer aggs.close()
	// The detectors' window aggregates and shares, read as soon as each
	// batch's range is stored (see readAhead).
	ahead := newReadAhead(ctx, opts.Store, cfg.Window, replayBatchSpan, store.Shard{Index: cfg.Shard, Count: cfg.Shards}, times)
	defer ahead.close()
	aggs.ahead = ahead
	// The findings' evidence, counted from the events as they are fed
	// (below, as each group is stepped) and stored.
	evidence := newEvidenceIndex()
	aggs.evidence = evidence
	// On a database that keeps no raw events, the customers per bucket
	// are counted from the events as they are fed (below, before each
	// group is inserted).
	var feed *bucketFeed
	if opts.Store != nil && !opts.Store.KeepsRawEvents() {
		if !aggs.usable() {
			return nil, fmt.Errorf("sharded detection, or an enumeration step under a minute, counts customers from raw events: %w", store.ErrNoRawEvents)
		}
		feed = newBucketFeed()
		aggs.buckets = feed.buckets
	}
	eng, err := detect.New(cfg, aggs, detect.Options{
		Findings: func(_ context.Context, fs ...models.Finding) error { return al.add(fs) },
		Stored:   buf.addFindings,
		Risk:     buf.addRisk,
		// the destination detectors read the shares table, as in serve
		Destinations: ahead.destinations,
		// the batches the read-ahead plans
		BatchSpan: replayBatchSpan,
		// serve's streaming detection, judged at each window's close
		StreamAtClose: true,
	})
	if err != nil {
		return nil, err
	}
	var attacks, negatives []Label
	for _, l := range append(append([]Label{}, opts.Labels...), opts.Negatives...) {
		if l.Negative() {
			negatives = append(negatives, l)
		} else {
			attacks = append(attacks, l)
		}
	}

	var src *source
	if stream {
		// decoded at most a chunk (and a block) ahead of the chunks prepared
		src = streamBlocks(ctx, opts.Events, opts.Progress, opts.Clock, cmp.Or(opts.streamBlock, 50000),
			opts.ChunkEvents)
	} else {
		dec, err := decodeAll(ctx, opts.Events, opts.Progress)
		if err != nil {
			return nil, err
		}
		src = decodedSource(dec, opts.Clock())
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "eval: %d lines decoded and sorted by time (%d rejected) in %.1fs\n",
				dec.lines, dec.lines-dec.items.Len(), src.decodedAt.Sub(started).Seconds())
		}
	}
	defer src.stop()

	st := &Summary{}
	// Each actor's last day with an event (days since 1970, plus one), and
	// how many (actor, day) pairs have an event: the items come in time
	// order (the stream rejects a file out of order, decodeAll sorts it),
	// so an actor's day only grows, and a change is a new pair. One map
	// look-up an event; a set of (tenant, actor, day) and a set of actors
	// were two, a tenth of prepare's time.
	actorLast := map[[2]string]int64{}
	actorDays := 0
	// prepare pseudonymizes the items [from, to) and runs the event rules
	// on them, in sub-batches of at most 10 s of simulated time, as
	// ingest's batches would, each detected at its last event. Chunks are
	// prepared one at a time, in order: the rules, the pseudonym cache and
	// the actor counts are prepare's alone.
	prepare := func(items *itemSeq, from, to int) *replayChunk {
		c := &replayChunk{to: to, evs: make([]models.Event, 0, to-from)}
		subEv, subCs := 0, 0 // the sub-batch's first event and consent in c.evs, c.cs
		var subStart, prev time.Time
		flush := func(now time.Time) {
			fs := rules.Check(now, c.evs[subEv:], c.cs[subCs:])
			subEv, subCs = len(c.evs), len(c.cs)
			for i := range fs {
				c.stored = append(c.stored, store.StoredFinding{Finding: fs[i]})
			}
			c.findings = append(c.findings, fs...)
		}
		for k, span := range items.spans(from, to) {
			for i := range span {
				it := &span[i]
				if k == 0 && i == 0 {
					subStart = it.ts
				} else if it.ts.Sub(subStart) >= 10*time.Second {
					flush(prev)
					subStart = it.ts
				}
				prev = it.ts
				if it.consent != nil {
					cn := *it.consent
					cn.SubjectID = ps.Hash(cn.SubjectID)
					c.cs = append(c.cs, cn)
					continue
				}
				c.evs = append(c.evs, it.ev)
				e := &c.evs[len(c.evs)-1]
				raw := e.SubjectID
				e.SubjectID = ps.Hash(raw)
				// a conversation is mostly about the event's own customer:
				// its pseudonym is the one just computed
				if e.Conversation.SubjectID == raw {
					e.Conversation.SubjectID = e.SubjectID
				} else {
					e.Conversation.SubjectID = ps.Hash(e.Conversation.SubjectID)
				}
				e.Resource.ID = rs.Hash(e.Resource.ID)
				if ak, day := [2]string{e.Tenant, e.Actor.ID}, e.TS.Unix()/86400+1; actorLast[ak] != day {
					actorLast[ak] = day
					actorDays++
				}
			}
		}
		flush(prev)
		c.last = prev
		return c
	}
	var first, last time.Time
	var insertTime, detectTime time.Duration
	lastProgress := started
	if items, err := src.upTo(1); err != nil {
		return nil, err
	} else if items.Len() > 0 {
		first = items.at(0).ts
		eng.StartAt(first.Add(cfg.Window))
		ahead.startAt(eng.Next())
		// the customers per bucket, read as each range is stored (no
		// check reads before the hour before the first event's day)
		aggs.startAt(ctx, first.Truncate(24*time.Hour).Add(-time.Hour))
	}
	// prepareGroup prepares the chunks one INSERT carries, from item from
	// on: one chunk for the first INSERT, then twice as many each time up
	// to InsertChunks, so that the detectors start on the first chunk while
	// the next are inserted (a scenario of a few chunks keeps that overlap).
	groupSize := 1
	prepareGroup := func(from int) ([]*replayChunk, error) {
		var g []*replayChunk
		size := groupSize
		groupSize = min(2*groupSize, opts.InsertChunks)
		for len(g) < size {
			// the chunk's items, or the rest of the file (nextChunk looks
			// no further)
			items, err := src.upTo(from + opts.ChunkEvents)
			if err != nil {
				return nil, err
			}
			if from >= items.Len() {
				break
			}
			c := prepare(items, from, nextChunk(items, from, opts.ChunkEvents))
			// The decoded blocks this chunk used up are not needed any
			// more (the chunk holds its own copies of the events).
			src.release(c.to)
			g = append(g, c)
			from = c.to
		}
		return g, nil
	}
	// step raises chunk c's rule findings, then has the detectors evaluate
	// the windows the chunks before it completed (up to the last event of
	// the chunk stepped before c), then stores the findings: the order of
	// alerts, findings and evaluations is the chunk loop's, whatever
	// InsertChunks is. Every chunk before c must be stored.
	var stepped *replayChunk // the last chunk stepped
	// Each step's findings and risk scores are stored behind the
	// detectors (see findingWriter).
	fw := newFindingWriter(ctx, opts.Store, times)
	defer fw.close()
	step := func(c *replayChunk) error {
		_ = buf.addFindings(ctx, c.stored)
		if err := al.add(c.findings); err != nil {
			return err
		}
		if stepped != nil {
			aggs.ready = stepped.last // every earlier chunk is stored
			if err := eng.Advance(ctx, stepped.last); err != nil {
				return fmt.Errorf("detection at %s: %w", stepped.last.Format(time.RFC3339), err)
			}
			if err := aggs.needsRaw(); err != nil {
				return err
			}
			// no evidence read of the next Advance starts before this
			evidence.prune(stepped.last.Add(-evidenceKeep))
		}
		stepped = c
		return fw.write(buf.take())
	}
	// Each group of chunks is inserted (one INSERT into events and its
	// views) while the detectors step through the chunks whose predecessors
	// are stored (the previous group's, and this group's first), and the
	// next group is prepared meanwhile.
	var pending []*replayChunk // prepared chunks not stepped yet
	group, err := prepareGroup(0)
	if err != nil {
		return nil, err
	}
	for len(group) > 0 {
		last = group[len(group)-1].last
		if feed != nil {
			// fed before the insert: the subject index reads a range once
			// it is stored
			for _, c := range group {
				feed.feed(c.evs, c.last)
			}
		}
		insErr := make(chan error, 1)
		go func(group []*replayChunk) {
			t0 := opts.Clock()
			var err error
			bs := make([]store.EventBatch, 0, len(group))
			for _, c := range group {
				if err = opts.Store.InsertConsents(ctx, c.cs, c.last); err != nil {
					break
				}
				bs = append(bs, store.EventBatch{Events: c.evs, IngestedAt: c.last})
			}
			if err == nil {
				err = opts.Store.InsertEventBatches(ctx, bs)
			}
			insertTime += opts.Clock().Sub(t0)
			times.since("insert", t0)
			if err == nil {
				// The detectors will Advance to the last event of each of
				// these chunks but the last in turn (that one once the
				// next group is known not to be empty, below); every
				// event before the group's last is stored now: the
				// groups before it were, and the items are in time order.
				for _, c := range group[:len(group)-1] {
					ahead.plan(c.last)
				}
				ahead.stored(group[len(group)-1].last)
				aggs.stored(group[len(group)-1].last)
				evidence.stored(group[len(group)-1].last)
			}
			insErr <- err
		}(group)
		type preparedGroup struct {
			g   []*replayChunk
			err error
		}
		prepared := make(chan preparedGroup, 1)
		go func() {
			g, err := prepareGroup(group[len(group)-1].to)
			prepared <- preparedGroup{g, err}
		}()
		t0 := opts.Clock()
		// The group's events, for the evidence of the windows its
		// chunks complete: added before the first of them is stepped,
		// here beside the insert (the pending chunks were added with
		// the group before).
		for _, c := range group {
			evidence.add(c.evs, c.last)
		}
		var detErr error
		for _, c := range append(pending[:len(pending):len(pending)], group[0]) {
			if detErr = step(c); detErr != nil {
				break
			}
		}
		pending = group[1:]
		detectTime += opts.Clock().Sub(t0)
		insertErr := <-insErr
		next := <-prepared
		if insertErr != nil {
			return nil, insertErr
		}
		if detErr != nil {
			return nil, detErr
		}
		if next.err != nil {
			return nil, next.err
		}
		for _, c := range group {
			st.Events += len(c.evs)
			st.Consents += len(c.cs)
			c.evs, c.cs = nil, nil // stored
		}
		if len(next.g) > 0 {
			// a chunk follows this group's last: it is stepped after it
			ahead.plan(last)
		}
		if opts.Tick != nil {
			opts.Tick(st.Events+st.Consents, src.count())
		}
		if w := opts.Clock(); opts.Progress != nil && w.Sub(lastProgress) >= 5*time.Second {
			lastProgress = w
			fmt.Fprintf(opts.Progress, "eval: %d events replayed, simulated clock %s, %.0f events/s, %d alerts (insert %.1fs, detect %.1fs)\n",
				st.Events, last.Format(time.RFC3339), float64(st.Events)/w.Sub(started).Seconds(), al.n, insertTime.Seconds(), detectTime.Seconds())
		}
		group = next.g
	}
	for _, c := range pending {
		if err := step(c); err != nil {
			return nil, err
		}
	}
	// Every line is decoded (the chunks ran out).
	dec, err := src.all()
	if err != nil {
		return nil, err
	}
	// Payload PII is judged at ingest, line by line: its dead letters are
	// alerts against the producer (once an hour per tenant and producer,
	// as every alert here), listed before the others. Their dedupe keys
	// (detector pii_in_payload) are no other finding's, so adding them
	// last changes none of the alerts.
	slices.SortStableFunc(dec.pii, func(x, y models.Finding) int { return x.DetectedAt.Compare(y.DetectedAt) })
	al.addFront(dec.pii)
	if !last.IsZero() {
		// the window holding the last event, then the hour's close
		end := last.Truncate(time.Hour).Add(time.Hour)
		aggs.ready = end // every chunk is stored
		// and there is no event after the last
		evidence.add(nil, end)
		evidence.stored(end)
		if feed != nil {
			feed.feed(nil, end)
		}
		if err := eng.Advance(ctx, end); err != nil {
			return nil, err
		}
		if err := aggs.needsRaw(); err != nil {
			return nil, err
		}
		if err := fw.write(buf.take()); err != nil {
			return nil, err
		}
	}
	if err := fw.close(); err != nil {
		return nil, err
	}
	if err := al.write(); err != nil {
		return nil, err
	}
	elapsed := opts.Clock().Sub(started)
	if opts.Progress != nil {
		how := "decoding and sorting"
		if stream {
			how = "decoding (overlapping the replay)"
		}
		fmt.Fprintf(opts.Progress, "eval: %.1fs in all, %s %.1fs; waiting on the store (inserts overlap the detectors' reads): %s\n",
			elapsed.Seconds(), how, src.decodedAt.Sub(started).Seconds(), times)
	}
	sum := score(al.all(), attacks, negatives, actorDays, cfg.Window)
	sum.Events, sum.Consents = st.Events, st.Consents
	sum.OpenWindowFindings, sum.OpenWindowRetracted = al.openWindow, al.retracted
	sum.Lines, sum.Rejected = dec.lines, dec.lines-dec.valid
	sum.RejectedByReason = map[string]int{}
	for r, n := range dec.rejected {
		sum.RejectedByReason[string(r)] = n
	}
	sum.RejectedExamples = dec.examples
	sum.Actors = len(actorLast)
	if !first.IsZero() {
		sum.Windows = int(last.Sub(first)/cfg.Window) + 1
	}
	sum.ElapsedS = elapsed.Seconds()
	if elapsed > 0 {
		sum.EventsPerS = float64(st.Events) / elapsed.Seconds()
	}
	return sum, nil
}

// hashCache memoizes pseudonyms: a scenario's customers repeat, and HMAC
// per field per event is a visible share of a replay. An id of up to 15
// bytes (most are) is looked up by its bytes, packed into a fixed-size key
// (no pointer to follow to compare); a longer one by its string.
//
// A customers' cache (newHashCache) keeps, per kind of key, two
// generations of at most size entries: when the current one is full it
// becomes the old one (the older is dropped), and a value found in the
// old one moves to the current one. What is used again stays.
//
// A resources' cache (newRecentHashCache) keeps short ids in a table
// of slots instead, each id in the slot its key hashes to (the newest id
// of a slot replaces the one before): resource ids are mostly seen once,
// and a resource seen again mostly is so within a few hundred events
// (a profile read and then updated). Through the generations, every id
// seen once cost a map insert (and a new map every size of them): that
// cache cost more than the HMACs it saved (610 against 340 ns an id on
// the eval scenario's first 400k resource ids, best of 4 runs on a busy
// machine); the table costs 210.
type hashCache struct {
	p      *pseudonym.Pseudonymizer
	short  generations[shortID]
	long   generations[string]
	recent []recentSlot // set: short ids are cached here, not in short
	shift  uint         // a key's slot is its hash >> shift
}

// shortID is an id of up to 15 bytes: its bytes, then zeros, its length last.
type shortID [16]byte

// recentSlot is a slot of a hashCache's table: a short id and its
// pseudonym ("" when empty: no id of a slot is "").
type recentSlot struct {
	k shortID
	v string
}

// Sizes of the caches: the customer ids of a scenario (tens of thousands)
// fit in one generation; the resource table has 1<<resourceCacheBits
// slots (256 KiB, within the processor's second-level cache), and its
// long ids generations of that many.
const (
	subjectCacheSize  = 1 << 20
	resourceCacheBits = 13
)

func newHashCache(p *pseudonym.Pseudonymizer, size int) *hashCache {
	return &hashCache{p: p, short: generations[shortID]{size: size}, long: generations[string]{size: size}}
}

// newRecentHashCache returns a cache whose short ids are kept in a table
// of 1<<bits slots (1 <= bits <= 32), the id last seen in each.
func newRecentHashCache(p *pseudonym.Pseudonymizer, bits uint) *hashCache {
	return &hashCache{p: p, long: generations[string]{size: 1 << bits},
		recent: make([]recentSlot, 1<<bits), shift: 64 - bits}
}

// Hash returns p's pseudonym of raw; "" stays "".
func (h *hashCache) Hash(raw string) string {
	if raw == "" {
		return ""
	}
	if len(raw) < len(shortID{}) {
		var k shortID
		copy(k[:], raw)
		k[len(k)-1] = byte(len(raw))
		if h.recent == nil {
			return h.short.get(k, raw, h.p)
		}
		// a multiplicative hash of the key's two halves: the top bits
		// depend on every byte
		a, b := binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:])
		sl := &h.recent[(a*0x9e3779b97f4a7c15^b*0xc2b2ae3d27d4eb4f)>>h.shift]
		if sl.k == k && sl.v != "" {
			return sl.v
		}
		v := h.p.Hash(raw)
		sl.k, sl.v = k, v
		return v
	}
	return h.long.get(raw, raw, h.p)
}

// generations is one of hashCache's two-generation maps.
type generations[K comparable] struct {
	m, old map[K]string
	size   int
}

// get returns the pseudonym of raw (key k), computed by p when neither
// generation holds it.
func (g *generations[K]) get(k K, raw string, p *pseudonym.Pseudonymizer) string {
	if v, ok := g.m[k]; ok {
		return v
	}
	v, ok := g.old[k]
	if !ok {
		v = p.Hash(raw)
	}
	if g.m == nil || len(g.m) >= g.size {
		g.old, g.m = g.m, make(map[K]string, len(g.m))
	}
	g.m[k] = v
	return v
}

// buffers hold findings and risk scores until the end of a chunk.
type buffers struct {
	mu       sync.Mutex
	findings []store.StoredFinding
	risk     []store.ActorRisk
}

func (b *buffers) addFindings(_ context.Context, fs []store.StoredFinding) error {
	b.mu.Lock()
	b.findings = append(b.findings, fs...)
	b.mu.Unlock()
	return nil
}

func (b *buffers) addRisk(_ context.Context, rs []store.ActorRisk) error {
	b.mu.Lock()
	b.risk = append(b.risk, rs...)
	b.mu.Unlock()
	return nil
}

// take returns the findings and risk scores buffered since the last take.
func (b *buffers) take() findingBatch {
	b.mu.Lock()
	defer b.mu.Unlock()
	fb := findingBatch{findings: b.findings, risk: b.risk}
	b.findings, b.risk = nil, nil
	return fb
}

// findingBatch is one step's findings and risk scores, to store.
type findingBatch struct {
	findings []store.StoredFinding
	risk     []store.ActorRisk
}

// findingWriter stores the replay's findingBatches in the background, one
// after another in the order they were written (the findings table as
// serve fills it). Nothing in a replay reads findings or risk scores back
// (the detectors read events and their aggregates; the engine's Raised
// source, which reads findings after a restart, is not set), so the
// detectors go on with the next chunk while a step's are stored: about
// 1.5-2 s of a replay's 19 s waited for these INSERTs in the detect loop.
// The first error stops the writing; write returns it from then on, and
// close returns it once every batch before it is handled.
type findingWriter struct {
	batches chan findingBatch
	done    chan struct{}
	once    sync.Once

	mu  sync.Mutex
	err error
}

// newFindingWriter starts the writer of s; times, when set, adds up the
// time of its INSERTs as "findings stored in the background".
func newFindingWriter(ctx context.Context, s *store.Store, times *storeTimes) *findingWriter {
	w := &findingWriter{batches: make(chan findingBatch, 64), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for fb := range w.batches {
			if w.failed() != nil {
				continue // drained: what follows a failed batch is not stored
			}
			t0 := times.now()
			err := s.InsertFindings(ctx, fb.findings)
			if err == nil {
				err = s.InsertActorRisk(ctx, fb.risk)
			}
			times.since("findings stored in the background", t0)
			if err != nil {
				w.mu.Lock()
				w.err = fmt.Errorf("storing the replay's findings: %w", err)
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// failed returns the writer's first error.
func (w *findingWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// write queues fb (an empty batch is skipped); it returns the error of a
// batch written before, if one failed. It must not be called after close.
func (w *findingWriter) write(fb findingBatch) error {
	if err := w.failed(); err != nil {
		return err
	}
	if len(fb.findings) > 0 || len(fb.risk) > 0 {
		w.batches <- fb
	}
	return nil
}

// close waits until every batch written is stored (or dropped after an
// error) and returns the first error. It may be called more than once.
func (w *findingWriter) close() error {
	w.once.Do(func() { close(w.batches) })
	<-w.done
	return w.failed()
}

type alertKey struct{ tenant, actor, detector string }

// alerter turns findings into alerts: grouping off, one alert per finding
// after a per-(detector, actor) dedupe within an hour. A finding the
// dedupe folds into the actor's open alert is kept, marked Folded: the
// alert the product raised holds it, so it detects the attack it covers,
// but it is no alert of its own (not counted, never a false alert).
type alerter struct {
	mu   sync.Mutex
	out  io.Writer
	last map[alertKey]time.Time
	// front are the alerts listed first (payload PII's, known once the
	// whole file is decoded), alerts the others, in the order raised.
	front, alerts []Alert
	n             int
	// openWindow counts the findings raised on an open window (streaming,
	// replayed at the window's close), retracted those of them the
	// window's evaluation did not confirm (their alert was resolved).
	openWindow, retracted int
}

// add adds the alerts of fs after those added before.
func (a *alerter) add(fs []models.Finding) error {
	a.addTo(&a.alerts, fs)
	return nil
}

// addFront adds the alerts of fs after those added before with addFront,
// ahead of every alert add adds.
func (a *alerter) addFront(fs []models.Finding) { a.addTo(&a.front, fs) }

func (a *alerter) addTo(list *[]Alert, fs []models.Finding) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, f := range fs {
		if f.Retract {
			a.retracted++ // a notice, not a finding: its alert counted when it opened
			continue
		}
		if f.OpenWindow {
			a.openWindow++
		}
		k := alertKey{f.Tenant, f.ActorID, f.Detector}
		t, seen := a.last[k]
		folded := seen && f.DetectedAt.Sub(t) < time.Hour
		if !folded {
			a.last[k] = f.DetectedAt
			a.n++
		}
		al := Alert{Tenant: f.Tenant, ActorID: f.ActorID, Detector: f.Detector, Severity: f.Severity.String(),
			TS: f.DetectedAt.UTC(), WindowStart: f.WindowStart.UTC(), WindowEnd: f.WindowEnd.UTC(), Score: f.Score,
			Summary: f.Summary, Folded: folded}
		*list = append(*list, al)
	}
}

// all returns every alert: the front ones, then the others.
func (a *alerter) all() []Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append(a.front[:len(a.front):len(a.front)], a.alerts...)
}

// write writes every alert, one JSON object a line, to out (if set).
func (a *alerter) write() error {
	if a.out == nil {
		return nil
	}
	w := bufio.NewWriter(a.out)
	for _, al := range a.all() {
		b, _ := json.Marshal(al)
		w.Write(append(b, '\n')) //nolint:errcheck // Flush returns the first error
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("writing alerts: %w", err)
	}
	return nil
}

// Rejection is one line the replay rejected: its 1-based line number in the
// file and the validation error (its reason code is the dead-letter reason
// ingest would have given).
type Rejection struct {
	Line   int           `json:"line"`
	Reason models.Reason `json:"reason"`
	Field  string        `json:"field,omitempty"`
	Detail string        `json:"detail"`
}

// maxExamples is how many rejected lines per reason a summary keeps.
const maxExamples = 3

// decoded is a whole scenario file, decoded and sorted by time.
type decoded struct {
	items    *itemSeq // nil when streamed (see source)
	valid    int      // the lines decoded without error
	lines    int
	rejected map[models.Reason]int
	examples []Rejection
	// pii are the lines rejected as pii_in_payload, as the alerts
	// chatwarden raises for them against their producer store.
	pii []models.Finding
}

// The time range the store holds (ClickHouse DateTime: seconds since 1970 in
// a UInt32). A replayed event outside it cannot be stored.
var (
	minStorable = time.Unix(0, 0).UTC()
	maxStorable = time.Unix(1<<32-1, 0).UTC()
)

// replayNow and replayLimits make the decoder's time checks vacuous: a
// replay has no "now" apart from the events themselves. Each event arrives
// at its own time, so none is ahead of the replay clock, and none is older
// than retention when it arrives; the replay checks only that the store can
// hold the time (checkStorable).
var (
	replayNow    = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	replayLimits = models.Limits{MaxFuture: 250 * 365 * 24 * time.Hour, MaxAge: 250 * 365 * 24 * time.Hour}
)

// decodeAll reads every line of r, decodes them on two workers with
// ingest's validation (times judged against the events themselves), and
// returns the valid ones sorted by time (file order among equal times):
// access and consent lines may come in any order. A goroutine reads the
// next block of lines while the workers decode one.
func decodeAll(ctx context.Context, r io.Reader, progress io.Writer) (*decoded, error) {
	return decodeBlocks(ctx, r, progress, 50000)
}

// decodeBlocks is decodeAll, block lines at a time.
func decodeBlocks(ctx context.Context, r io.Reader, progress io.Writer, block int) (*decoded, error) {
	// The valid items of each block, kept as blocks (itemSeq): appending
	// large items to one slice copied them again.
	var blocks [][]item
	d, err := decodeStream(ctx, r, progress, block, func(valid []item) error {
		blocks = append(blocks, valid)
		return nil
	})
	if err != nil {
		return nil, err
	}
	d.items = seqOf(blocks...).inTimeOrder()
	return d, nil
}

// decodeStream reads and decodes r block lines at a time and hands each
// block's valid items, in file order, to emit as soon as the block is
// decoded; an error from emit ends it. The decoded it returns counts every
// line but holds no items. r is not read any more once it returns.
func decodeStream(ctx context.Context, r io.Reader, progress io.Writer, block int, emit func(valid []item) error) (*decoded, error) {
	stop := make(chan struct{})
	blocksIn, recycle, readerDone := readBlocks(r, block, stop)
	defer func() {
		close(stop)
		<-readerDone
	}()
	d := &decoded{rejected: map[models.Reason]int{}}
	const workers = 2
	// One interner per worker for the whole file: a scenario's tenants,
	// stores, actions, actors and categories repeat on every line, and a
	// shared copy is one allocation instead of one per line.
	var interners [workers]*models.Interner
	for w := range interners {
		interners[w] = models.NewInterner()
	}
	for lb := range blocksIn {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if lb.err != nil {
			return nil, lb.err
		}
		lines, nums := lb.lines, lb.nums
		items := make([]item, len(lines))
		errs := make([]error, len(lines))
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := w; i < len(lines); i += workers {
					items[i], errs[i] = decodeLine(lines[i], interners[w])
				}
			}(w)
		}
		wg.Wait()
		d.lines += len(lines)
		valid := items[:0]
		for i := range items {
			if errs[i] == nil {
				valid = append(valid, items[i])
				continue
			}
			rj := Rejection{Line: nums[i], Reason: models.ReasonOf(errs[i]), Detail: errs[i].Error()}
			var ve *models.ValidationError
			if errors.As(errs[i], &ve) {
				rj.Field, rj.Detail = ve.Field, ve.Detail
			}
			if rj.Reason == "" {
				rj.Reason = models.ReasonBadJSON
			}
			d.rejected[rj.Reason]++
			if rj.Reason == models.ReasonPIIInPayload {
				if f, ok := piiFinding(lines[i]); ok {
					d.pii = append(d.pii, f)
				}
			}
			if d.rejected[rj.Reason] <= maxExamples {
				d.examples = append(d.examples, rj)
			}
		}
		// the lines are decoded (into strings of their own): their buffer
		// can be read into again
		recycle(lb)
		clear(items[len(valid):])
		d.valid += len(valid)
		if err := emit(valid); err != nil {
			return nil, err
		}
		if progress != nil && d.lines%(20*block) == 0 && d.lines > 0 {
			fmt.Fprintf(progress, "eval: %d lines decoded\n", d.lines)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return d, nil
}

// lineBlock is up to a block of a file's non-blank lines.
type lineBlock struct {
	lines [][]byte // slices of data, each with its line end
	nums  []int    // 1-based line numbers
	err   error    // reading failed after these lines
	data  []byte   // the block's bytes: read into again once recycled
	offs  []int    // each line's start and end in data
}

// readSize is the least free room a block's buffer gets before each read.
const readSize = 1 << 20

// readBlocks reads r in a goroutine, block non-blank lines at a time, until
// the end of r, a read error (the last block carries it) or stop is closed.
// done is closed once the goroutine has stopped reading r. The lines of a
// block are slices of one buffer, read straight from r (no copy per line):
// a block handed to recycle once its lines are decoded has its buffer read
// into again, so nothing may keep a slice of its lines (the decoder copies
// the strings it keeps).
func readBlocks(r io.Reader, block int, stop <-chan struct{}) (blocks <-chan *lineBlock, recycle func(*lineBlock), done <-chan struct{}) {
	out := make(chan *lineBlock, 1)
	// the blocks in use: one being read, one queued, one being decoded
	free := make(chan *lineBlock, 3)
	recycle = func(lb *lineBlock) {
		select {
		case free <- lb:
		default:
		}
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer close(out)
		var carry []byte // the start of the line a full block stopped in
		var readErr error
		lineNo := 0
		for eof := false; !eof; {
			var lb *lineBlock
			select {
			case lb = <-free:
			default:
				lb = &lineBlock{}
			}
			data, offs, nums := append(lb.data[:0], carry...), lb.offs[:0], lb.nums[:0]
			carry = carry[:0]
			// each line of data[start:], up to a block of non-blank ones;
			// data[start:scan] holds no line end
			start, scan := 0, 0
			add := func(end int) {
				lineNo++
				if len(bytes.TrimSpace(data[start:end])) > 0 {
					offs = append(offs, start, end)
					nums = append(nums, lineNo)
				}
				start, scan = end, end
			}
			for len(nums) < block {
				if i := bytes.IndexByte(data[scan:], '\n'); i >= 0 {
					add(scan + i + 1)
					continue
				}
				scan = len(data)
				if readErr != nil {
					// nothing more to read: the rest is the last line
					if start < len(data) {
						add(len(data))
					}
					if readErr != io.EOF {
						lb.err = fmt.Errorf("reading events: %w", readErr)
					}
					eof = true
					break
				}
				if cap(data)-len(data) < readSize/4 {
					data = slices.Grow(data, readSize)
				}
				n, err := r.Read(data[len(data):cap(data)])
				data, readErr = data[:len(data)+n], err
			}
			carry = append(carry, data[start:]...)
			lb.data, lb.offs, lb.nums = data, offs, nums
			lb.lines = lb.lines[:0]
			for k := 0; k < len(offs); k += 2 {
				lb.lines = append(lb.lines, data[offs[k]:offs[k+1]])
			}
			select {
			case out <- lb:
			case <-stop:
				return
			}
		}
	}()
	return out, recycle, finished
}

// decodeLine decodes one line with ingest's validation; its time is judged
// against itself (see replayLimits) and the range the store holds. The
// access event's repeated values are shared through in (nil: none are).
//
// A line is a consent event when it mentions consent and its schema
// (SchemaOf) is consent.v1, else an access event. Nearly every line is an
// access event, so it is decoded as one first: a line the access decoder
// accepts has no schema or access.v1 (each key once, none case-folded), so
// SchemaOf would not have called it a consent; only a rejected line is
// tested for consent, and then decoded as one.
func decodeLine(b []byte, in *models.Interner) (item, error) {
	e, err := models.DecodeAccessInterned(b, replayNow, replayLimits, in)
	if err != nil {
		// SchemaOf parses the whole line; only lines that mention consent
		// can be consent events, so the cheap test goes first.
		if bytes.Contains(b, []byte("consent")) && models.SchemaOf(b) == models.SchemaConsent {
			return decodeConsentLine(b)
		}
		return item{}, err
	}
	if err := checkStorable(e.TS); err != nil {
		return item{}, err
	}
	return item{ev: e, ts: e.TS}, nil
}

// decodeConsentLine decodes a line whose schema is consent.v1.
func decodeConsentLine(b []byte) (item, error) {
	c, err := models.DecodeConsent(b, replayNow, replayLimits)
	if err != nil {
		return item{}, err
	}
	if err := checkStorable(c.TS); err != nil {
		return item{}, err
	}
	return item{consent: &c, ts: c.TS}, nil
}

// piiFinding is the pii_in_payload finding of line b, which the decoder
// rejected as pii_in_payload: against the producer store (as ingest's
// metric, status and finding name it), at the event's time. ok is false
// when the line does not decode even with the PII check off.
func piiFinding(b []byte) (models.Finding, bool) {
	lim := replayLimits
	lim.AllowPII = true
	e, err := models.DecodeAccess(b, replayNow, lim)
	if err != nil {
		return models.Finding{}, false
	}
	h, ok := models.FindPII(&e)
	if !ok {
		return models.Finding{}, false
	}
	producer := e.Store
	if _, bad := models.PIIIn(producer); bad {
		producer = "redacted"
	}
	return models.Finding{Detector: string(models.ReasonPIIInPayload), Tenant: e.Tenant, ActorID: producer,
		WindowStart: e.TS, WindowEnd: e.TS, DetectedAt: e.TS, Severity: models.SeverityMedium, Score: 1,
		Summary: fmt.Sprintf("producer %s sent %s in %s: dead-lettered as pii_in_payload", producer, h.Kind, h.Field)}, true
}

func checkStorable(ts time.Time) error {
	if ts.Before(minStorable) || ts.After(maxStorable) {
		return &models.ValidationError{Code: models.ReasonBadValue, Field: "ts",
			Detail: fmt.Sprintf("%s is outside the time range the store holds (%s .. %s)",
				ts.Format(time.RFC3339), minStorable.Format(time.RFC3339), maxStorable.Format(time.RFC3339))}
	}
	return nil
}

// maxChunkDays bounds the days one chunk's insert spans: tables are
// partitioned by day, and ClickHouse refuses an insert block that touches
// more than max_partitions_per_insert_block (default 100) partitions.
const maxChunkDays = 60

// nextChunk returns the end (exclusive) of the chunk that starts at
// item from: at most size items, spanning fewer than maxChunkDays days.
func nextChunk(items *itemSeq, from, size int) int {
	to := min(items.Len(), from+size)
	limit := items.at(from).ts.Truncate(24 * time.Hour).Add(maxChunkDays * 24 * time.Hour)
	if !items.at(to - 1).ts.Before(limit) {
		to = from + sort.Search(to-from, func(i int) bool { return !items.at(from + i).ts.Before(limit) })
	}
	return to
}

// OpenFile opens path for reading ("-" is stdin).
func OpenFile(path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening events: %w", err)
	}
	return f, nil
}
