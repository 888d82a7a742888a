package sim

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/models"
)

func brokerAddr() string {
	if b := os.Getenv("CHATWARDEN_KAFKA_BROKERS"); b != "" {
		return b
	}
	return "127.0.0.1:9092"
}

// createTopic creates a unique topic on the real broker and deletes it at cleanup.
func createTopic(t *testing.T, name string, parts int) {
	t.Helper()
	conn, err := kafka.Dial("tcp", brokerAddr())
	if err != nil {
		t.Fatalf("kafka at %s is not reachable (start it with scripts/stack.sh up): %v", brokerAddr(), err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		t.Fatalf("finding kafka controller: %v", err)
	}
	cc, err := kafka.Dial("tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		t.Fatalf("dialing kafka controller: %v", err)
	}
	defer cc.Close()
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: name, NumPartitions: parts, ReplicationFactor: 1}); err != nil {
		t.Fatalf("creating topic %s: %v", name, err)
	}
	// wait until every partition has a leader: a writer sent to a topic
	// whose metadata has not spread yet gets Unknown Topic Or Partition
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ps, err := conn.ReadPartitions(name)
		ready := err == nil && len(ps) == parts
		for _, p := range ps {
			ready = ready && p.Leader.Host != ""
		}
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s has no leaders after 3 minutes: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() {
		if c, err := kafka.Dial("tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port))); err == nil {
			_ = c.DeleteTopics(name)
			c.Close()
		}
	})
}

// readAll reads every message of every partition of topic up to its end.
func readAll(t *testing.T, ctx context.Context, topic string, parts int) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	for p := range parts {
		conn, err := kafka.DialLeader(ctx, "tcp", brokerAddr(), topic, p)
		if err != nil {
			t.Fatalf("dialing leader of %s/%d: %v", topic, p, err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatalf("last offset of %s/%d: %v", topic, p, err)
		}
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{brokerAddr()}, Topic: topic, Partition: p, MaxWait: time.Second}) // kafka-go gives the answer MaxWait/4 after the broker's wait: 250 ms, not 25 ms, under load
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("reading %s/%d: %v", topic, p, err)
			}
			out = append(out, m)
			if m.Offset+1 >= last {
				break
			}
		}
		r.Close()
	}
	return out
}

func TestKafkaWriterRealBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	suffix := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	access, consent := "test.sim.access."+suffix, "test.sim.consent."+suffix
	createTopic(t, access, 4)
	createTopic(t, consent, 2)

	g, err := New(Config{Seed: 5, Start: time.Date(2026, 10, 20, 8, 0, 0, 0, time.UTC), Duration: 3 * time.Hour, Actors: 40,
		Attacks: []string{KindBotCrossCustomer, KindBulkExport}, Compact: true})
	if err != nil {
		t.Fatal(err)
	}
	kw := NewKafkaWriter([]string{brokerAddr()}, access, consent)
	defer kw.Close()
	var b Batch
	wantAccess, wantConsent := 0, 0
	for g.Next(&b) {
		for _, l := range b.Lines {
			if l.Consent {
				wantConsent++
			} else {
				wantAccess++
			}
		}
		if err := kw.Add(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	if err := kw.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if wantAccess < 1000 || wantConsent == 0 {
		t.Fatalf("generated %d access and %d consent events; want more", wantAccess, wantConsent)
	}
	if got := kw.Sent(); got != uint64(wantAccess+wantConsent) {
		t.Fatalf("Sent() = %d, want %d", got, wantAccess+wantConsent)
	}

	msgs := readAll(t, ctx, access, 4)
	if len(msgs) != wantAccess {
		t.Fatalf("read %d access messages, wrote %d", len(msgs), wantAccess)
	}
	partOf := map[string]int{}
	for _, m := range msgs {
		e, err := models.DecodeAccess(m.Value, m.Time.Add(time.Minute), models.Limits{})
		if err != nil {
			t.Fatalf("message %s: %v", m.Value, err)
		}
		if string(m.Key) != e.Actor.ID {
			t.Fatalf("key %q for actor %q", m.Key, e.Actor.ID)
		}
		if p, ok := partOf[e.Actor.ID]; ok && p != m.Partition {
			t.Fatalf("actor %s in partitions %d and %d", e.Actor.ID, p, m.Partition)
		}
		partOf[e.Actor.ID] = m.Partition
	}
	cmsgs := readAll(t, ctx, consent, 2)
	if len(cmsgs) != wantConsent {
		t.Fatalf("read %d consent messages, wrote %d", len(cmsgs), wantConsent)
	}
	for _, m := range cmsgs {
		c, err := models.DecodeConsent(m.Value, m.Time.Add(time.Minute), models.Limits{})
		if err != nil || string(m.Key) != c.SubjectID {
			t.Fatalf("consent message key %q value %s: %v", m.Key, m.Value, err)
		}
	}
}

// TestKafkaWriterEventsAheadOfTheBroker: a simulated clock may run ahead of
// the wall clock (make demo's live stream runs 10 simulated seconds a
// second). The writer stamps records with their send time, so events three
// hours ahead are accepted by the broker, whose Kafka 4 default rejects
// records stamped more than an hour ahead (log.message.timestamp.after.max.ms),
// and the record times stay the wall clock's.
func TestKafkaWriterEventsAheadOfTheBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	suffix := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	access, consent := "test.sim.ahead.access."+suffix, "test.sim.ahead.consent."+suffix
	createTopic(t, access, 1)
	createTopic(t, consent, 1)

	sent := time.Now()
	g, err := New(Config{Seed: 7, Start: sent.Add(3 * time.Hour).UTC().Truncate(time.Minute), Duration: 20 * time.Minute, Actors: 10, Compact: true})
	if err != nil {
		t.Fatal(err)
	}
	kw := NewKafkaWriter([]string{brokerAddr()}, access, consent)
	defer kw.Close()
	var b Batch
	want := 0
	for g.Next(&b) {
		for _, l := range b.Lines {
			if !l.Consent {
				want++
			}
		}
		if err := kw.Add(ctx, &b); err != nil {
			t.Fatal(err)
		}
	}
	if err := kw.Flush(ctx); err != nil {
		t.Fatalf("events three hours ahead: %v", err)
	}
	if want == 0 {
		t.Fatal("the simulator generated no access events")
	}
	msgs := readAll(t, ctx, access, 1)
	if len(msgs) != want {
		t.Fatalf("read %d access messages, wrote %d", len(msgs), want)
	}
	for _, m := range msgs {
		if d := m.Time.Sub(sent); d < -time.Minute || d > time.Minute {
			t.Fatalf("record time %s, sent at %s: want the send time", m.Time, sent)
		}
	}
}
