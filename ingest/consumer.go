package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// Hasher pseudonymizes one raw customer id of a tenant; "" must stay "".
// The tenant is part of the pseudonym, so that the same raw id in two
// tenants (two different people) stays apart. *pseudonym.Pseudonymizer is
// one.
type Hasher interface {
	HashTenant(tenant, raw string) string
}

// Store is where batches are written; *store.Store is one. Each method is
// called with a whole batch and may be retried after an error that
// store.IsRetryable accepts.
type Store interface {
	// ExistingEventIDs returns which of ids are already stored.
	ExistingEventIDs(ctx context.Context, ids []string) (map[string]bool, error)
	// CompletePartialInsert is for the retry of a failed insert of ids
	// (ts in [from, to]), which may have written the events table and
	// some of the materialized views but not the others: it writes what
	// the views lack for the stored events, and returns their ids
	// (PartialInsert.Stored), which must not be inserted again.
	CompletePartialInsert(ctx context.Context, ids []string, from, to time.Time) (store.PartialInsert, error)
	// InsertEvents stores pseudonymized, de-duplicated events.
	InsertEvents(ctx context.Context, evs []models.Event, ingestedAt time.Time) error
	// InsertConsents stores pseudonymized consent events.
	InsertConsents(ctx context.Context, cs []models.Consent, ingestedAt time.Time) error
	// InsertDeadLetters records rejected messages (idempotent per source offset).
	InsertDeadLetters(ctx context.Context, dls []store.DeadLetter) error
	// MarkBatches records batches' offset ranges: before their events are
	// inserted (Judged false) and after the batch observer has seen them
	// (Judged true); idempotent. Called only when there is an observer.
	MarkBatches(ctx context.Context, ranges []store.OffsetRange, at time.Time) error
	// BatchMarks returns the marked ranges of one partition that overlap
	// [first, last], judged if ever marked judged.
	BatchMarks(ctx context.Context, topic string, partition int32, first, last int64) ([]store.OffsetRange, error)
}

