package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// Detection shard ownership (issue 11). The detection shards are the
// partitions of a small control topic (one partition per shard) consumed by
// a consumer group of the serve instances: the partitions a member is
// assigned are the shards it evaluates. When a member dies, the group
// coordinator notices it within the session timeout and the next
// generation hands its partitions, and so its shards, to the survivors.
// Nothing is read from the topic as a stream: each owner writes a progress
// record to its shard's partition (the last window it evaluated), which the
// next owner reads to know from where to evaluate, and which every member
// reads to tell how long a shard has gone without a live owner.

// ShardGroupOptions configure a ShardGroup.
type ShardGroupOptions struct {
	// Topic is the control topic; it must have exactly Shards partitions
	// (Ensure creates it).
	Topic string
	// Group is the consumer group of the serve instances.
	Group string
	// Shards is the number of detection shards.
	Shards int
	// SessionTimeout is how long the coordinator waits for a silent member
	// before handing its shards to another (the takeover time's bound).
	SessionTimeout time.Duration
	// Member names this instance in its progress records (host:pid).
	Member string
	Log    *slog.Logger
}

// ShardProgress is the newest progress record of a shard: who owned it,
// when that owner last reported, and the end of the last window it had
// evaluated then (zero: none yet).
type ShardProgress struct {
	Shard       int       `json:"shard"`
	Owner       string    `json:"owner"`
	At          time.Time `json:"at"`
	EvaluatedTo time.Time `json:"evaluated_to"`
}

// ShardGroup is this instance's membership of the detection shard group.
type ShardGroup struct {
	cfg Config
	o   ShardGroupOptions
	w   *kafka.Writer
	log *slog.Logger
}

// NewShardGroup returns the group of o on cfg's brokers (with cfg's TLS
// and SASL settings). Ensure the topic first; Run joins the group.
func NewShardGroup(cfg Config, o ShardGroupOptions) (*ShardGroup, error) {
	cfg = cfg.WithDefaults()
	if o.Topic == "" || o.Group == "" || o.Shards < 1 || o.SessionTimeout <= 0 {
		return nil, fmt.Errorf("shard group: topic %q, group %q, %d shards, session timeout %s: all are required", o.Topic, o.Group, o.Shards, o.SessionTimeout)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	tr, err := cfg.Transport()
	if err != nil {
		return nil, err
	}
	w := &kafka.Writer{
		Addr:      kafka.TCP(cfg.Brokers...),
		Transport: tr,
		Topic:     o.Topic,
		// The record's partition is its shard, set on each message.
		Balancer:     shardBalancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		BatchSize:    1,
		WriteTimeout: 10 * time.Second,
		MaxAttempts:  3,
	}
	return &ShardGroup{cfg: cfg, o: o, w: w, log: o.Log}, nil
}

// shardBalancer sends a progress record to the partition named by its key
// (the shard number).
type shardBalancer struct{}

func (shardBalancer) Balance(m kafka.Message, partitions ...int) int {
	n, err := strconv.Atoi(string(m.Key))
	if err != nil || n < 0 || n >= len(partitions) {
		return partitions[0] // not ours; Report never writes such a key
	}
	return partitions[n]
}

// ErrShardTopic says that the control topic exists with another number of
// partitions than detect.shards.
var ErrShardTopic = errors.New("shard topic has another number of partitions")

// Ensure creates the control topic with one partition per shard, or checks
// that the existing one has that many (an error wrapping ErrShardTopic
// otherwise: changing the number of shards moves actors between them).
func (g *ShardGroup) Ensure(ctx context.Context) error {
	if err := CreateTopics(ctx, g.cfg, TopicSpec{Name: g.o.Topic, Partitions: g.o.Shards}); err != nil {
		return err
	}
	cl, tr, err := g.cfg.client(10 * time.Second)
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{g.o.Topic}})
	if err != nil {
		return fmt.Errorf("reading kafka metadata: %w", err)
	}
	for _, t := range md.Topics {
		if t.Error != nil {
			return fmt.Errorf("kafka topic %s: %w", t.Name, t.Error)
		}
		if len(t.Partitions) != g.o.Shards {
			return fmt.Errorf("%w: %s has %d partitions, detect.shards is %d", ErrShardTopic, t.Name, len(t.Partitions), g.o.Shards)
		}
	}
	return nil
}

