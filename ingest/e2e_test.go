package ingest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/pseudonym"
)

// TestEndToEnd produces valid events (some repeated), consents and one
// malformed message of every reason code through the real Kafka, ingests
// them into a fresh ClickHouse database and checks what is visible.
func TestEndToEnd(t *testing.T) {
	cfg := testConfig(t)
	st := storetest.New(t)
	p := testPseudonymizer(t)
	now := time.Now().UTC()

	const unique, repeats = 3000, 400
	var buf bytes.Buffer
	for i := range unique {
		fmt.Fprintln(&buf, accessJSON(fmt.Sprintf("ev-%05d", i), now.Add(-time.Duration(i)*time.Second), fmt.Sprintf("agent-%d", i%37)))
	}
	for i := range repeats { // the same event_id (and bytes) again
		fmt.Fprintln(&buf, accessJSON(fmt.Sprintf("ev-%05d", i*7), now.Add(-time.Duration(i*7)*time.Second), fmt.Sprintf("agent-%d", (i*7)%37)))
	}
	fmt.Fprintln(&buf, consentJSON("cust-1", now.Add(-time.Hour), true))
	fmt.Fprintln(&buf, consentJSON("cust-1", now.Add(-time.Minute), false))
	bads := badMessages(now)
	for _, b := range bads {
		fmt.Fprintln(&buf, b.value)
	}

	prod, err := NewProducer(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := prod.ProduceJSONL(t.Context(), &buf, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	prod.Close()
	if ps.Access != unique+repeats+len(bads) || ps.Consents != 2 {
		t.Fatalf("produced %+v", ps)
	}

	var (
		mu       sync.Mutex
		observed []models.Event
	)
	obs := func(_ context.Context, _ time.Time, evs []models.Event, _ []models.Consent) {
		mu.Lock()
		observed = append(observed, evs...)
		mu.Unlock()
	}
	m := NewMetrics(nil)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, cfg, st, p, obs, m, nil) }()

	deadline := time.Now().Add(5 * time.Minute) // generous: a limit for a stuck run, not a speed target
	var lag int64 = -1
	for time.Now().Before(deadline) {
		ls, err := GroupLag(t.Context(), cfg, cfg.Group, cfg.AccessTopic, cfg.ConsentTopic)
		if err == nil {
			lag = 0
			for _, l := range ls {
				lag += l.Lag
			}
			if lag == 0 {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("ingest: %v", err)
	}
	if lag != 0 {
		t.Fatalf("group lag %d after 5 minutes: offsets not committed", lag)
	}

	sum, err := st.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != unique || sum.DistinctIDs != unique {
		t.Errorf("stored %d events, %d distinct ids; want %d of each", sum.Events, sum.DistinctIDs, unique)
	}
	if sum.Consents != 2 {
		t.Errorf("stored %d consents, want 2", sum.Consents)
	}
	for _, b := range bads {
		if sum.DeadLetters[string(b.reason)] != 1 {
			t.Errorf("dead letters with reason %s: %d, want 1", b.reason, sum.DeadLetters[string(b.reason)])
		}
	}
	if len(sum.DeadLetters) != len(bads) {
		t.Errorf("dead letter reasons %v, want exactly %d", sum.DeadLetters, len(bads))
	}
	if got := testutil.ToFloat64(m.Duplicates); got != repeats {
		t.Errorf("duplicates dropped = %v, want %d", got, repeats)
	}

	// The dead-letter topic has each original message with its reason.
	dl := readAll(t, cfg.Brokers, cfg.DeadLetterTopic, 2)
	if len(dl) != len(bads) {
		t.Fatalf("dead-letter topic has %d messages, want %d", len(dl), len(bads))
	}
	byReason := map[string][]byte{}
	for _, msg := range dl {
		h := map[string]string{}
		for _, x := range msg.Headers {
			h[x.Key] = string(x.Value)
		}
		if h["source_topic"] != cfg.AccessTopic || h["source_offset"] == "" || h["source_partition"] == "" {
			t.Errorf("dead letter headers %v", h)
		}
		byReason[h["reason"]] = msg.Value
	}
	for _, b := range bads {
		if !bytes.Equal(byReason[string(b.reason)], []byte(b.dlqValue())) {
			t.Errorf("dead letter %s: value is not the original message", b.reason)
		}
	}

	// What was stored holds pseudonyms, never the raw customer ids.
	mu.Lock()
	defer mu.Unlock()
	if len(observed) != unique {
		t.Fatalf("observer saw %d events, want %d", len(observed), unique)
	}
	for _, e := range observed[:50] {
		if !pseudonym.IsPseudonym(e.SubjectID) || !pseudonym.IsPseudonym(e.Resource.ID) || e.SubjectID != e.Conversation.SubjectID {
			t.Fatalf("event %s not pseudonymized: subject %q resource %q", e.EventID, e.SubjectID, e.Resource.ID)
		}
	}
}
