package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// NewDeadLetterWriter returns a synchronous writer to the dead-letter topic:
// WriteMessages returns when every replica has the messages. Connections
// use cfg's TLS and SASL settings (Config.Transport); close it with
// closeWriter.
func NewDeadLetterWriter(cfg Config) (*kafka.Writer, error) {
	cfg = cfg.WithDefaults()
	tr, err := cfg.Transport()
	if err != nil {
		return nil, err
	}
	return &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Transport:    tr,
		Topic:        cfg.DeadLetterTopic,
		Balancer:     kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
		BatchSize:    1000,
		BatchBytes:   maxRequestBytes,
		WriteTimeout: 10 * time.Second,
		MaxAttempts:  3,
	}, nil
}

// Run consumes cfg's topics into st until ctx is cancelled, with its own
// reader and dead-letter writer, and closes them (leaving the group) after
// the final flush. It is what `chatwarden ingest` and `serve` run.
func Run(ctx context.Context, cfg Config, st Store, h Hasher, obs BatchObserver, m *Metrics, log *slog.Logger, opts ...RunOption) error {
	cfg = cfg.WithDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := CheckTopics(ctx, cfg, cfg.AccessTopic, cfg.ConsentTopic, cfg.DeadLetterTopic); err != nil {
		return err
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	w, err := NewDeadLetterWriter(cfg)
	if err != nil {
		return err
	}
	src, err := NewGroupSource(cfg, m, log)
	if err != nil {
		return errors.Join(err, closeWriter(w))
	}
	deps := Deps{Source: src, DeadLetters: w, Store: st, Hasher: h, Observer: obs, Metrics: m, Log: log}
	for _, o := range opts {
		o(&deps)
	}
	if deps.Watermark != nil {
		deps.Watermark.mu.Lock()
		deps.Watermark.lag = func(ctx context.Context) ([]PartitionLag, error) {
			return GroupLag(ctx, cfg, cfg.Group, cfg.AccessTopic)
		}
		deps.Watermark.mu.Unlock()
	}
	c, err := New(cfg, deps)
	if err != nil {
		return errors.Join(err, src.Close(), closeWriter(w))
	}
	log.Info("ingest started", "group", cfg.Group, "topics", []string{cfg.AccessTopic, cfg.ConsentTopic},
		"batch_size", cfg.BatchSize, "linger", cfg.Linger)
	err = c.Run(ctx)
	return errors.Join(err, src.Close(), closeWriter(w))
}

// RunOption sets an optional collaborator of Run.
type RunOption func(*Deps)

// WithWatermark makes Run follow the event time it commits in w
// (Deps.Watermark).
func WithWatermark(w *Watermark) RunOption { return func(d *Deps) { d.Watermark = w } }

// WithFindings makes Run raise its pii_in_payload findings against
// producers in f (Deps.Findings).
func WithFindings(f FindingSink) RunOption { return func(d *Deps) { d.Findings = f } }

// CheckTopics returns an error naming any of topics that does not exist on
// cfg's brokers.
func CheckTopics(ctx context.Context, cfg Config, topics ...string) error {
	cl, tr, err := cfg.client(10 * time.Second)
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("reading kafka metadata from %v: %w", cl.Addr, err)
	}
	var errs []error
	for _, t := range md.Topics {
		if t.Error != nil {
			errs = append(errs, fmt.Errorf("kafka topic %s: %w (create it first: scripts/stack.sh topic %s)", t.Name, t.Error, t.Name))
		}
	}
	return errors.Join(errs...)
}

// TopicSpec is a topic to create.
type TopicSpec struct {
	Name       string
	Partitions int
}

// dialController connects to the first bootstrap broker and to the
// cluster's controller (where topic changes go); the caller closes both.
func dialController(ctx context.Context, cfg Config) (conn, ctrlConn *kafka.Conn, err error) {
	d, err := cfg.Dialer()
	if err != nil {
		return nil, nil, err
	}
	brokers := cfg.WithDefaults().Brokers
	conn, err = d.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return nil, nil, fmt.Errorf("dialing kafka at %s: %w", brokers[0], err)
	}
	ctrl, err := conn.Controller()
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("finding kafka controller: %w", err)
	}
	ctrlConn, err = d.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("dialing kafka controller: %w", err)
	}
	return conn, ctrlConn, nil
}

