package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/chatwarden/chatwarden/ingest"
)

// testTopics creates an access, a consent and a dead-letter topic and names
// a consumer group, all of one test's own (prefix-<random id>-...), on the
// stack's Kafka ($CHATWARDEN_KAFKA_BROKERS or 127.0.0.1:9092), with the
// given partitions per topic; the topics are deleted when the test ends. A
// missing Kafka fails the test.
func testTopics(t *testing.T, prefix string, access, consent, deadLetter int) ingest.Config {
	t.Helper()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	id := prefix + "-" + hex.EncodeToString(b)
	brokers := []string{"127.0.0.1:9092"}
	if v := os.Getenv("CHATWARDEN_KAFKA_BROKERS"); v != "" {
		brokers = strings.Split(v, ",")
	}
	ic := ingest.Config{Brokers: brokers, AccessTopic: id + "-access", ConsentTopic: id + "-consent",
		DeadLetterTopic: id + "-deadletter", Group: id}
	ctx, cancel := context.WithTimeout(t.Context(), exitWait)
	defer cancel()
	if err := ingest.CreateTopics(ctx, ic, ingest.TopicSpec{Name: ic.AccessTopic, Partitions: access},
		ingest.TopicSpec{Name: ic.ConsentTopic, Partitions: consent}, ingest.TopicSpec{Name: ic.DeadLetterTopic, Partitions: deadLetter}); err != nil {
		t.Fatalf("kafka at %v is required (start it with `make stack`): %v", brokers, err)
	}
	t.Cleanup(func() {
		_ = ingest.DeleteTopics(context.Background(), ic, ic.AccessTopic, ic.ConsentTopic, ic.DeadLetterTopic)
	})
	return ic
}
