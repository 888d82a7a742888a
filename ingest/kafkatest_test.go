package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/pseudonym"
)

// testBrokers returns the brokers of the stack's Kafka:
// $CHATWARDEN_KAFKA_BROKERS or 127.0.0.1:9092.
func testBrokers() []string {
	if b := os.Getenv("CHATWARDEN_KAFKA_BROKERS"); b != "" {
		return strings.Split(b, ",")
	}
	return []string{"127.0.0.1:9092"}
}

// testConfig returns an ingest config with unique topics (created now) and
// a unique group. A broker that cannot be reached fails the test.
func testConfig(t *testing.T) Config {
	t.Helper()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	cfg := Config{
		Brokers:         testBrokers(),
		AccessTopic:     "test-" + id + "-access",
		ConsentTopic:    "test-" + id + "-consent",
		DeadLetterTopic: "test-" + id + "-deadletter",
		Group:           "test-" + id,
		BatchSize:       500,
		Linger:          50 * time.Millisecond,
		SessionTimeout:  6 * time.Second,
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := CreateTopics(ctx, cfg,
		TopicSpec{cfg.AccessTopic, 4}, TopicSpec{cfg.ConsentTopic, 2}, TopicSpec{cfg.DeadLetterTopic, 2})
	if err != nil {
		t.Fatalf("kafka at %v is required (start it with `make stack`): %v", cfg.Brokers, err)
	}
	t.Cleanup(func() {
		conn, err := kafka.Dial("tcp", cfg.Brokers[0])
		if err != nil {
			return
		}
		defer conn.Close()
		ctrl, err := conn.Controller()
		if err != nil {
			return
		}
		cc, err := kafka.Dial("tcp", ctrl.Host+":"+itoa(ctrl.Port))
		if err != nil {
			return
		}
		defer cc.Close()
		_ = cc.DeleteTopics(cfg.AccessTopic, cfg.ConsentTopic, cfg.DeadLetterTopic)
	})
	return cfg
}

// testPseudonymizer returns a real HMAC pseudonymizer with a random key.
func testPseudonymizer(t *testing.T) *pseudonym.Pseudonymizer {
	t.Helper()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	p, err := pseudonym.New(pseudonym.Key{ID: '1', Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readAll reads every message of topic's partitions up to their current end.
func readAll(t *testing.T, brokers []string, topic string, partitions int) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	for p := range partitions {
		conn, err := kafka.DialLeader(t.Context(), "tcp", brokers[0], topic, p)
		if err != nil {
			t.Fatalf("dialing leader of %s/%d: %v", topic, p, err)
		}
		first, last, err := conn.ReadOffsets()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if last == first {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: time.Second}) // kafka-go gives the answer MaxWait/4 after the broker's wait: 250 ms, not 25 ms, under load
		_ = r.SetOffset(first)
		for off := first; off < last; off++ {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			m, err := r.ReadMessage(ctx)
			cancel()
			if err != nil {
				t.Fatalf("reading %s/%d at %d: %v", topic, p, off, err)
			}
			out = append(out, m)
		}
		r.Close()
	}
	return out
}