// CreateTopics creates topics on the cluster's controller (replication
// factor 1 unless the cluster has more brokers: min(3, brokers)). Topics
// that exist already are left alone.
func CreateTopics(ctx context.Context, cfg Config, specs ...TopicSpec) error {
	conn, cc, err := dialController(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	defer cc.Close()
	bs, err := conn.Brokers()
	if err != nil {
		return fmt.Errorf("listing kafka brokers: %w", err)
	}
	rf := min(3, len(bs))
	cfgs := make([]kafka.TopicConfig, len(specs))
	for i, s := range specs {
		cfgs[i] = kafka.TopicConfig{Topic: s.Name, NumPartitions: s.Partitions, ReplicationFactor: rf}
	}
	if err := cc.CreateTopics(cfgs...); err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("creating kafka topics: %w", err)
	}
	// Wait until every partition has a leader, so that readers and writers
	// started next find them.
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		parts, err := cc.ReadPartitions(names...)
		ready := err == nil
		if ready {
			count := map[string]int{}
			for _, p := range parts {
				if p.Leader.Host != "" {
					count[p.Topic]++
				}
			}
			for _, s := range specs {
				if count[s.Name] < s.Partitions {
					ready = false
				}
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for leaders of topics %v: %w", names, err)
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// PartitionLag is a consumer group's position in one partition.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Committed int64  `json:"committed"` // -1: nothing committed
	End       int64  `json:"end"`       // the high watermark
	Lag       int64  `json:"lag"`
}

// GroupLag returns group's committed offset, the end offset and the lag of
// every partition of topics on cfg's brokers.
func GroupLag(ctx context.Context, cfg Config, group string, topics ...string) ([]PartitionLag, error) {
	cl, tr, err := cfg.client(10 * time.Second)
	if err != nil {
		return nil, err
	}
	defer tr.CloseIdleConnections()
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("reading kafka metadata: %w", err)
	}
	parts := map[string][]int{}
	ends := map[string][]kafka.OffsetRequest{}
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("kafka topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			parts[t.Name] = append(parts[t.Name], p.ID)
			ends[t.Name] = append(ends[t.Name], kafka.LastOffsetOf(p.ID))
		}
	}
	of, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: parts})
	if err != nil {
		return nil, fmt.Errorf("fetching offsets of group %s: %w", group, err)
	}
	if of.Error != nil {
		return nil, fmt.Errorf("fetching offsets of group %s: %w", group, of.Error)
	}
	lo, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: ends})
	if err != nil {
		return nil, fmt.Errorf("listing end offsets: %w", err)
	}
	end := map[string]map[int]int64{}
	for t, ps := range lo.Topics {
		end[t] = map[int]int64{}
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %w", t, p.Partition, p.Error)
			}
			end[t][p.Partition] = p.LastOffset
		}
	}
	var out []PartitionLag
	for t, ps := range of.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return nil, fmt.Errorf("committed offset of %s/%d: %w", t, p.Partition, p.Error)
			}
			pl := PartitionLag{Topic: t, Partition: p.Partition, Committed: p.CommittedOffset, End: end[t][p.Partition]}
			pl.Lag = pl.End - max(pl.Committed, 0)
			out = append(out, pl)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out, nil
}

// ClusterInfo is what status shows of the Kafka cluster.
type ClusterInfo struct {
	ClusterID    string   `json:"cluster_id"`
	Brokers      []string `json:"brokers"`
	ControllerID int      `json:"controller_id"`
	// Protocol names the highest Fetch and Produce API versions the
	// bootstrap broker serves (Kafka reports no release string).
	Protocol string `json:"protocol"`
}

// Cluster reads the metadata and API versions of cfg's cluster: a
// reachability check.
func Cluster(ctx context.Context, cfg Config) (ClusterInfo, error) {
	cl, tr, err := cfg.client(5 * time.Second)
	if err != nil {
		return ClusterInfo{}, err
	}
	defer tr.CloseIdleConnections()
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{}})
	if err != nil {
		return ClusterInfo{}, fmt.Errorf("reading kafka metadata from %v: %w", cl.Addr, err)
	}
	info := ClusterInfo{ClusterID: md.ClusterID, ControllerID: md.Controller.ID}
	for _, b := range md.Brokers {
		info.Brokers = append(info.Brokers, net.JoinHostPort(b.Host, strconv.Itoa(b.Port)))
	}
	av, err := cl.ApiVersions(ctx, &kafka.ApiVersionsRequest{})
	if err != nil {
		return info, fmt.Errorf("reading kafka API versions: %w", err)
	}
	var fetch, produce int
	for _, k := range av.ApiKeys {
		switch k.ApiName {
		case "Fetch":
			fetch = k.MaxVersion
		case "Produce":
			produce = k.MaxVersion
		}
	}
	info.Protocol = fmt.Sprintf("fetch v%d, produce v%d", fetch, produce)
	return info, nil
}

// DeleteTopics deletes topics on the cluster's controller (benchmarks and
// tests clean up with it).
func DeleteTopics(ctx context.Context, cfg Config, topics ...string) error {
	conn, cc, err := dialController(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	defer cc.Close()
	if err := cc.DeleteTopics(topics...); err != nil {
		return fmt.Errorf("deleting kafka topics %v: %w", topics, err)
	}
	return nil
}

// ResetGroupOffsets commits offset for every partition of topic on behalf
// of group, which must have no active members (an administrative commit,
// like kafka-consumer-groups.sh --reset-offsets). Benchmarks use it to make
// another consumer start from the beginning.
func ResetGroupOffsets(ctx context.Context, cfg Config, group, topic string, offset int64) error {
	cl, tr, err := cfg.client(10 * time.Second)
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return fmt.Errorf("reading kafka metadata: %w", err)
	}
	var commits []kafka.OffsetCommit
	for _, t := range md.Topics {
		if t.Error != nil {
			return fmt.Errorf("kafka topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			commits = append(commits, kafka.OffsetCommit{Partition: p.ID, Offset: offset})
		}
	}
	resp, err := cl.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{topic: commits}})
	if err != nil {
		return fmt.Errorf("committing offsets of group %s: %w", group, err)
	}
	var errs []error
	for _, ps := range resp.Topics {
		for _, p := range ps {
			if p.Error != nil {
				errs = append(errs, fmt.Errorf("committing %s/%d for group %s: %w", topic, p.Partition, group, p.Error))
			}
		}
	}
	return errors.Join(errs...)
}