// MessageWriter writes messages to Kafka; *kafka.Writer is one.
type MessageWriter interface {
	// WriteMessages returns once every message is acknowledged, or an error.
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// BatchObserver sees each batch after it is durably inserted and before its
// offsets are committed: the new (de-duplicated, pseudonymized) events and
// consents, and the events a redelivered batch found already stored but
// never observed (an ingest stopped between its insert and its observer:
// the batch's source offsets were marked as inserted but never as judged,
// see Store.MarkBatches). now is the clock the batch was validated against. It
// runs on the ingest path, so it must not block long; it must be durable
// when it returns (the marker is written next, then the offsets are
// committed).
type BatchObserver func(ctx context.Context, now time.Time, evs []models.Event, cs []models.Consent)

// FindingSink receives the findings ingest itself raises (pii_in_payload
// against a producer whose events were stored pseudonymized, ingest.pii:
// pseudonymize), after their events are durably inserted and before the
// batch's offsets are committed; at is the clock the batch was validated
// against. Like a BatchObserver it must be durable when it returns.
type FindingSink func(ctx context.Context, at time.Time, fs []models.Finding)

// Deps are what a Consumer works with.
type Deps struct {
	Source      Source
	DeadLetters MessageWriter
	Store       Store
	Hasher      Hasher
	// Observer, when set, is called for every inserted batch.
	Observer BatchObserver
	// Metrics, when nil, are created unregistered.
	Metrics *Metrics
	Log     *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Watermark, when set, follows the event time committed per partition.
	Watermark *Watermark
	// Findings, when set, receives the pii_in_payload findings against
	// producers (ingest.pii: pseudonymize).
	Findings FindingSink
}

// Consumer runs the fetch, decode, batch, insert, commit loop.
type Consumer struct {
	cfg Config
	d   Deps
	m   *Metrics
	log *slog.Logger
	// pending holds the last message per partition of batches whose commit
	// failed; it is merged into the next commit.
	pending    map[partitionKey]kafka.Message
	pendingGen int32
	// budget bounds the bytes of the messages between fetch and commit.
	budget *byteBudget
}

type partitionKey struct {
	topic     string
	partition int
}

// New returns a Consumer. Source, DeadLetters, Store and Hasher are required.
func New(cfg Config, d Deps) (*Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Source == nil || d.DeadLetters == nil || d.Store == nil || d.Hasher == nil {
		return nil, errors.New("ingest: Source, DeadLetters, Store and Hasher are required")
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics(nil)
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	cfg = cfg.WithDefaults()
	return &Consumer{cfg: cfg, d: d, m: d.Metrics, log: d.Log, pending: map[partitionKey]kafka.Message{},
		budget: newByteBudget(cfg.pipelineBudget())}, nil
}

// Run consumes until ctx is cancelled, then shuts down softly: it stops
// fetching, flushes and commits what it holds (for at most
// Config.ShutdownTimeout), and returns nil. It returns an error only for a
// failure that retrying cannot fix (for example a ClickHouse schema error);
// nothing of the failed batch is committed then.
//
// Three goroutines form a pipeline with small bounded queues: fetch (Kafka),
// collect (batching by size and linger, then parallel decoding), and store
// (this one: dedupe, insert, observe, commit). While one batch is inserted
// the next is fetched and decoded; a slow ClickHouse slows fetching instead
// of growing memory.
func (c *Consumer) Run(ctx context.Context) error {
	// flushCtx outlives ctx by ShutdownTimeout: the soft phase.
	flushCtx, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	stopAfter := context.AfterFunc(ctx, func() { time.AfterFunc(c.cfg.ShutdownTimeout, hardStop) })
	defer stopAfter()
	// fetchCtx ends with ctx, or when storing fails for good.
	fetchCtx, stopFetch := context.WithCancel(ctx)
	defer stopFetch()

	msgs := make(chan Fetched, min(c.cfg.BatchSize, 4096))
	fetchDone := make(chan error, 1)
	go func() { fetchDone <- c.fetch(fetchCtx, msgs) }()
	// Unbuffered: a decoded batch waits in collect until the store takes
	// it, and collect does not start the next one meanwhile, so at most
	// two decoded batches are held (one stored, one waiting). A batch of
	// 100,000 events decoded (backlog_batch_size's default) is about 75 MB live.
	batches := make(chan *pendingBatch)
	abandon := make(chan struct{})
	go c.collect(msgs, batches, abandon)

	for b := range batches {
		err := c.flush(flushCtx, b)
		c.budget.release(b.bytes)
		c.m.BufferedBytes.Set(float64(c.budget.inUse()))
		if err != nil {
			c.log.Error("ingest stopped: batch not committed, it will be redelivered", "err", err)
			stopFetch()
			close(abandon)
			for range batches { // let collect finish
			}
			return err
		}
	}
	ferr := <-fetchDone
	if ctx.Err() == nil && ferr != nil {
		return ferr
	}
	c.log.Info("ingest stopped: flushed and committed")
	return nil
}

// pendingBatch is a batch of fetched messages, decoded.
type pendingBatch struct {
	msgs []Fetched
	res  []decoded
	// evs[i] is the access event of msgs[i] when res[i] says it is one
	// (gather compacts the events to store in place, without a copy).
	evs   []models.Event
	now   time.Time // the clock messages were validated against
	bytes int64     // the messages' bytes held in the budget
}

// collect batches msgs by size and linger, decodes each batch and hands it
// to out. It closes out when msgs is closed, after the last batch.
//
// A batch closes at batch_size messages, at its share of max_buffer_bytes,
// or a linger after its first message; while the consumer is behind
// (backlog.behind), at backlog_batch_size messages instead, and its linger
// is extended up to backlogLingers lingers: a backlog is drained with few
// large inserts, a consumer that has caught up keeps small batches.
func (c *Consumer) collect(msgs <-chan Fetched, out chan<- *pendingBatch, abandon <-chan struct{}) {
	defer close(out)
	batch := make([]Fetched, 0, min(c.cfg.BatchSize, 4096))
	var bytes int64
	var first time.Time
	lag := newBacklog(c.cfg.BatchSize)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	send := func() bool {
		linger.Stop()
		if len(batch) == 0 {
			return true
		}
		if len(batch) > c.cfg.BatchSize {
			c.m.BacklogBatches.Inc()
		}
		now := c.d.Now().UTC()
		res, evs := c.decodeAll(batch, now)
		pb := &pendingBatch{msgs: batch, res: res, evs: evs, now: now, bytes: bytes}
		// A decoded message's bytes are needed again only for its
		// dead-letter copy: let the others go (the budget still counts
		// them until the batch is committed).
		for i := range pb.msgs {
			if pb.res[i].err == nil {
				m := &pb.msgs[i].Message
				m.Key, m.Value, m.Headers = nil, nil, nil
			}
		}
		// The next batch is sized like this one (a backlog's batches are
		// alike): growing a slice of 100,000 messages by appending cost
		// 0.3 CPU s per 1M events (chatwarden-bench ingest -cpuprofile).
		batch, bytes = make([]Fetched, 0, max(min(c.cfg.BatchSize, 4096), len(pb.msgs))), 0
		lag.reset()
		select {
		case out <- pb:
			return true
		case <-abandon:
			return false
		}
	}
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				send()
				return
			}
			batch = append(batch, m)
			bytes += min(messageBytes(&m), c.budget.total)
			lag.saw(&m.Message)
			if len(batch) == 1 {
				first = time.Now()
				linger.Reset(c.cfg.Linger)
			}
			limit := c.cfg.BatchSize
			if lag.behind() {
				limit = c.cfg.BacklogBatchSize
			}
			if (len(batch) >= limit || bytes >= c.cfg.batchBytes()) && !send() {
				return
			}
		case <-linger.C:
			if left := backlogLingers*c.cfg.Linger - time.Since(first); lag.behind() && left > 0 {
				linger.Reset(min(c.cfg.Linger, left))
				continue
			}
			if !send() {
				return
			}
		case <-abandon:
			return
		}
	}
}

// backlogLingers is how many lingers a batch may wait while the consumer
// is behind (Config.BacklogBatchSize).
const backlogLingers = 10

// backlog follows, for the batch being collected, how many messages each
// of its partitions still has waiting in Kafka: the high watermark of the
// fetch that delivered its newest message, less that message's offset and
// one.
type backlog struct {
	waiting   map[partitionKey]int64
	sum       int64
	threshold int64
}

