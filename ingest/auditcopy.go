package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/store"
)

// AuditCopier copies every audit entry to a Kafka topic (audit.kafka_topic)
// as JSON keyed by its writer, so that the audit trail has a second record
// that a ClickHouse user cannot erase. Each copy is written synchronously
// and acknowledged by every in-sync replica before the audited action goes
// ahead. It implements store.AuditCopier.
type AuditCopier struct {
	w *kafka.Writer
}

// NewAuditCopier returns a copier to topic on cfg's brokers, with cfg's TLS
// and SASL settings. The topic must exist (CreateTopics); give it a retention
// at least as long as retention.audit_days.
func NewAuditCopier(cfg Config, topic string) (*AuditCopier, error) {
	cfg = cfg.WithDefaults()
	tr, err := cfg.Transport()
	if err != nil {
		return nil, err
	}
	return &AuditCopier{w: &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Transport:    tr,
		Topic:        topic,
		Balancer:     kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		BatchSize:    1,
		WriteTimeout: 10 * time.Second,
		MaxAttempts:  3,
	}}, nil
}

// CopyAudit writes one entry and waits for the broker's acknowledgement.
func (c *AuditCopier) CopyAudit(ctx context.Context, a store.AuditEntry) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := c.w.WriteMessages(ctx, kafka.Message{Key: []byte(a.Writer), Value: b}); err != nil {
		return fmt.Errorf("copying audit entry to kafka topic %s: %w", c.w.Topic, summarize(err))
	}
	return nil
}

// Close flushes and closes the writer.
func (c *AuditCopier) Close() error { return closeWriter(c.w) }

var _ store.AuditCopier = (*AuditCopier)(nil)

// ReadAuditCopy reads every audit entry held in topic, from the first
// offset each partition still has to its end, for comparing the copy with
// the audit_log table.
func ReadAuditCopy(ctx context.Context, cfg Config, topic string) ([]store.AuditEntry, error) {
	cfg = cfg.WithDefaults()
	cl, tr, err := cfg.client(10 * time.Second)
	if err != nil {
		return nil, err
	}
	defer tr.CloseIdleConnections()
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("reading kafka metadata: %w", err)
	}
	var reqs []kafka.OffsetRequest
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("kafka topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
	}
	lo, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %s: %w", topic, err)
	}
	dialer, err := cfg.Dialer()
	if err != nil {
		return nil, err
	}
	var out []store.AuditEntry
	for _, p := range lo.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", topic, p.Partition, p.Error)
		}
		if p.FirstOffset >= p.LastOffset {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.Brokers, Topic: topic, Partition: p.Partition, Dialer: dialer,
			MinBytes: 1, MaxBytes: maxRequestBytes, MaxWait: 200*time.Millisecond + fetchRoundTrip})
		err := r.SetOffset(p.FirstOffset)
		for err == nil {
			var m kafka.Message
			if m, err = r.ReadMessage(ctx); err != nil {
				break
			}
			var a store.AuditEntry
			if jerr := json.Unmarshal(m.Value, &a); jerr != nil {
				err = fmt.Errorf("audit copy %s/%d offset %d: %w", topic, p.Partition, m.Offset, jerr)
				break
			}
			out = append(out, a)
			if m.Offset+1 >= p.LastOffset {
				break
			}
		}
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("reading audit copy %s/%d: %w", topic, p.Partition, err)
		}
	}
	return out, nil
}
