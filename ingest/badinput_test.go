package ingest

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
)

// TestTenMegabyteMessage is the bad-input matrix's row that needs the real
// path: a 10 MB message on an access topic whose broker limit lets it in
// (max.message.bytes 16 MiB), between two valid events, larger than
// ingest's fetch_max_bytes (4 MiB). Ingest must not stall on it: it is
// dead-lettered as too_large (the dead-letter copy cut to fit the
// dead-letter topic, with truncated_from), both valid events are stored,
// and every offset is committed.
func TestTenMegabyteMessage(t *testing.T) {
	cfg := testConfig(t)
	cfg.AccessTopic += "-big"
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", cfg.Brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := conn.Controller()
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := kafka.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		t.Fatal(err)
	}
	err = cc.CreateTopics(kafka.TopicConfig{Topic: cfg.AccessTopic, NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: strconv.Itoa(16 << 20)}}})
	if err != nil {
		cc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.DeleteTopics(cfg.AccessTopic); cc.Close() })

	now := time.Now().UTC()
	big := strings.Replace(accessJSON("big-1", now, "agent-big"), `{`, `{"transcript":"`+strings.Repeat("x", 10<<20)+`",`, 1)
	w := &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.AccessTopic, BatchBytes: 16 << 20, BatchSize: 1,
		RequiredAcks: kafka.RequireAll}
	for _, v := range []string{accessJSON("before-big", now, "agent-big"), big, accessJSON("after-big", now, "agent-big")} {
		for try := 0; ; try++ {
			err := w.WriteMessages(t.Context(), kafka.Message{Key: []byte("agent-big"), Value: []byte(v)})
			if err == nil {
				break
			}
			if !errors.Is(err, kafka.UnknownTopicOrPartition) || try == 50 { // a new topic takes a moment to appear
				t.Fatalf("producing a %d-byte message: %v", len(v), err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	w.Close()

	st := storetest.New(t)
	m := NewMetrics(nil)
	runToCommitted(t, cfg, st, m, "the 10 MB message")
	sum, err := st.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != 2 || sum.DeadLetters[string(models.ReasonTooLarge)] != 1 || len(sum.DeadLetters) != 1 {
		t.Fatalf("stored %d events, dead letters %v; want 2 and one too_large", sum.Events, sum.DeadLetters)
	}
	dl := readAll(t, cfg.Brokers, cfg.DeadLetterTopic, 2)
	if len(dl) != 1 {
		t.Fatalf("%d dead-letter messages, want 1", len(dl))
	}
	h := map[string]string{}
	for _, x := range dl[0].Headers {
		h[x.Key] = string(x.Value)
	}
	if h["reason"] != "too_large" || h["truncated_from"] != strconv.Itoa(len(big)) || len(dl[0].Value) > maxDeadLetterBytes || len(dl[0].Value) < maxDeadLetterBytes-2<<10 ||
		!strings.HasPrefix(big, string(dl[0].Value)) {
		t.Fatalf("dead letter headers %v, value %d bytes", h, len(dl[0].Value))
	}
}