func newBacklog(threshold int) *backlog {
	return &backlog{waiting: map[partitionKey]int64{}, threshold: int64(threshold)}
}

// saw records m as its partition's newest message.
func (b *backlog) saw(m *kafka.Message) {
	k := partitionKey{m.Topic, m.Partition}
	w := max(m.HighWaterMark-m.Offset-1, 0)
	b.sum += w - b.waiting[k]
	b.waiting[k] = w
}

// behind reports whether the batch's partitions have at least a batch
// (batch_size messages) waiting.
func (b *backlog) behind() bool { return b.threshold > 0 && b.sum >= b.threshold }

func (b *backlog) reset() {
	clear(b.waiting)
	b.sum = 0
}

// fetch reads messages into out until ctx ends or the reader closes.
func (c *Consumer) fetch(ctx context.Context, out chan<- Fetched) error {
	defer close(out)
	backoff := 100 * time.Millisecond
	for {
		m, err := c.d.Source.Fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("fetching messages: reader closed: %w", err)
			}
			c.m.Retries.WithLabelValues("fetch").Inc()
			c.log.Warn("kafka fetch failed, retrying", "err", err, "backoff", backoff)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, c.cfg.MaxBackoff)
			continue
		}
		backoff = 100 * time.Millisecond
		if err := c.budget.acquire(ctx, messageBytes(&m)); err != nil {
			return nil // not committed: redelivered
		}
		c.m.BufferedBytes.Set(float64(c.budget.inUse()))
		select {
		case out <- m:
		case <-ctx.Done():
			return nil // not committed: redelivered
		}
	}
}

// decoded is one message's decoding result; an access event's is
// pendingBatch.evs at the same index.
type decoded struct {
	consent bool
	cs      *models.Consent
	err     *models.ValidationError
	pii     []models.PIIHit // payload PII found (dead-lettered or pseudonymized)
	piiFrom string          // the event's store, for the pii metric
}

// batchResult is a decoded batch, ready to store.
type batchResult struct {
	events   []models.Event
	consents []models.Consent
	dead     []kafka.Message            // dead-letter topic messages
	rows     []store.DeadLetter         // dead_letters table rows
	pii      []piiCount                 // payload PII found, per producer and kind
	piiKept  map[string]piiKept         // events stored pseudonymized, by event id
	dupes    int                        // duplicates within the batch
	stale    int                        // messages of an ended generation
	pos      []msgPos                   // the source of each event of events (as gathered, before dedupe against the store)
	newest   map[partitionKey]time.Time // the newest event time per partition
}

// msgPos is where a message came from.
type msgPos struct {
	topic     string
	partition int
	offset    int64
}

// decodeAll decodes, validates and pseudonymizes msgs in parallel, each
// worker sharing the repeated values of its events through one Interner;
// evs[i] is msgs[i]'s access event when res[i] says it is one.
func (c *Consumer) decodeAll(msgs []Fetched, now time.Time) (res []decoded, evs []models.Event) {
	res = make([]decoded, len(msgs))
	evs = make([]models.Event, len(msgs))
	workers := min(c.cfg.DecodeWorkers, max(1, len(msgs)/256))
	if workers == 1 {
		in := models.NewInterner()
		for i := range msgs {
			res[i] = c.decodeOne(&msgs[i].Message, now, in, &evs[i])
		}
		return res, evs
	}
	chunk := (len(msgs) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(msgs))
		if lo >= hi {
			break
		}
		wg.Go(func() {
			in := models.NewInterner()
			for i := lo; i < hi; i++ {
				res[i] = c.decodeOne(&msgs[i].Message, now, in, &evs[i])
			}
		})
	}
	wg.Wait()
	return res, evs
}

// gather sorts the decoded messages of generation gen into events,
// consents and dead letters, dropping repeated event ids within the batch
// (the first wins). It returns the messages of gen: the ones to commit.
// The events are compacted in place in pb.evs (out.events shares its
// array).
func gather(pb *pendingBatch, gen int32) (batchResult, []kafka.Message) {
	var out batchResult
	live := make([]kafka.Message, 0, len(pb.msgs))
	out.events = pb.evs[:0]
	seen := make(map[string]struct{}, len(pb.msgs))
	out.pos = make([]msgPos, 0, len(pb.msgs))
	out.newest = map[partitionKey]time.Time{}
	for i := range pb.res {
		if pb.msgs[i].Generation != gen {
			out.stale++
			continue
		}
		m, r := &pb.msgs[i].Message, &pb.res[i]
		live = append(live, *m)
		for _, h := range r.pii {
			out.pii = append(out.pii, piiCount{r.piiFrom, h.Kind})
		}
		switch {
		case r.err != nil:
			dm := deadLetterMessage(m, r.err)
			payload := m.Value
			if r.err.Code == models.ReasonPIIInPayload {
				// The copies must not hold the personal data they were
				// rejected for: mask every such string (ids included).
				payload = models.MaskPIIJSON(m.Value)
				dm.Value = models.MaskPIIJSON(dm.Value)
			}
			out.dead = append(out.dead, dm)
			out.rows = append(out.rows, store.DeadLetter{ReceivedAt: pb.now, Topic: m.Topic,
				Partition: int32(m.Partition), Offset: m.Offset, Reason: string(r.err.Code),
				Field: r.err.Field, Detail: r.err.Detail, Store: r.piiFrom, Payload: payload})
		case r.consent:
			out.consents = append(out.consents, *r.cs)
		default:
			ev := &pb.evs[i]
			if k := (partitionKey{m.Topic, m.Partition}); ev.TS.After(out.newest[k]) {
				out.newest[k] = ev.TS
			}
			if _, dup := seen[ev.EventID]; dup {
				out.dupes++
				continue
			}
			seen[ev.EventID] = struct{}{}
			if len(r.pii) > 0 {
				if out.piiKept == nil {
					out.piiKept = map[string]piiKept{}
				}
				out.piiKept[ev.EventID] = piiKept{producer: r.piiFrom, hits: r.pii}
			}
			out.pos = append(out.pos, msgPos{m.Topic, m.Partition, m.Offset})
			out.events = append(out.events, *ev) // index len(out.events) <= i: in place
		}
	}
	return out, live
}