// Run joins the group and, for every generation, calls own once per shard
// assigned to this member, each in its own goroutine, with a context that
// ends when the generation does (a member joined or left: shards may move)
// and the shard's newest progress record (ok false: none). own must return
// promptly once its context ends; the next generation starts when every
// own of the last one has returned, so that no shard has two owners. Run
// returns when ctx ends (leaving the group) or on an error it cannot
// retry.
func (g *ShardGroup) Run(ctx context.Context, own func(ctx context.Context, shard int, last ShardProgress, ok bool)) error {
	dialer, err := g.cfg.Dialer()
	if err != nil {
		return err
	}
	dialer.ClientID = "chatwarden-detect"
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    g.o.Group,
		Brokers:               g.cfg.Brokers,
		Dialer:                dialer,
		Topics:                []string{g.o.Topic},
		GroupBalancers:        []kafka.GroupBalancer{kafka.RangeGroupBalancer{}, kafka.RoundRobinGroupBalancer{}},
		HeartbeatInterval:     max(g.o.SessionTimeout/6, 500*time.Millisecond),
		SessionTimeout:        g.o.SessionTimeout,
		RebalanceTimeout:      g.o.SessionTimeout + 15*time.Second, // an owner checkpoints when its shard moves
		JoinGroupBackoff:      time.Second,
		WatchPartitionChanges: false,
		StartOffset:           kafka.LastOffset,
		Timeout:               10 * time.Second,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			g.log.Warn("kafka shard group: " + fmt.Sprintf(f, a...))
		}),
	})
	if err != nil {
		return fmt.Errorf("joining shard group %s: %w", g.o.Group, err)
	}
	defer cg.Close()
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, kafka.ErrGroupClosed) {
				return nil
			}
			g.log.Warn("shard group: waiting for the next generation", "err", err)
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		assigned := gen.Assignments[g.o.Topic]
		shards := make([]int, len(assigned))
		for i, p := range assigned {
			shards[i] = p.ID
		}
		g.log.Info("detection shards assigned", "generation", gen.ID, "member", g.o.Member, "shards", shards)
		last, err := g.Progress(ctx)
		if err != nil {
			g.log.Warn("shard group: reading the shards' progress; evaluating from their checkpoints", "err", err)
		}
		for _, s := range shards {
			p, ok := last[s]
			gen.Start(func(gctx context.Context) { own(gctx, s, p, ok) })
		}
	}
}

// Report writes shard's progress record: this member owns it and has
// evaluated every window ending at or before evaluatedTo (zero: none yet).
func (g *ShardGroup) Report(ctx context.Context, shard int, at, evaluatedTo time.Time) error {
	b, err := json.Marshal(ShardProgress{Shard: shard, Owner: g.o.Member, At: at.UTC(), EvaluatedTo: evaluatedTo.UTC()})
	if err != nil {
		return err
	}
	if err := g.w.WriteMessages(ctx, kafka.Message{Key: []byte(strconv.Itoa(shard)), Value: b}); err != nil {
		return fmt.Errorf("reporting shard %d's progress to %s: %w", shard, g.o.Topic, summarize(err))
	}
	return nil
}

// Progress returns the newest progress record of every shard that has one.
func (g *ShardGroup) Progress(ctx context.Context) (map[int]ShardProgress, error) {
	cl, tr, err := g.cfg.client(10 * time.Second)
	if err != nil {
		return nil, err
	}
	defer tr.CloseIdleConnections()
	reqs := make([]kafka.OffsetRequest, g.o.Shards)
	for i := range reqs {
		reqs[i] = kafka.LastOffsetOf(i)
	}
	lo, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{g.o.Topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %s: %w", g.o.Topic, err)
	}
	out := map[int]ShardProgress{}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, p := range lo.Topics[g.o.Topic] {
		if p.Error != nil {
			errs = append(errs, fmt.Errorf("end offset of %s/%d: %w", g.o.Topic, p.Partition, p.Error))
			continue
		}
		if p.LastOffset <= 0 {
			continue
		}
		wg.Go(func() {
			sp, err := g.readAt(ctx, cl, p.Partition, p.LastOffset-1)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			out[p.Partition] = sp
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// readAt reads the progress record at offset of partition.
func (g *ShardGroup) readAt(ctx context.Context, cl *kafka.Client, partition int, offset int64) (ShardProgress, error) {
	res, err := cl.Fetch(ctx, &kafka.FetchRequest{Topic: g.o.Topic, Partition: partition, Offset: offset, MinBytes: 1, MaxBytes: 1 << 20,
		MaxWait: 100 * time.Millisecond, IsolationLevel: kafka.ReadCommitted})
	if err == nil && res.Error != nil {
		err = res.Error
	}
	if err != nil {
		return ShardProgress{}, fmt.Errorf("reading %s/%d at %d: %w", g.o.Topic, partition, offset, err)
	}
	var sp ShardProgress
	found := false
	for {
		r, err := res.Records.ReadRecord()
		if err != nil {
			break // io.EOF: the batch is read
		}
		if r.Offset != offset || r.Value == nil {
			continue
		}
		b, err := io.ReadAll(r.Value)
		if err != nil {
			return ShardProgress{}, fmt.Errorf("reading %s/%d at %d: %w", g.o.Topic, partition, offset, err)
		}
		if err := json.Unmarshal(b, &sp); err != nil {
			return ShardProgress{}, fmt.Errorf("progress record %s/%d at %d: %w", g.o.Topic, partition, offset, err)
		}
		found = true
	}
	if !found {
		return ShardProgress{}, fmt.Errorf("reading %s/%d at %d: no record there", g.o.Topic, partition, offset)
	}
	sp.Shard = partition
	return sp, nil
}

// Close flushes and closes the progress writer.
func (g *ShardGroup) Close() error { return closeWriter(g.w) }
