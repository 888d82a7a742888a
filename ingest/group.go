package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// Fetched is a message with the consumer-group generation it was read in.
type Fetched struct {
	kafka.Message
	Generation int32
}

// CommitFunc commits, per partition, the offset after the highest message
// given, in the generation it was handed out for.
type CommitFunc func(ctx context.Context, msgs []kafka.Message) error

// Source is a consumer group seen from ingest: a stream of messages and a
// way to hold the group's current generation while a batch is stored.
// *GroupSource is one.
type Source interface {
	// Fetch blocks for the next message.
	Fetch(ctx context.Context) (Fetched, error)
	// Hold calls fn with the live generation (-1 when there is none) and
	// a commit function for it. While fn runs, the generation cannot end:
	// a rebalance waits until fn returns, so no other member is handed
	// this member's partitions while it is still inserting their messages.
	Hold(ctx context.Context, fn func(gen int32, commit CommitFunc) error) error
	// Fence is called inside Hold's fn, before a batch is inserted. It
	// returns nil when the group coordinator still has this member in
	// generation gen (it commits, per partition, the offset of the first of
	// msgs: everything before it is stored), an error wrapping
	// ErrGenerationEnded when gen is over (another member may own the
	// partitions and re-read the batch: it must not be inserted), or another
	// error when it cannot tell (retry).
	Fence(ctx context.Context, gen int32, msgs []kafka.Message) error
}

// ErrGenerationEnded says that a consumer group generation is over: its
// messages belong to whoever owns their partitions now.
var ErrGenerationEnded = errors.New("consumer group generation ended")

// GroupSource is a kafka-go consumer group with one partition reader per
// assigned partition. Unlike kafka.Reader with a GroupID, it lets ingest hold
// a generation while a batch is inserted and committed (Kafka's "partitions
// revoked" callback): a rebalance cannot hand a partition to another member
// while this one is still writing that partition's messages, and messages
// of an ended generation are never inserted (their new owner re-reads them
// from the committed offset). That is what keeps a rebalance under load
// from making a row visible twice.
type GroupSource struct {
	cfg    Config
	cg     *kafka.ConsumerGroup
	dialer *kafka.Dialer
	log    *slog.Logger
	m      *Metrics
	out    chan Fetched

	mu    sync.Mutex // held by Hold and by a generation's end
	gen   *kafka.Generation
	ended chan struct{} // closed when gen's context ends (before mu is taken)

	stop context.CancelFunc
	done chan struct{}
}

var _ Source = (*GroupSource)(nil)

// NewGroupSource joins cfg's consumer group for the access and consent
// topics and starts reading the partitions it is assigned. Connections use
// cfg's TLS and SASL settings (Config.Dialer). Close leaves the group.
func NewGroupSource(cfg Config, m *Metrics, log *slog.Logger) (*GroupSource, error) {
	cfg = cfg.WithDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	dialer, err := cfg.Dialer()
	if err != nil {
		return nil, err
	}
	dialer.ClientID = "chatwarden-ingest"
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:      cfg.Group,
		Brokers: cfg.Brokers,
		Dialer:  dialer,
		Topics:  []string{cfg.AccessTopic, cfg.ConsentTopic},
		// Every member must offer the same balancers; range keeps a
		// member's partitions contiguous, round robin is the fallback.
		GroupBalancers:        []kafka.GroupBalancer{kafka.RangeGroupBalancer{}, kafka.RoundRobinGroupBalancer{}},
		HeartbeatInterval:     max(cfg.SessionTimeout/6, time.Second),
		WatchPartitionChanges: false, // topics are created before readers start
		SessionTimeout:        cfg.SessionTimeout,
		RebalanceTimeout:      cfg.SessionTimeout + cfg.ShutdownTimeout,
		JoinGroupBackoff:      time.Second,
		StartOffset:           kafka.FirstOffset, // a new group reads everything
		Timeout:               10 * time.Second,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			log.Warn("kafka consumer group: " + fmt.Sprintf(f, a...))
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("creating consumer group %s: %w", cfg.Group, err)
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &GroupSource{cfg: cfg, cg: cg, dialer: dialer, log: log, m: m, out: make(chan Fetched, cfg.handoffQueue()),
		stop: stop, done: make(chan struct{})}
	go s.run(ctx)
	return s, nil
}