// decodeOne decodes one message by its topic and pseudonymizes its ids,
// sharing repeated values through in; an access event goes to *dst.
func (c *Consumer) decodeOne(m *kafka.Message, now time.Time, in *models.Interner, dst *models.Event) decoded {
	if len(m.Key) > c.cfg.MaxKeyBytes {
		return decoded{err: &models.ValidationError{Code: models.ReasonKeyTooLarge, Field: "key",
			Detail: fmt.Sprintf("key is %d bytes, limit %d", len(m.Key), c.cfg.MaxKeyBytes)}}
	}
	h := c.d.Hasher
	if m.Topic == c.cfg.ConsentTopic {
		cs, err := models.DecodeConsent(m.Value, now, c.cfg.limits())
		if err != nil {
			return decoded{err: asValidation(err)}
		}
		cs.SubjectID = h.HashTenant(cs.Tenant, cs.SubjectID)
		return decoded{consent: true, cs: &cs}
	}
	ev := dst // decoded in place: an Event is 400 bytes
	if err := models.DecodeAccessTo(ev, m.Value, now, c.cfg.limits(), in); err != nil {
		return decoded{err: asValidation(err)}
	}
	var out decoded
	if hit, ok := in.FindPII(ev); ok { // the rare path: clean events stop here
		out.piiFrom = piiStoreLabel(ev)
		if c.cfg.PII != PIIPseudonymize || hit.Field == "tenant" {
			*ev = models.Event{}
			return decoded{err: models.PIIError(hit), pii: []models.PIIHit{hit}, piiFrom: out.piiFrom}
		}
		out.pii = models.PseudonymizePII(ev, func(field, v string) string {
			if field == "resource.id" {
				return v // pseudonymized below like every resource id
			}
			return h.HashTenant(ev.Tenant, v)
		})
	}
	// A bot reading its own conversation's customer (the common case)
	// carries the same id twice: hash it once.
	same := ev.Conversation.SubjectID == ev.SubjectID
	ev.SubjectID = h.HashTenant(ev.Tenant, ev.SubjectID)
	if same {
		ev.Conversation.SubjectID = ev.SubjectID
	} else {
		ev.Conversation.SubjectID = h.HashTenant(ev.Tenant, ev.Conversation.SubjectID)
	}
	ev.Resource.ID = h.HashTenant(ev.Tenant, ev.Resource.ID)
	return out
}

// piiKept is an event stored with its payload PII pseudonymized: its
// producer (store label) and what was found.
type piiKept struct {
	producer string
	hits     []models.PIIHit
}

// Bounds of a pii_in_payload finding's evidence.
const (
	piiFindingEventIDs = 10 // event ids listed
	piiFindingHits     = 10 // distinct (field, kind) listed, one masked value each
)

// piiFindings are the pii_in_payload findings of the events of evs found in
// kept: one per (tenant, producer) with the number of events, their first
// event ids and each (field, kind) with one masked value. The producer is
// the store label (the "actor" of the finding: alerting groups a producer's
// findings into one alert per tenant).
func piiFindings(now time.Time, evs []models.Event, kept map[string]piiKept) []models.Finding {
	type key struct{ tenant, producer string }
	idx := map[key]int{}
	var fs []models.Finding
	for i := range evs {
		k, ok := kept[evs[i].EventID]
		if !ok {
			continue
		}
		e := &evs[i]
		j, seen := idx[key{e.Tenant, k.producer}]
		if !seen {
			j = len(fs)
			idx[key{e.Tenant, k.producer}] = j
			fs = append(fs, models.Finding{Detector: string(models.ReasonPIIInPayload), Tenant: e.Tenant, ActorID: k.producer,
				WindowStart: e.TS.Truncate(time.Minute), WindowEnd: e.TS.Truncate(time.Minute).Add(time.Minute), DetectedAt: now,
				Severity: models.SeverityMedium, Evidence: models.Evidence{Metric: "events with payload PII (stored pseudonymized)",
					BaselineSource: "rule", TopStores: []string{k.producer}}})
		}
		f := &fs[j]
		f.WindowStart = minTime(f.WindowStart, e.TS.Truncate(time.Minute))
		f.WindowEnd = maxTime(f.WindowEnd, e.TS.Truncate(time.Minute).Add(time.Minute))
		f.Evidence.Observed++
		if len(f.Evidence.EventIDs) < piiFindingEventIDs {
			f.Evidence.EventIDs = append(f.Evidence.EventIDs, e.EventID)
		}
		for _, h := range k.hits {
			if len(f.Evidence.PII) < piiFindingHits && !slices.ContainsFunc(f.Evidence.PII, func(o models.PIIHit) bool {
				return o.Field == h.Field && o.Kind == h.Kind
			}) {
				f.Evidence.PII = append(f.Evidence.PII, h)
			}
		}
	}
	for i := range fs {
		f := &fs[i]
		f.Score = f.Evidence.Observed
		kinds := make([]string, 0, len(f.Evidence.PII))
		for _, h := range f.Evidence.PII {
			if d := string(h.Kind) + " in " + h.Field; !slices.Contains(kinds, d) {
				kinds = append(kinds, d)
			}
		}
		f.Summary = fmt.Sprintf("producer %s sent personal data in %d event(s) (%s); stored pseudonymized: events carry data categories, never data",
			f.ActorID, int(f.Evidence.Observed), strings.Join(kinds, ", "))
	}
	return fs
}

