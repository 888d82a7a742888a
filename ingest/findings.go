package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/models"
)

// The findings bus: detection's findings travel to alerting through a Kafka
// topic, keyed by the alert group's (tenant, actor), consumed by the alert
// consumer group. A partition is one member's at a time, so each alert
// group is dispatched by one member at a time; the topic is the durable
// queue between detect and alert.

// Defaults of FindingsConfig.
const (
	DefaultFindingsTopic      = "chatwarden.findings.v1"
	DefaultFindingsGroup      = "chatwarden-alert"
	DefaultFindingsPartitions = 12
)

// The values of FindingsConfig.Transport.
const (
	// FindingsMemory hands findings to the dispatcher in the process
	// (one serve is the whole system).
	FindingsMemory = "memory"
	// FindingsKafka sends them through the findings topic to the alert
	// consumer group (several serves share the alerting).
	FindingsKafka = "kafka"
)

// FindingsConfig is the findings section of the configuration file: how
// findings reach alerting. The brokers and their TLS and SASL settings are
// ingest's. The zero value takes the defaults.
type FindingsConfig struct {
	// Transport is memory (default: in-process hand-off, one serve) or
	// kafka (the findings topic and the alert consumer group; required for
	// more than one serve).
	Transport string `yaml:"transport"`
	// Topic carries the findings (default chatwarden.findings.v1). serve
	// creates it when it is missing, with Partitions partitions.
	Topic string `yaml:"topic"`
	// Group is the alert consumer group (default chatwarden-alert).
	Group string `yaml:"group"`
	// Partitions is the partition count the topic is created with (default
	// 12): the most serves that share the alerting. A finding's partition
	// is a hash of its key, so changing the count of an existing topic
	// moves alert groups between members; do it with every serve stopped.
	Partitions int `yaml:"partitions"`
	// MaxBatch is the most findings handed to the dispatcher, and committed,
	// at once (default 500).
	MaxBatch int `yaml:"max_batch"`
	// Linger is how long a batch waits for more findings after its first
	// (default 50ms).
	Linger time.Duration `yaml:"linger"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c FindingsConfig) WithDefaults() FindingsConfig {
	if c.Transport == "" {
		c.Transport = FindingsMemory
	}
	if c.Topic == "" {
		c.Topic = DefaultFindingsTopic
	}
	if c.Group == "" {
		c.Group = DefaultFindingsGroup
	}
	if c.Partitions <= 0 {
		c.Partitions = DefaultFindingsPartitions
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 500
	}
	if c.Linger <= 0 {
		c.Linger = 50 * time.Millisecond
	}
	return c
}

var topicNameRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

// Validate names the bad field. Zero values are valid (defaults).
func (c FindingsConfig) Validate() error {
	var errs []error
	if c.Transport != "" && c.Transport != FindingsMemory && c.Transport != FindingsKafka {
		errs = append(errs, fmt.Errorf("findings.transport: %q is not %s or %s", c.Transport, FindingsMemory, FindingsKafka))
	}
	if c.Topic != "" && !topicNameRe.MatchString(c.Topic) {
		errs = append(errs, fmt.Errorf("findings.topic: %q is not a Kafka topic name (letters, digits, '.', '_', '-', at most 249)", c.Topic))
	}
	if c.Group != "" && len(c.Group) > 255 {
		errs = append(errs, errors.New("findings.group: longer than 255 characters"))
	}
	if c.Partitions < 0 || c.Partitions > 1000 {
		errs = append(errs, fmt.Errorf("findings.partitions: %d is not between 1 and 1000", c.Partitions))
	}
	if c.MaxBatch < 0 || c.MaxBatch > 100_000 {
		errs = append(errs, fmt.Errorf("findings.max_batch: %d is not between 1 and 100000", c.MaxBatch))
	}
	if c.Linger < 0 || c.Linger > 2*time.Second {
		errs = append(errs, fmt.Errorf("findings.linger: %s is not between 0 and 2s (event rules alert within 2 s)", c.Linger))
	}
	return errors.Join(errs...)
}

// FindingKey is the Kafka key of a finding: its alert group's tenant (empty
// is "default", as alerting folds it) and actor. Every finding of one actor
// lands on one partition, whatever its detector, because the aggregation
// group that shows an actor's alerts spans detectors.
func FindingKey(tenant, actor string) []byte {
	if tenant == "" {
		tenant = "default"
	}
	return []byte(tenant + "|" + actor)
}

// FindingPartition is the partition of key among n: Kafka's default
// partitioner (murmur2, as the Java client and librdkafka), which the
// findings writer uses, so that the consumer can tell which alert groups
// its partitions hold.
func FindingPartition(key []byte, n int) int {
	return (kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: key}, seq(n)...)
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// findingMessage is the wire format of the findings topic (JSON, version
// 1): a finding, or a responder's action (alerting's own JSON) that the
// member a click reached hands to the member that owns the alert's group.
type findingMessage struct {
	V       int             `json:"v"`
	Finding *models.Finding `json:"finding,omitempty"`
	Action  json.RawMessage `json:"action,omitempty"`
}

// FindingsMetrics are the findings bus's Prometheus metrics.
type FindingsMetrics struct {
	Produced    prometheus.Counter
	Consumed    prometheus.Counter
	Undecodable prometheus.Counter
	Retries     *prometheus.CounterVec
	Partitions  prometheus.Gauge
	Lag         prometheus.Gauge
	Generations prometheus.Counter
}

// NewFindingsMetrics registers the findings bus's metrics on reg (nil: not
// registered).
func NewFindingsMetrics(reg prometheus.Registerer) *FindingsMetrics {
	m := &FindingsMetrics{
		Produced: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_findings_produced_total",
			Help: "Findings written to the findings topic (acknowledged by every replica)."}),
		Consumed: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_findings_consumed_total",
			Help: "Findings read from the findings topic and handled by the dispatcher (their offsets committed after)."}),
		Undecodable: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_findings_undecodable_total",
			Help: "Messages of the findings topic that are not a finding (logged and skipped)."}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_findings_retries_total",
			Help: "Retried findings-bus operations by operation (handle, act, commit, fetch, join_group, metadata)."}, []string{"op"}),
		Partitions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatwarden_findings_partitions_owned",
			Help: "Partitions of the findings topic this member owns (its share of the alert groups)."}),
		Lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatwarden_findings_lag_messages",
			Help: "Findings in the topic not yet handled by the alert consumer group (all partitions, from its committed offsets)."}),
		Generations: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_findings_generations_total",
			Help: "Alert consumer group generations this member joined (rebalances)."}),
	}
	if reg != nil {
		reg.MustRegister(m.Produced, m.Consumed, m.Undecodable, m.Retries, m.Partitions, m.Lag, m.Generations)
	}
	return m
}

// FindingsWriter sends findings to the findings topic. Its Send has the
// shape of detect.FindingSink.
type FindingsWriter struct {
	w *kafka.Writer
	m *FindingsMetrics
}

// NewFindingsWriter returns a writer to fc's topic on cfg's brokers. Send
// returns when every replica has the findings, so a finding whose Send
// returned nil survives a crash of this process; a slow broker slows
// detection down instead of queueing in memory. Close it when done.
func NewFindingsWriter(cfg Config, fc FindingsConfig, m *FindingsMetrics) (*FindingsWriter, error) {
	cfg, fc = cfg.WithDefaults(), fc.WithDefaults()
	tr, err := cfg.Transport()
	if err != nil {
		return nil, err
	}
	if m == nil {
		m = NewFindingsMetrics(nil)
	}
	return &FindingsWriter{m: m, w: &kafka.Writer{
		Addr:      kafka.TCP(cfg.Brokers...),
		Transport: tr,
		Topic:     fc.Topic,
		Balancer: kafka.BalancerFunc(func(msg kafka.Message, partitions ...int) int {
			return partitions[FindingPartition(msg.Key, len(partitions))]
		}),
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		BatchSize:    1000,
		BatchBytes:   maxRequestBytes,
		WriteTimeout: 10 * time.Second,
		MaxAttempts:  3,
	}}, nil
}

// Send writes fs, each keyed by FindingKey. An error means some may not be
// written; sending them again is safe (alerting drops a finding it has
// folded in already).
func (w *FindingsWriter) Send(ctx context.Context, fs ...models.Finding) error {
	if len(fs) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(fs))
	for i := range fs {
		b, err := json.Marshal(findingMessage{V: 1, Finding: &fs[i]})
		if err != nil {
			return fmt.Errorf("encoding finding of %s: %w", fs[i].Detector, err)
		}
		msgs[i] = kafka.Message{Key: FindingKey(fs[i].Tenant, fs[i].ActorID), Value: b}
	}
	if err := w.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("writing %d findings to %s: %w", len(fs), w.w.Topic, err)
	}
	w.m.Produced.Add(float64(len(fs)))
	return nil
}

// SendAction writes a responder's action (alerting's JSON) on an alert of
// (tenant, actor), keyed as that alert group's findings, so that the member
// owning the group applies it (FindingsHandler.Act), in order with the
// group's findings.
func (w *FindingsWriter) SendAction(ctx context.Context, tenant, actor string, action []byte) error {
	b, err := json.Marshal(findingMessage{V: 1, Action: action})
	if err != nil {
		return fmt.Errorf("encoding an action: %w", err)
	}
	if err := w.w.WriteMessages(ctx, kafka.Message{Key: FindingKey(tenant, actor), Value: b}); err != nil {
		return fmt.Errorf("writing an action to %s: %w", w.w.Topic, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (w *FindingsWriter) Close() error { return w.w.Close() }

// CreateFindingsTopic creates fc's topic with fc.Partitions partitions
// unless it exists, and returns its partition count.
func CreateFindingsTopic(ctx context.Context, cfg Config, fc FindingsConfig) (int, error) {
	fc = fc.WithDefaults()
	if err := CreateTopics(ctx, cfg, TopicSpec{Name: fc.Topic, Partitions: fc.Partitions}); err != nil {
		return 0, err
	}
	return topicPartitions(ctx, cfg.WithDefaults(), fc.Topic)
}

// topicPartitions returns how many partitions topic has.
func topicPartitions(ctx context.Context, cfg Config, topic string) (int, error) {
	cl, tr, err := cfg.client(10 * time.Second)
	if err != nil {
		return 0, err
	}
	defer tr.CloseIdleConnections()
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("reading kafka metadata of %s: %w", topic, err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return 0, fmt.Errorf("kafka topic %s: %w", topic, t.Error)
		}
		return len(t.Partitions), nil
	}
	return 0, fmt.Errorf("kafka topic %s: not in the metadata", topic)
}

// FindingsHandler is alerting seen from the findings consumer.
type FindingsHandler interface {
	// Own runs for one consumer-group generation. owns reports whether a
	// (tenant, actor)'s alert groups are this member's in it (their key's
	// partition is assigned to this member). Own takes those groups over
	// (reads their state), calls ready once (Handle is not called before),
	// dispatches them until ctx ends, and gives them up (writes what it
	// holds) before it returns: the generation, and so the next owner,
	// waits for that. fence asks the group coordinator whether the
	// generation is still current (nil) or over (an error wrapping
	// ErrGenerationEnded: a member paused past the session timeout was
	// replaced), for Own to call before an action another owner would
	// repeat (a first post). Its error is logged.
	Own(ctx context.Context, owns func(tenant, actor string) bool, fence func(ctx context.Context) error, ready func()) error
	// Handle folds findings of owned partitions in; nil means they are
	// durable (their offsets are committed next). An error is retried with
	// the same findings until it succeeds or the generation ends.
	Handle(ctx context.Context, fs []models.Finding) error
	// Act applies a responder's action sent with SendAction to a group it
	// owns; nil means it is applied or can never be (logged), an error is
	// retried as Handle's.
	Act(ctx context.Context, action []byte) error
}

// FindingsConsumer is a member of the alert consumer group.
type FindingsConsumer struct {
	cfg Config
	fc  FindingsConfig
	m   *FindingsMetrics
	log *slog.Logger
}

// NewFindingsConsumer returns a member of fc's group reading fc's topic on
// cfg's brokers (with cfg's session timeout, TLS and SASL settings).
func NewFindingsConsumer(cfg Config, fc FindingsConfig, m *FindingsMetrics, log *slog.Logger) *FindingsConsumer {
	if m == nil {
		m = NewFindingsMetrics(nil)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &FindingsConsumer{cfg: cfg.WithDefaults(), fc: fc.WithDefaults(), m: m, log: log}
}

// Run joins the group and hands each generation's partitions to h until ctx
// ends; then it leaves the group (after h gave its groups up), so that the
// others take them over at once rather than after the session timeout.
func (c *FindingsConsumer) Run(ctx context.Context, h FindingsHandler) error {
	if err := CheckTopics(ctx, c.cfg, c.fc.Topic); err != nil {
		return err
	}
	dialer, err := c.cfg.Dialer()
	if err != nil {
		return err
	}
	dialer.ClientID = "chatwarden-alert"
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    c.fc.Group,
		Brokers:               c.cfg.Brokers,
		Dialer:                dialer,
		Topics:                []string{c.fc.Topic},
		GroupBalancers:        []kafka.GroupBalancer{kafka.RangeGroupBalancer{}, kafka.RoundRobinGroupBalancer{}},
		HeartbeatInterval:     max(c.cfg.SessionTimeout/6, time.Second),
		SessionTimeout:        c.cfg.SessionTimeout,
		RebalanceTimeout:      c.cfg.SessionTimeout + c.cfg.ShutdownTimeout,
		JoinGroupBackoff:      time.Second,
		StartOffset:           kafka.FirstOffset, // a new group handles every finding kept
		Timeout:               10 * time.Second,
		WatchPartitionChanges: false,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			c.log.Warn("kafka alert consumer group: " + fmt.Sprintf(f, a...))
		}),
	})
	if err != nil {
		return fmt.Errorf("creating consumer group %s: %w", c.fc.Group, err)
	}
	lagCtx, stopLag := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.watchLag(lagCtx) })
	defer func() { stopLag(); wg.Wait() }()
	backoff := 100 * time.Millisecond
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				// Close waits for the generation's functions (h.Own gives
				// its groups up) and leaves the group.
				return cg.Close()
			}
			c.m.Retries.WithLabelValues("join_group").Inc()
			c.log.Warn("joining the alert consumer group failed, retrying", "group", c.fc.Group, "err", err, "backoff", backoff)
			if !sleep(ctx, backoff) {
				return cg.Close()
			}
			backoff = min(2*backoff, c.cfg.MaxBackoff)
			continue
		}
		backoff = 100 * time.Millisecond
		c.m.Generations.Inc()
		gen.Start(func(gctx context.Context) { c.generation(gctx, gen, h) })
	}
}

// watchLag keeps the lag gauge current (every 10 s) until ctx ends.
func (c *FindingsConsumer) watchLag(ctx context.Context) {
	for {
		if pls, err := GroupLag(ctx, c.cfg, c.fc.Group, c.fc.Topic); err == nil {
			var total int64
			for _, p := range pls {
				total += p.Lag
			}
			c.m.Lag.Set(float64(total))
		} else if ctx.Err() == nil {
			c.log.Debug("reading the alert consumer group's lag", "err", err)
		}
		if !sleep(ctx, 10*time.Second) {
			return
		}
	}
}

// generation runs one generation: h owns the alert groups of the assigned
// partitions while their findings are read, handed to h in batches, and
// committed after each batch is handled.
func (c *FindingsConsumer) generation(gctx context.Context, gen *kafka.Generation, h FindingsHandler) {
	assigned := gen.Assignments[c.fc.Topic]
	mine := map[int]bool{}
	for _, pa := range assigned {
		mine[pa.ID] = true
	}
	c.m.Partitions.Set(float64(len(mine)))
	defer c.m.Partitions.Set(0)
	var n int
	for {
		var err error
		if n, err = topicPartitions(gctx, c.cfg, c.fc.Topic); err == nil {
			break
		}
		c.m.Retries.WithLabelValues("metadata").Inc()
		c.log.Warn("reading the findings topic's partitions, retrying", "topic", c.fc.Topic, "err", err)
		if !sleep(gctx, time.Second) {
			return
		}
	}
	owns := func(tenant, actor string) bool { return mine[FindingPartition(FindingKey(tenant, actor), n)] }
	c.log.Info("alert consumer group generation", "group", c.fc.Group, "generation", gen.ID, "partitions", len(mine), "of", n)
	// The generation's committed offsets, which the fence commits again.
	cm := &commits{gen: gen, topic: c.fc.Topic, at: map[int]int64{}}
	for _, pa := range assigned {
		if pa.Offset >= 0 {
			cm.at[pa.ID] = pa.Offset
		}
	}
	fence := func(ctx context.Context) error {
		if gctx.Err() != nil {
			return fmt.Errorf("fencing generation %d: %w", gen.ID, ErrGenerationEnded)
		}
		return cm.fence()
	}
	ready := make(chan struct{})
	var once sync.Once
	owned := make(chan struct{})
	go func() {
		defer close(owned)
		if err := h.Own(gctx, owns, fence, func() { once.Do(func() { close(ready) }) }); err != nil && gctx.Err() == nil {
			c.log.Error("dispatching the owned alert groups", "generation", gen.ID, "err", err)
		}
	}()
	defer func() { <-owned }() // the next owner starts after this one gave the groups up
	select {
	case <-ready:
	case <-owned:
		return
	case <-gctx.Done():
		return
	}
	if len(assigned) == 0 {
		<-gctx.Done()
		return
	}
	in := make(chan kafka.Message, c.fc.MaxBatch)
	var readers sync.WaitGroup
	defer readers.Wait()
	for _, pa := range assigned {
		readers.Go(func() { c.readPartition(gctx, pa.ID, pa.Offset, in) })
	}
	for {
		batch, ok := c.nextBatch(gctx, in)
		if !ok {
			return
		}
		if !c.handle(gctx, cm, h, batch) {
			return
		}
	}
}

// readPartition feeds one assigned partition's messages, from offset, to
// in until ctx ends.
func (c *FindingsConsumer) readPartition(ctx context.Context, partition int, offset int64, in chan<- kafka.Message) {
	dialer, err := c.cfg.Dialer()
	if err != nil {
		c.log.Error("findings reader", "err", err)
		return
	}
	rc := readerConfig(c.cfg, dialer, c.fc.Topic, partition, c.fc.MaxBatch, 1<<20, c.log)
	r := kafka.NewReader(rc)
	defer r.Close()
	if err := r.SetOffset(offset); err != nil {
		c.log.Error("setting the findings partition's offset", "partition", partition, "err", err)
		return
	}
	backoff := 100 * time.Millisecond
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.m.Retries.WithLabelValues("fetch").Inc()
			c.log.Warn("findings fetch failed, retrying", "partition", partition, "err", err, "backoff", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, c.cfg.MaxBackoff)
			continue
		}
		backoff = 100 * time.Millisecond
		select {
		case in <- m:
		case <-ctx.Done():
			return
		}
	}
}

// nextBatch waits for a message, then gathers more for up to Linger or
// MaxBatch messages. ok is false when ctx ended.
func (c *FindingsConsumer) nextBatch(ctx context.Context, in <-chan kafka.Message) (batch []kafka.Message, ok bool) {
	select {
	case m := <-in:
		batch = append(batch, m)
	case <-ctx.Done():
		return nil, false
	}
	t := time.NewTimer(c.fc.Linger)
	defer t.Stop()
	for len(batch) < c.fc.MaxBatch {
		select {
		case m := <-in:
			batch = append(batch, m)
		case <-t.C:
			return batch, true
		case <-ctx.Done():
			return nil, false
		}
	}
	return batch, true
}

// handle hands batch to h in order (findings in runs, actions one by one),
// each until h succeeds, and commits the batch. It returns false when the
// generation ended first (nothing committed: the partitions' next owner
// reads the batch again).
func (c *FindingsConsumer) handle(ctx context.Context, cm *commits, h FindingsHandler, batch []kafka.Message) bool {
	// In order: the findings between two actions in one call.
	var fs []models.Finding
	handled := 0
	for i, m := range batch {
		var fm findingMessage
		var action []byte
		err := json.Unmarshal(m.Value, &fm)
		switch {
		case err != nil || fm.V != 1 || (fm.Finding == nil) == (len(fm.Action) == 0):
			c.m.Undecodable.Inc()
			c.log.Error("skipping a message of the findings topic that is neither a finding nor an action", "partition", m.Partition,
				"offset", m.Offset, "err", err, "version", fm.V)
		case fm.Finding != nil:
			fs = append(fs, *fm.Finding)
		default:
			action = fm.Action
		}
		if action == nil && i < len(batch)-1 {
			continue
		}
		if !c.retry(ctx, "handle", func() error {
			if len(fs) == 0 {
				return nil
			}
			return h.Handle(ctx, fs)
		}) {
			return false
		}
		handled += len(fs)
		fs = nil
		if action != nil && !c.retry(ctx, "act", func() error { return h.Act(ctx, action) }) {
			return false
		}
	}
	if ctx.Err() != nil {
		// The generation ended while h handled the batch: h may have given
		// the groups up first and skipped some of it. Its next owner reads
		// it again.
		return false
	}
	offsets := map[int]int64{}
	for _, m := range batch {
		offsets[m.Partition] = max(offsets[m.Partition], m.Offset+1)
	}
	for attempt := 1; ; attempt++ {
		err := cm.commit(offsets)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false // handled, not committed: the next owner finds it folded in
		}
		c.m.Retries.WithLabelValues("commit").Inc()
		if attempt == 5 {
			// The next batch's commit covers these offsets.
			c.log.Warn("committing findings offsets failed; the next batch commits them", "err", err)
			break
		}
		if !sleep(ctx, time.Duration(attempt)*200*time.Millisecond) {
			return false
		}
	}
	c.m.Consumed.Add(float64(handled))
	return true
}

// commits commits a generation's offsets and remembers them, so that a
// fence can commit them again: the coordinator accepts a commit only from
// a member of the current generation.
type commits struct {
	gen   *kafka.Generation
	topic string
	mu    sync.Mutex
	at    map[int]int64 // partition -> next offset to read
}

// commit commits offsets (partition -> next offset).
func (cm *commits) commit(offsets map[int]int64) error {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	if err := cm.gen.CommitOffsets(map[string]map[int]int64{cm.topic: offsets}); err != nil {
		return err
	}
	for p, o := range offsets {
		cm.at[p] = max(cm.at[p], o)
	}
	return nil
}

// fence commits the committed offsets again: nil while the generation is
// current, an error wrapping ErrGenerationEnded when the coordinator has
// moved on. With nothing committed yet (a new group) there is nothing to
// commit, and it answers nil.
func (cm *commits) fence() error {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	if len(cm.at) == 0 {
		return nil
	}
	err := cm.gen.CommitOffsets(map[string]map[int]int64{cm.topic: maps.Clone(cm.at)})
	if err == nil {
		return nil
	}
	if errors.Is(err, kafka.IllegalGeneration) || errors.Is(err, kafka.UnknownMemberId) || errors.Is(err, kafka.RebalanceInProgress) ||
		errors.Is(err, kafka.FencedInstanceID) {
		return fmt.Errorf("fencing generation %d: %w: %w", cm.gen.ID, ErrGenerationEnded, err)
	}
	return fmt.Errorf("fencing generation %d: %w", cm.gen.ID, err)
}

// retry runs op until it succeeds (true) or ctx ends (false), backing off.
func (c *FindingsConsumer) retry(ctx context.Context, what string, op func() error) bool {
	backoff := 100 * time.Millisecond
	for {
		err := op()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		c.m.Retries.WithLabelValues(what).Inc()
		c.log.Warn("findings bus: "+what+" failed, retrying", "err", err, "backoff", backoff)
		if !sleep(ctx, backoff) {
			return false
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}
