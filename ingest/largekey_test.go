package ingest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/internal/storetest"
)

// TestLargeKeyDoesNotStopIngest (issue 10 item 2) sends, through the real
// broker with its default 1 MB message limit, a message with a ~100 KB key
// and a ~900 KB value (it fits the broker, but its dead-letter copy with the
// key and 900 KiB of value did not fit the dead-letter writer, which stopped
// ingest for good: every restart fetched the same batch), and a valid event
// with a 100 KB key, between two valid events. Ingest must keep running:
// both big-key messages dead-lettered as key_too_large with a capped key
// and their metadata headers, both valid events stored, every offset
// committed.
func TestLargeKeyDoesNotStopIngest(t *testing.T) {
	cfg := testConfig(t)
	now := time.Now().UTC()
	bigKey := []byte(strings.Repeat("k", 100<<10))
	bigValue := strings.Replace(accessJSON("bigkv", now, "agent-k"), `{`, `{"transcript":"`+strings.Repeat("x", 900<<10-600)+`",`, 1)
	w := &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.AccessTopic, BatchBytes: 2 << 20, BatchSize: 1,
		RequiredAcks: kafka.RequireAll, Balancer: &kafka.LeastBytes{}}
	msgs := []kafka.Message{
		{Key: []byte("agent-k"), Value: []byte(accessJSON("before-bigkey", now, "agent-k"))},
		{Key: bigKey, Value: []byte(bigValue)},
		{Key: bigKey, Value: []byte(accessJSON("valid-bigkey", now, "agent-k"))},
		{Key: []byte("agent-k"), Value: []byte(accessJSON("after-bigkey", now, "agent-k"))},
	}
	for _, m := range msgs {
		m.Partition = 0
		for try := 0; ; try++ {
			err := w.WriteMessages(t.Context(), m)
			if err == nil {
				break
			}
			if !errors.Is(err, kafka.UnknownTopicOrPartition) || try == 50 {
				t.Fatalf("producing a message with a %d-byte key and a %d-byte value: %v", len(m.Key), len(m.Value), err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	w.Close()

	st := storetest.New(t)
	runToCommitted(t, cfg, st, NewMetrics(nil), "a message with a 100 KB key")
	sum, err := st.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != 2 || sum.DeadLetters["key_too_large"] != 2 || len(sum.DeadLetters) != 1 {
		t.Fatalf("stored %d events, dead letters %v; want 2 and two key_too_large", sum.Events, sum.DeadLetters)
	}
	dl := readAll(t, cfg.Brokers, cfg.DeadLetterTopic, 2)
	if len(dl) != 2 {
		t.Fatalf("%d dead-letter messages, want 2", len(dl))
	}
	for _, m := range dl {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if h["reason"] != "key_too_large" || h["field"] != "key" || h["key_truncated_from"] != strconv.Itoa(len(bigKey)) ||
			h["source_topic"] != cfg.AccessTopic || h["source_offset"] == "" || len(m.Key) > maxDeadLetterKey ||
			!strings.HasPrefix(string(bigKey), string(m.Key)) {
			t.Fatalf("dead letter headers %v, key %d bytes", h, len(m.Key))
		}
	}
}

// TestDeadLetterCopyAlwaysFits: whatever the source key, value and
// validation detail, the dead-letter copy fits the dead-letter writer's
// limit and keeps its metadata headers.
func TestDeadLetterCopyAlwaysFits(t *testing.T) {
	for _, tc := range []struct {
		name             string
		key, val, detail int
	}{
		{"small", 10, 100, 10},
		{"big key big value", 100 << 10, 900 << 10, 10},
		{"huge key", 4 << 20, 10, 10},
		{"huge value", 0, 16 << 20, 10},
		{"huge detail", 1 << 20, 1 << 20, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := kafka.Message{Topic: "t", Partition: 3, Offset: 42, Key: []byte(strings.Repeat("k", tc.key)), Value: []byte(strings.Repeat("v", tc.val))}
			ve := asValidation(errors.New(strings.Repeat("d", tc.detail)))
			dl := deadLetterMessage(&m, ve)
			size := len(dl.Key) + len(dl.Value)
			h := map[string]string{}
			for _, x := range dl.Headers {
				size += len(x.Key) + len(x.Value)
				h[x.Key] = string(x.Value)
			}
			if size > maxDeadLetterBytes {
				t.Fatalf("dead-letter copy is %d bytes, limit %d", size, maxDeadLetterBytes)
			}
			if h["source_topic"] != "t" || h["source_partition"] != "3" || h["source_offset"] != "42" || h["reason"] != "bad_json" {
				t.Fatalf("headers %v", h)
			}
		})
	}
}

// smallWriter is a dead-letter writer whose topic refuses messages over
// limit bytes, like a dead-letter topic with a small max.message.bytes.
type smallWriter struct {
	limit int
	got   []kafka.Message
}

func (w *smallWriter) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	for i, m := range msgs {
		if len(m.Key)+len(m.Value) > w.limit {
			rest := append(append([]kafka.Message(nil), msgs[:i]...), msgs[i+1:]...)
			return kafka.MessageTooLargeError{Message: m, Remaining: rest}
		}
	}
	w.got = append(w.got, msgs...)
	return nil
}

// TestDeadLetterTopicTooSmall: a dead-letter topic that refuses even the
// capped copy gets the copy without key and value, with its headers, and
// the other copies unchanged; ingest goes on.
func TestDeadLetterTopicTooSmall(t *testing.T) {
	w := &smallWriter{limit: 1000}
	c, err := New(Config{}, Deps{Source: newFakeSource(&journal{}), DeadLetters: w, Store: &fakeStore{j: &journal{}}, Hasher: fakeHasher{}})
	if err != nil {
		t.Fatal(err)
	}
	big := kafka.Message{Topic: "t", Offset: 1, Value: []byte(strings.Repeat("v", 5000))}
	small := kafka.Message{Topic: "t", Offset: 2, Value: []byte("x")}
	ve := asValidation(errors.New("bad"))
	if err := c.writeDeadLetters(t.Context(), []kafka.Message{deadLetterMessage(&big, ve), deadLetterMessage(&small, ve)}); err != nil {
		t.Fatal(err)
	}
	if len(w.got) != 2 {
		t.Fatalf("%d copies written, want 2", len(w.got))
	}
	offsets := map[string]string{}
	for _, m := range w.got {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		offsets[h["source_offset"]] = h["content_dropped"]
	}
	if offsets["1"] != "5000" || offsets["2"] != "" {
		t.Fatalf("content_dropped by source offset: %v", offsets)
	}
}
