package ingest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/store"
)

// TestDestinationThroughBroker (issue 14 item 2), through the real broker
// and ClickHouse: a share with a destination is stored with it and reaches
// the shares table; a destination on a read is dead-lettered as bad_value
// naming destination; an e-mail address as destination is pii_in_payload.
func TestDestinationThroughBroker(t *testing.T) {
	cfg := testConfig(t)
	now := time.Now().UTC().Add(-time.Minute)
	share := strings.Replace(accessJSON("dest-share", now, "agent-d"), `"action":"read"`, `"action":"share"`, 1)
	share = strings.Replace(share, `"purpose"`, `"records":40,"destination":"acme-analytics.example","purpose"`, 1)
	onRead := strings.Replace(accessJSON("dest-read", now, "agent-d"), `"purpose"`, `"destination":"acme-analytics.example","purpose"`, 1)
	email := strings.Replace(share, `"acme-analytics.example"`, `"ops.team@acme-analytics.example"`, 1)
	email = strings.Replace(email, `"dest-share"`, `"dest-email"`, 1)
	w := &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.AccessTopic, BatchSize: 1,
		RequiredAcks: kafka.RequireAll, Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 })}
	defer w.Close()
	for _, v := range []string{share, onRead, email} {
		for try := 0; ; try++ {
			err := w.WriteMessages(t.Context(), kafka.Message{Key: []byte("agent-d"), Value: []byte(v)})
			if err == nil {
				break
			}
			if !errors.Is(err, kafka.UnknownTopicOrPartition) || try == 50 {
				t.Fatalf("producing: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	st := storetest.New(t)
	runToCommitted(t, cfg, st, NewMetrics(nil), "destination events")

	sum, err := st.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != 1 || sum.DeadLetters[string(models.ReasonBadValue)] != 1 || sum.DeadLetters[string(models.ReasonPIIInPayload)] != 1 {
		t.Fatalf("stored %d events, dead letters %v; want 1, one bad_value and one pii_in_payload", sum.Events, sum.DeadLetters)
	}
	h, _, err := st.History(t.Context(), store.HistoryFilter{ActorID: "agent-d", From: now.Add(-time.Hour), To: now.Add(time.Hour)})
	if err != nil || len(h) != 1 || h[0].Destination != "acme-analytics.example" || h[0].Action != models.ActionShare {
		t.Fatalf("history %+v %v", h, err)
	}
	tot, err := st.SharedByDestination(t.Context(), nil, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil || len(tot) != 1 || tot[0].Destination != "acme-analytics.example" || tot[0].Records != 40 || tot[0].Subjects != 1 {
		t.Fatalf("shares %+v %v", tot, err)
	}
	fields := map[string]bool{}
	for _, m := range readAll(t, cfg.Brokers, cfg.DeadLetterTopic, 2) {
		for _, x := range m.Headers {
			if x.Key == "field" {
				fields[string(x.Value)] = true
			}
		}
		if strings.Contains(string(m.Value), "ops.team@") {
			t.Fatalf("dead letter holds the e-mail address: %s", m.Value)
		}
	}
	if !fields["destination"] || len(fields) != 1 {
		t.Fatalf("dead-letter fields %v, want destination only", fields)
	}
}