// piiCount is one payload PII finding, for chatwarden_ingest_pii_total.
type piiCount struct {
	store string
	kind  models.PIIKind
}

// piiStoreLabel is the store label of an event with payload PII: its store,
// or "redacted" when the store itself is what looks like personal data (a
// metric label must not carry it).
func piiStoreLabel(ev *models.Event) string {
	if _, ok := models.PIIIn(ev.Store); ok {
		return "redacted"
	}
	return ev.Store
}

func asValidation(err error) *models.ValidationError {
	var ve *models.ValidationError
	if errors.As(err, &ve) {
		return ve
	}
	return &models.ValidationError{Code: models.ReasonBadJSON, Detail: err.Error()}
}

// Limits of a dead-letter copy. The dead-letter writer's batches are at
// most maxRequestBytes (1,000,000) and the broker's default message limit is
// 1 MiB; a copy of key, value and headers is at most maxDeadLetterBytes, so
// that whatever the source message held (a 100 KB key, a 10 MB value, a
// validation detail quoting a huge value), its copy fits and no single
// message can stop ingest.
const (
	maxDeadLetterBytes  = 900 << 10
	maxDeadLetterKey    = 1 << 10
	maxDeadLetterDetail = 1 << 10
)

// deadLetterMessage is the dead-letter topic message for m: its original key
// and bytes (cut to fit, saying so in key_truncated_from and
// truncated_from), and headers saying why and where from.
func deadLetterMessage(m *kafka.Message, ve *models.ValidationError) kafka.Message {
	detail := ve.Detail
	if len(detail) > maxDeadLetterDetail {
		detail = strings.ToValidUTF8(detail[:maxDeadLetterDetail], "")
	}
	field := ve.Field
	if len(field) > maxDeadLetterDetail {
		field = field[:maxDeadLetterDetail]
	}
	hs := []kafka.Header{
		{Key: "reason", Value: []byte(ve.Code)},
		{Key: "field", Value: []byte(field)},
		{Key: "detail", Value: []byte(detail)},
		{Key: "source_topic", Value: []byte(m.Topic)},
		{Key: "source_partition", Value: []byte(strconv.Itoa(m.Partition))},
		{Key: "source_offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
	}
	k := m.Key
	if len(k) > maxDeadLetterKey {
		hs = append(hs, kafka.Header{Key: "key_truncated_from", Value: []byte(strconv.Itoa(len(k)))})
		k = k[:maxDeadLetterKey]
	}
	// Room for the value: the limit less key and headers (and the
	// truncated_from header added below).
	room := maxDeadLetterBytes - len(k) - len("truncated_from") - 20
	for _, h := range hs {
		room -= len(h.Key) + len(h.Value)
	}
	v := m.Value
	if len(v) > room {
		hs = append(hs, kafka.Header{Key: "truncated_from", Value: []byte(strconv.Itoa(len(v)))})
		v = v[:max(room, 0)]
	}
	return kafka.Message{Key: k, Value: v, Headers: hs}
}

// writeDeadLetters writes msgs to the dead-letter topic. If the broker
// refuses one as too large anyway (a dead-letter topic configured with a
// smaller max.message.bytes), each refused copy is sent again without its
// key and value, with its headers: a single message never stops ingest.
func (c *Consumer) writeDeadLetters(ctx context.Context, msgs []kafka.Message) error {
	var refused []kafka.Message
	for len(msgs) > 0 {
		err := c.d.DeadLetters.WriteMessages(ctx, msgs...)
		var mtl kafka.MessageTooLargeError
		if errors.As(err, &mtl) && len(mtl.Remaining) < len(msgs) {
			// Refused by the writer before sending: nothing was written.
			refused = append(refused, mtl.Message)
			msgs = mtl.Remaining
			continue
		}
		if err == nil || !errors.Is(err, kafka.MessageSizeTooLarge) {
			if err != nil {
				return summarize(err)
			}
			break
		}
		var we kafka.WriteErrors
		if !errors.As(err, &we) || len(we) != len(msgs) {
			refused = append(refused, msgs...)
			break
		}
		for i, e := range we {
			if e == nil {
				continue
			}
			if !errors.Is(e, kafka.MessageSizeTooLarge) {
				return summarize(err)
			}
			refused = append(refused, msgs[i])
		}
		break
	}
	if len(refused) == 0 {
		return nil
	}
	stripped := make([]kafka.Message, len(refused))
	for i, m := range refused {
		hs := append([]kafka.Header(nil), m.Headers...)
		hs = append(hs, kafka.Header{Key: "content_dropped", Value: []byte(strconv.Itoa(len(m.Key) + len(m.Value)))})
		stripped[i] = kafka.Message{Headers: hs}
	}
	c.m.Retries.WithLabelValues("dead_letter_too_large").Add(float64(len(stripped)))
	c.log.Warn("dead-letter copies refused as too large; sent again without key and value", "count", len(stripped))
	return summarize(c.d.DeadLetters.WriteMessages(ctx, stripped...))
}

// flush stores one batch and commits its offsets, holding the consumer
// group generation so that no rebalance hands its partitions to another
// member meanwhile. Messages of an ended generation are dropped uninserted:
// whoever owns their partition now re-reads them from the committed offset.
func (c *Consumer) flush(ctx context.Context, pb *pendingBatch) error {
	return c.d.Source.Hold(ctx, func(gen int32, commit CommitFunc) error {
		b, msgs := gather(pb, gen)
		// Gathered: the decoded results and fetched messages are copied
		// into b and msgs; let them go while the batch is inserted.
		pb.msgs, pb.res, pb.evs = nil, nil, nil
		if b.stale > 0 {
			c.m.Stale.Add(float64(b.stale))
			c.log.Info("dropped messages of an ended consumer group generation; they are re-read from the committed offset",
				"count", b.stale, "generation", gen)
		}
		if len(msgs) == 0 {
			return nil
		}
		err := c.store(ctx, gen, pb.now, b, msgs, commit)
		if errors.Is(err, ErrGenerationEnded) {
			// Not inserted, not committed: the partitions' owner in the
			// next generation re-reads the batch.
			c.m.Stale.Add(float64(len(msgs)))
			c.log.Warn("batch not inserted: its consumer group generation ended while it was held; it is re-read from the committed offset",
				"messages", len(msgs), "generation", gen, "err", err)
			return nil
		}
		return err
	})
}

// fence checks that gen still owns msgs' partitions, retrying while the
// coordinator cannot be asked; an error wrapping ErrGenerationEnded means
// the batch must not be inserted.
func (c *Consumer) fence(ctx context.Context, gen int32, msgs []kafka.Message) error {
	return c.retry(ctx, "fence", func(err error) bool { return !errors.Is(err, ErrGenerationEnded) }, func(ctx context.Context) error {
		return c.d.Source.Fence(ctx, gen, msgs)
	})
}

// unjudged returns the events of b that existing says are stored and whose
// source offsets belong to a batch marked inserted but never judged. (An
// event stored at offsets no batch covers is a producer's duplicate of an
// event judged with its first copy.) b.events must be as gathered, in step
// with b.pos.
func (c *Consumer) unjudged(ctx context.Context, b batchResult, existing map[string]bool) ([]models.Event, error) {
	type part struct {
		topic     string
		partition int
	}
	span := map[part][2]int64{}
	for i, e := range b.events {
		if !existing[e.EventID] {
			continue
		}
		p := b.pos[i]
		k := part{p.topic, p.partition}
		if sp, ok := span[k]; !ok {
			span[k] = [2]int64{p.offset, p.offset}
		} else {
			span[k] = [2]int64{min(sp[0], p.offset), max(sp[1], p.offset)}
		}
	}
	marks := map[part][]store.OffsetRange{}
	for k, sp := range span {
		rs, err := c.d.Store.BatchMarks(ctx, k.topic, int32(k.partition), sp[0], sp[1])
		if err != nil {
			return nil, err
		}
		marks[k] = rs
	}
	var out []models.Event
	for i, e := range b.events {
		if !existing[e.EventID] {
			continue
		}
		p := b.pos[i]
		pending, judged := false, false
		for _, r := range marks[part{p.topic, p.partition}] {
			if p.offset >= r.First && p.offset <= r.Last {
				if r.Judged {
					judged = true
				} else {
					pending = true
				}
			}
		}
		if pending && !judged {
			out = append(out, e)
		}
	}
	return out, nil
}

// offsetRanges returns, per partition, the lowest and highest offset of
// msgs.
func offsetRanges(msgs []kafka.Message) []store.OffsetRange {
	idx := map[partitionKey]int{}
	var out []store.OffsetRange
	for _, m := range msgs {
		k := partitionKey{m.Topic, m.Partition}
		i, ok := idx[k]
		if !ok {
			idx[k] = len(out)
			out = append(out, store.OffsetRange{Topic: m.Topic, Partition: int32(m.Partition), First: m.Offset, Last: m.Offset})
			continue
		}
		out[i].First = min(out[i].First, m.Offset)
		out[i].Last = max(out[i].Last, m.Offset)
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func eventIDs(evs []models.Event) []string {
	ids := make([]string, len(evs))
	for i := range evs {
		ids[i] = evs[i].EventID
	}
	return ids
}

// dropExisting removes the events whose ids are in existing from evs and
// returns how many it removed.
func dropExisting(evs *[]models.Event, existing map[string]bool) int {
	if len(existing) == 0 {
		return 0
	}
	kept := (*evs)[:0]
	for _, e := range *evs {
		if !existing[e.EventID] {
			kept = append(kept, e)
		}
	}
	n := len(*evs) - len(kept)
	*evs = kept
	return n
}

// store de-duplicates and stores a gathered batch, then commits msgs.
func (c *Consumer) store(ctx context.Context, gen int32, now time.Time, b batchResult, msgs []kafka.Message, commit CommitFunc) error { //nolint:gocognit // the batch's store sequence (dedupe, fence, insert, rules, commit) reads top to bottom; each step's retry is where it happens
	dupes := b.dupes
	var unjudged []models.Event // stored before, never seen by the observer

	if len(b.dead) > 0 {
		if err := c.retry(ctx, "dead_letter_topic", kafkaRetryable, func(ctx context.Context) error {
			return c.writeDeadLetters(ctx, b.dead)
		}); err != nil {
			return err
		}
		if err := c.retry(ctx, "dead_letter_insert", store.IsRetryable, func(ctx context.Context) error {
			return c.d.Store.InsertDeadLetters(ctx, b.rows)
		}); err != nil {
			return err
		}
		for _, r := range b.rows {
			c.m.DeadLetters.WithLabelValues(r.Reason).Inc()
		}

		c.log.Warn("dead-lettered messages", "count", len(b.rows), "first_reason", b.rows[0].Reason, "first_field", b.rows[0].Field)
	}

	if len(b.events) > 0 {
		ids := eventIDs(b.events)
		var existing map[string]bool
		if err := c.retry(ctx, "existing_ids", store.IsRetryable, func(ctx context.Context) error {
			var err error
			existing, err = c.d.Store.ExistingEventIDs(ctx, ids)
			return err
		}); err != nil {
			return err
		}
		if c.d.Observer != nil && len(existing) > 0 {
			if err := c.retry(ctx, "batch_marks", store.IsRetryable, func(ctx context.Context) error {
				var err error
				unjudged, err = c.unjudged(ctx, b, existing)
				return err
			}); err != nil {
				return err
			}
		}
		dupes += dropExisting(&b.events, existing)
	}
	if len(b.events) > 0 || len(b.consents) > 0 {
		if err := c.fence(ctx, gen, msgs); err != nil {
			return err
		}
	}
	var ranges []store.OffsetRange
	if c.d.Observer != nil && len(b.events) > 0 {
		// Marked before the insert: if ingest stops between the insert and
		// the observer, the redelivered batch finds its events stored at
		// offsets of a batch never judged, and has them judged.
		ranges = offsetRanges(msgs)
		if err := c.retry(ctx, "mark_batch", store.IsRetryable, func(ctx context.Context) error {
			return c.d.Store.MarkBatches(ctx, ranges, now)
		}); err != nil {
			return err
		}
	}
	// Events a failed insert attempt stored (and whose views the retry
	// completed): not inserted again, but new to the observer.
	var partial []models.Event
	if len(b.events) > 0 {
		start := time.Now()
		attempt := 0
		retryable := func(err error) bool { return !errors.Is(err, ErrGenerationEnded) && store.IsRetryable(err) }
		if err := c.retry(ctx, "insert_events", retryable, func(ctx context.Context) error {
			attempt++
			if attempt > 1 {
				// The failed attempt may have stored some or all rows (an
				// answer lost on the way back, a part per day written
				// before a failure, the events table written but a
				// materialized view not, on a full disk): re-check the
				// events table itself, and re-fence, before inserting
				// again.
				if err := c.fence(ctx, gen, msgs); err != nil {
					return err
				}
				from, to := b.events[0].TS, b.events[0].TS
				for _, e := range b.events {
					from, to = minTime(from, e.TS), maxTime(to, e.TS)
				}
				done, err := c.d.Store.CompletePartialInsert(ctx, eventIDs(b.events), from, to)
				if err != nil {
					return err
				}
				if len(done.Unsure) > 0 {
					c.log.Warn("an insert that failed had stored rows; actor_minute keys left as they are (their counts match neither with nor without the stored rows)",
						"count", len(done.Unsure), "first", done.Unsure[0])
				}
				if len(done.Stored) > 0 {
					kept := b.events[:0:0]
					for _, e := range b.events {
						if done.Stored[e.EventID] {
							partial = append(partial, e)
						} else {
							kept = append(kept, e)
						}
					}
					b.events = kept
					c.log.Info("an insert that failed had stored rows; wrote the views' missing rows and retrying with the rest",
						"stored", len(done.Stored), "views_written", done.Written, "rest", len(b.events))
				}
				if len(b.events) == 0 {
					return nil
				}
			}
			return c.d.Store.InsertEvents(ctx, b.events, now)
		}); err != nil {
			return err
		}
		c.m.InsertDuration.Observe(time.Since(start).Seconds())
	}
	if len(b.consents) > 0 {
		if err := c.retry(ctx, "insert_consents", store.IsRetryable, func(ctx context.Context) error {
			return c.d.Store.InsertConsents(ctx, b.consents, now)
		}); err != nil {
			return err
		}
	}
	if c.d.Findings != nil && len(b.piiKept) > 0 {
		// With the events of a run that stopped before judging them (only
		// known with an observer): their findings were not raised either.
		if fs := piiFindings(now, slices.Concat(unjudged, b.events), b.piiKept); len(fs) > 0 {
			c.d.Findings(ctx, now, fs)
		}
	}
	if c.d.Observer != nil {
		if len(unjudged) > 0 {
			c.m.Unjudged.Add(float64(len(unjudged)))
			c.log.Warn("events stored by an earlier run but never judged by the event rules; judging them now", "count", len(unjudged))
		}
		if seen := slices.Concat(unjudged, partial, b.events); len(seen) > 0 || len(b.consents) > 0 {
			c.d.Observer(ctx, now, seen, b.consents)
		}
		if len(ranges) > 0 {
			for i := range ranges {
				ranges[i].Judged = true
			}
			if err := c.retry(ctx, "mark_judged", store.IsRetryable, func(ctx context.Context) error {
				return c.d.Store.MarkBatches(ctx, ranges, now)
			}); err != nil {
				return err
			}
		}
	}
	c.m.Events.Add(float64(len(b.events) + len(partial)))
	c.m.countPII(b.pii)
	for _, evs := range [][]models.Event{partial, b.events} {
		for i := range evs {
			c.m.sawEvent(evs[i].Store, evs[i].TS)
		}
	}
	c.m.Consents.Add(float64(len(b.consents)))
	c.m.Duplicates.Add(float64(dupes))
	c.m.Batches.Inc()
	c.m.BatchSize.Observe(float64(len(msgs)))
	if c.commit(ctx, gen, msgs, commit) && c.d.Watermark != nil {
		last := map[partitionKey]kafka.Message{}
		for _, m := range msgs {
			if k := (partitionKey{m.Topic, m.Partition}); m.Topic == c.cfg.AccessTopic && m.Offset >= last[k].Offset {
				last[k] = m
			}
		}
		for k, m := range last {
			c.d.Watermark.committed(k, b.newest[k], m.HighWaterMark-m.Offset-1 > 0)
		}
	}
	c.m.Messages.Add(float64(len(msgs)))
	c.log.Debug("batch stored", "messages", len(msgs), "events", len(b.events), "consents", len(b.consents),
		"duplicates", dupes, "dead_letters", len(b.rows))
	return nil
}

// commit commits the highest message per partition of msgs plus any
// partitions whose earlier commit failed, and reports whether it did. A commit that keeps failing (for
// example because a rebalance ended this member's generation) is given up:
// the batch is stored, and redelivery is de-duplicated.
func (c *Consumer) commit(ctx context.Context, gen int32, msgs []kafka.Message, commitFn CommitFunc) bool {
	if gen != c.pendingGen {
		// Offsets that failed in an earlier generation: whoever owns the
		// partition now re-reads from the committed offset.
		clear(c.pending)
		c.pendingGen = gen
		c.d.Watermark.reset()
	}
	for i := range msgs {
		k := partitionKey{msgs[i].Topic, msgs[i].Partition}
		if p, ok := c.pending[k]; !ok || msgs[i].Offset > p.Offset {
			c.pending[k] = msgs[i]
		}
	}
	last := make([]kafka.Message, 0, len(c.pending))
	for _, m := range c.pending {
		last = append(last, m)
	}
	var err error
	backoff := 200 * time.Millisecond
	for attempt := 1; attempt <= 3; attempt++ {
		err = commitFn(ctx, last)
		if err == nil || ctx.Err() != nil {
			break
		}
		c.m.Retries.WithLabelValues("commit").Inc()
		c.log.Warn("kafka commit failed, retrying", "attempt", attempt, "err", err)
		if !sleep(ctx, backoff) {
			break
		}
		backoff *= 2
	}
	if err != nil {
		c.m.CommitFailures.Inc()
		c.log.Warn("kafka commit given up; the batch is stored and will be committed with the next one or de-duplicated on redelivery", "err", err)
		return false
	}
	for k, m := range c.pending {
		c.m.setLag(k.topic, k.partition, m.HighWaterMark-m.Offset-1)
		delete(c.pending, k)
	}
	return true
}

// retry runs fn until it succeeds, fails with an error that retryable
// rejects, or ctx ends; it waits with exponential backoff between attempts.
func (c *Consumer) retry(ctx context.Context, op string, retryable func(error) bool, fn func(context.Context) error) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			c.m.stepOK(op)
			if attempt > 1 {
				c.log.Info("ingest step recovered", "op", op, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s (gave up at shutdown): %w", op, err)
		}
		if !retryable(err) {
			return fmt.Errorf("%s: %w", op, err)
		}
		c.m.Retries.WithLabelValues(op).Inc()
		c.m.stepFailed(op, err, time.Now())
		c.log.Warn("ingest step failed, retrying; nothing is committed meanwhile", "op", op, "attempt", attempt, "backoff", backoff, "err", err)
		if !sleep(ctx, backoff) {
			return fmt.Errorf("%s (gave up at shutdown): %w", op, err)
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

// kafkaRetryable treats every Kafka write error as transient except a
// message the broker will never accept.
func kafkaRetryable(err error) bool {
	return !errors.Is(err, kafka.MessageSizeTooLarge) && !errors.Is(err, context.Canceled)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