// run follows the group from generation to generation.
func (s *GroupSource) run(ctx context.Context) {
	defer close(s.done)
	backoff := 100 * time.Millisecond
	for {
		gen, err := s.cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return
			}
			s.m.Retries.WithLabelValues("join_group").Inc()
			s.log.Warn("joining kafka consumer group failed, retrying", "group", s.cfg.Group, "err", err, "backoff", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, s.cfg.MaxBackoff)
			continue
		}
		backoff = 100 * time.Millisecond
		s.m.Rebalances.Inc()
		ended := make(chan struct{})
		s.mu.Lock()
		s.gen, s.ended = gen, ended
		s.mu.Unlock()
		n := 0
		for _, parts := range gen.Assignments {
			n += len(parts)
		}
		queue, fetchBytes := s.cfg.readerSizing(n)
		for topic, parts := range gen.Assignments {
			for _, pa := range parts {
				gen.Start(func(gctx context.Context) {
					s.readPartition(gctx, gen.ID, topic, pa.ID, pa.Offset, queue, fetchBytes)
				})
			}
		}
		// The generation ends only after this returns: it waits for a
		// batch being stored under Hold, then retires the generation.
		gen.Start(func(gctx context.Context) {
			<-gctx.Done()
			close(ended) // seen by Fence while a Hold keeps mu
			s.mu.Lock()
			if s.gen == gen {
				s.gen = nil
			}
			s.mu.Unlock()
		})
		s.log.Info("joined consumer group generation", "group", s.cfg.Group, "generation", gen.ID, "partitions", n)
	}
}

// readPartition reads one assigned partition from offset until the
// generation ends, with a queue of queue messages and fetches of at most
// fetchBytes (Config.readerSizing).
func (s *GroupSource) readPartition(gctx context.Context, gen int32, topic string, partition int, offset int64, queue, fetchBytes int) {
	r := kafka.NewReader(readerConfig(s.cfg, s.dialer, topic, partition, queue, fetchBytes, s.log))
	defer r.Close()
	if err := r.SetOffset(offset); err != nil {
		s.log.Error("setting partition offset", "topic", topic, "partition", partition, "err", err)
		<-gctx.Done()
		return
	}
	backoff := 100 * time.Millisecond
	for {
		m, err := r.FetchMessage(gctx)
		if err != nil {
			if gctx.Err() != nil {
				return
			}
			s.m.Retries.WithLabelValues("fetch").Inc()
			s.log.Warn("kafka fetch failed, retrying", "topic", topic, "partition", partition, "err", err, "backoff", backoff)
			if !sleep(gctx, backoff) {
				return
			}
			backoff = min(2*backoff, s.cfg.MaxBackoff)
			continue
		}
		backoff = 100 * time.Millisecond
		select {
		case s.out <- Fetched{Message: m, Generation: gen}:
		case <-gctx.Done():
			return
		}
	}
}

// fetchRoundTrip is the time a partition reader allows a fetch's round
// trip beyond the broker's wait (Config.FetchMaxWait). kafka-go's reader
// sets its read deadline to ReaderConfig.MaxWait and asks the broker to
// wait MaxWait less its assumed round trip: 1 s, or a quarter of MaxWait
// when MaxWait is shorter. With MaxWait = FetchMaxWait (250 ms) a fetch had
// 62 ms for its round trip: on a loaded machine (or a broker in a GC pause)
// every fetch timed out ("i/o timeout ... at offset N"), the reader
// dropped the connection and fetched the same offset again, and ingest
// stopped making progress (the stall of the disk drill, issue 10 item 13).
// MaxWait = FetchMaxWait + 1 s keeps the broker's wait at FetchMaxWait and
// gives the round trip 1 s, kafka-go's most.
const fetchRoundTrip = time.Second

