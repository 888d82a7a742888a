package sim

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Default topics (the brief's shared defaults).
const (
	DefaultAccessTopic  = "chatwarden.access.v1"
	DefaultConsentTopic = "chatwarden.consent.v1"
)

// KafkaWriter sends generated lines to Kafka: access events to one topic,
// consent events to another, keyed by actor id (consents by subject), in
// batches.
type KafkaWriter struct {
	w              *kafka.Writer
	tr             *kafka.Transport
	access, consen string
	msgs           []kafka.Message
	buf            []byte
	flushAt        int
	sent           uint64
}

// NewKafkaWriter returns a writer to the brokers. Topics must exist: the
// writer does not create them.
func NewKafkaWriter(brokers []string, accessTopic, consentTopic string) *KafkaWriter {
	// Its own transport, not kafka-go's process-wide default: that one
	// keeps the cluster's metadata for 6 s, so a writer made just after its
	// topics were created could be told they do not exist.
	tr := &kafka.Transport{}
	return &KafkaWriter{
		tr: tr,
		w: &kafka.Writer{
			Transport:    tr,
			Addr:         kafka.TCP(brokers...),
			Balancer:     &kafka.Hash{},
			BatchSize:    1000,
			BatchBytes:   8 << 20,
			BatchTimeout: 10 * time.Millisecond,
			RequiredAcks: kafka.RequireAll,
			Compression:  kafka.Lz4,
		},
		access: accessTopic, consen: consentTopic, flushAt: 8000,
	}
}

// Add queues every line of b, sending when enough are queued.
func (k *KafkaWriter) Add(ctx context.Context, b *Batch) error {
	for i := range b.Lines {
		if err := k.AddLine(ctx, b, i); err != nil {
			return err
		}
	}
	return nil
}

// AddLine queues line i of b, sending when enough are queued.
func (k *KafkaWriter) AddLine(ctx context.Context, b *Batch, i int) error {
	l := b.Lines[i]
	start := len(k.buf)
	k.buf = append(k.buf, b.Value(i)...)
	topic := k.access
	if l.Consent {
		topic = k.consen
	}
	// No Time: the record's timestamp is when it is sent, as a store's log
	// shipper would set it. The event's own time is in the value. Kafka 4
	// rejects records stamped more than an hour ahead of the broker
	// (log.message.timestamp.after.max.ms), which a simulated clock running
	// faster than the wall clock (make demo's live stream) passes within
	// minutes, and deletes records stamped older than the topic's retention.
	k.msgs = append(k.msgs, kafka.Message{Topic: topic, Key: []byte(l.Key), Value: k.buf[start:len(k.buf):len(k.buf)]})
	if len(k.msgs) >= k.flushAt {
		return k.Flush(ctx)
	}
	return nil
}

// Flush sends everything queued and waits for the broker's acknowledgement.
func (k *KafkaWriter) Flush(ctx context.Context) error {
	if len(k.msgs) == 0 {
		return nil
	}
	if err := k.w.WriteMessages(ctx, k.msgs...); err != nil {
		return fmt.Errorf("writing %d messages to kafka: %w", len(k.msgs), err)
	}
	k.sent += uint64(len(k.msgs))
	k.msgs, k.buf = k.msgs[:0], k.buf[:0]
	return nil
}

// Sent returns the number of messages acknowledged so far.
func (k *KafkaWriter) Sent() uint64 { return k.sent }

// Close flushes nothing; call Flush first. It releases the connections.
func (k *KafkaWriter) Close() error {
	err := k.w.Close()
	k.tr.CloseIdleConnections()
	return err
}
