package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/models"
)

// Producer sends JSONL events to Kafka: access.v1 lines to the access topic,
// lines with "schema":"consent.v1" to the consent topic. The message key is
// the actor id (the subject id for consents), partitioned with murmur2 like
// Kafka's Java clients, so that one actor's events stay in order.
type Producer struct {
	w       *kafka.Writer
	access  string
	consent string
}

// NewProducer returns a Producer for cfg's brokers, connecting with cfg's
// TLS and SASL settings. topic, when not empty, overrides the access topic.
func NewProducer(cfg Config, topic string) (*Producer, error) {
	cfg = cfg.WithDefaults()
	if topic == "" {
		topic = cfg.AccessTopic
	}
	tr, err := cfg.Transport()
	if err != nil {
		return nil, err
	}
	return &Producer{
		w: &kafka.Writer{
			Addr:         kafka.TCP(cfg.Brokers...),
			Transport:    tr,
			Balancer:     kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll,
			BatchSize:    10000,
			BatchBytes:   maxRequestBytes, // the broker's default message.max.bytes
			BatchTimeout: 10 * time.Millisecond,
			WriteTimeout: 30 * time.Second,
			MaxAttempts:  5,
		},
		access:  topic,
		consent: cfg.ConsentTopic,
	}, nil
}

// Close flushes and closes the writer.
func (p *Producer) Close() error { return closeWriter(p.w) }

// ProduceStats counts what ProduceJSONL sent.
type ProduceStats struct {
	Lines    int // non-empty lines read
	Access   int // sent to the access topic
	Consents int // sent to the consent topic
	Bytes    int64
}

// ProduceJSONL sends every non-empty line of r as one message. rate, when
// positive, bounds messages per second. progress, when not nil, is called
// after each chunk is acknowledged. A line that is not valid JSON is still
// sent to the access topic, unkeyed: ingest dead-letters it, which is how a
// platform team tests its error handling.
func (p *Producer) ProduceJSONL(ctx context.Context, r io.Reader, rate int, progress func(ProduceStats)) (ProduceStats, error) {
	var st ProduceStats
	chunk := 5000
	if rate > 0 {
		chunk = max(1, min(chunk, rate/20))
	}
	br := bufio.NewReaderSize(r, 1<<20)
	buf := make([]kafka.Message, 0, chunk)
	start := time.Now()
	send := func() error {
		if len(buf) == 0 {
			return nil
		}
		if err := p.w.WriteMessages(ctx, buf...); err != nil {
			return fmt.Errorf("producing %d messages after %d: %w", len(buf), st.Access+st.Consents, summarize(err))
		}
		for _, m := range buf {
			if m.Topic == p.consent {
				st.Consents++
			} else {
				st.Access++
			}
			st.Bytes += int64(len(m.Value))
		}
		buf = buf[:0]
		if progress != nil {
			progress(st)
		}
		if rate > 0 {
			// Sleep until the time the messages sent so far are due.
			due := start.Add(time.Duration(float64(st.Access+st.Consents) / float64(rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 && !sleep(ctx, d) {
				return ctx.Err()
			}
		}
		return nil
	}
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			st.Lines++
			buf = append(buf, p.message(bytes.TrimRight(line, "\r\n")))
			if len(buf) >= chunk {
				if serr := send(); serr != nil {
					return st, serr
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("reading line %d: %w", st.Lines+1, err)
		}
	}
	return st, send()
}

// message routes one line and picks its key.
func (p *Producer) message(line []byte) kafka.Message {
	var probe struct {
		Schema    string `json:"schema"`
		SubjectID string `json:"subject_id"`
		Actor     struct {
			ID string `json:"id"`
		} `json:"actor"`
	}
	_ = json.Unmarshal(line, &probe) // a bad line is sent unkeyed
	m := kafka.Message{Topic: p.access, Value: line}
	if probe.Schema == models.SchemaConsent {
		m.Topic = p.consent
		if probe.SubjectID != "" {
			m.Key = []byte(probe.SubjectID)
		}
	} else if probe.Actor.ID != "" {
		m.Key = []byte(probe.Actor.ID)
	}
	return m
}

// maxRequestBytes bounds one produce batch per partition: Kafka's default
// message.max.bytes is 1 MB.
const maxRequestBytes = 1_000_000

// summarize shortens kafka.WriteErrors (one error per message) to a count
// and the distinct errors.
func summarize(err error) error {
	var we kafka.WriteErrors
	if !errors.As(err, &we) {
		return err
	}
	seen := map[string]bool{}
	var distinct []error
	for _, e := range we {
		if e != nil && !seen[e.Error()] {
			seen[e.Error()] = true
			distinct = append(distinct, e)
		}
	}
	return fmt.Errorf("%d of %d messages failed: %w", we.Count(), len(we), errors.Join(distinct...))
}