// readerConfig is the kafka-go reader of one assigned partition.
func readerConfig(cfg Config, dialer *kafka.Dialer, topic string, partition, queue, fetchBytes int, log *slog.Logger) kafka.ReaderConfig {
	return kafka.ReaderConfig{
		Brokers:          cfg.Brokers,
		Dialer:           dialer,
		Topic:            topic,
		Partition:        partition,
		QueueCapacity:    queue,
		MinBytes:         1, // return as soon as anything is there...
		MaxBytes:         fetchBytes,
		MaxWait:          cfg.FetchMaxWait + fetchRoundTrip, // ...or after FetchMaxWait, when caught up
		ReadBatchTimeout: cfg.FetchMaxWait + 10*time.Second,
		ReadLagInterval:  -1,
		ReadBackoffMin:   50 * time.Millisecond,
		ReadBackoffMax:   time.Second,
		IsolationLevel:   kafka.ReadCommitted,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			log.Warn("kafka reader: " + fmt.Sprintf(f, a...))
		}),
	}
}

// Fetch returns the next message of any assigned partition.
func (s *GroupSource) Fetch(ctx context.Context) (Fetched, error) {
	select {
	case f := <-s.out:
		return f, nil
	case <-ctx.Done():
		return Fetched{}, ctx.Err()
	}
}

// Hold runs fn while the current generation cannot end.
func (s *GroupSource) Hold(ctx context.Context, fn func(gen int32, commit CommitFunc) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	gen := s.gen
	if gen == nil {
		return fn(-1, func(context.Context, []kafka.Message) error { return errors.New("no live consumer group generation") })
	}
	return fn(gen.ID, func(_ context.Context, msgs []kafka.Message) error {
		offsets := map[string]map[int]int64{}
		for _, m := range msgs {
			if offsets[m.Topic] == nil {
				offsets[m.Topic] = map[int]int64{}
			}
			if o, ok := offsets[m.Topic][m.Partition]; !ok || m.Offset+1 > o {
				offsets[m.Topic][m.Partition] = m.Offset + 1
			}
		}
		return gen.CommitOffsets(offsets)
	})
}

// Fence checks with the group coordinator that gen is still this
// member's generation; it must be called inside Hold's fn. A batch held
// past the rebalance timeout (a long ClickHouse outage during a
// rebalance) finds its generation ended and is not inserted, so two
// members never insert the same batch.
func (s *GroupSource) Fence(ctx context.Context, gen int32, msgs []kafka.Message) error {
	g, ended := s.gen, s.ended // stable: the caller holds mu through Hold
	if g == nil || g.ID != gen {
		return fmt.Errorf("fencing generation %d: %w", gen, ErrGenerationEnded)
	}
	select {
	case <-ended:
		return fmt.Errorf("fencing generation %d: %w", gen, ErrGenerationEnded)
	default:
	}
	first := map[string]map[int]int64{}
	for _, m := range msgs {
		if first[m.Topic] == nil {
			first[m.Topic] = map[int]int64{}
		}
		if o, ok := first[m.Topic][m.Partition]; !ok || m.Offset < o {
			first[m.Topic][m.Partition] = m.Offset
		}
	}
	err := g.CommitOffsets(first)
	if err == nil {
		return nil
	}
	select {
	case <-ended:
		return fmt.Errorf("fencing generation %d: %w: %w", gen, ErrGenerationEnded, err)
	default:
	}
	if errors.Is(err, kafka.IllegalGeneration) || errors.Is(err, kafka.UnknownMemberId) || errors.Is(err, kafka.FencedInstanceID) {
		// The coordinator has moved on: a newer generation exists or this
		// member was removed.
		return fmt.Errorf("fencing generation %d: %w: %w", gen, ErrGenerationEnded, err)
	}
	return fmt.Errorf("fencing generation %d: %w", gen, err)
}

// Close leaves the group (after any Hold in progress) and stops reading.
func (s *GroupSource) Close() error {
	err := s.cg.Close()
	s.stop()
	<-s.done
	return err
}
