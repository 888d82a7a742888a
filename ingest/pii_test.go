package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/chatwarden/chatwarden/internal/storetest"
	"github.com/chatwarden/chatwarden/models"
	"github.com/chatwarden/chatwarden/pseudonym"
	"github.com/chatwarden/chatwarden/store"
)

const testCard = "4111111111111111"

// piiMessages are a valid event, an event with a card number in
// resource.id and an e-mail in a data category, and another valid event,
// all on partition 0 of cfg's access topic.
func piiMessages(t *testing.T, cfg Config, now time.Time) {
	t.Helper()
	bad := strings.Replace(accessJSON("pii-card", now, "agent-p"), `"rec-pii-card"`, `"`+testCard+`"`, 1)
	bad = strings.Replace(bad, `"fields":["email","phone"]`, `"fields":["email","jane.doe@example.com"]`, 1)
	if !strings.Contains(bad, testCard) || !strings.Contains(bad, "jane.doe@example.com") {
		t.Fatalf("fixture did not take: %s", bad)
	}
	w := &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.AccessTopic, BatchSize: 1,
		RequiredAcks: kafka.RequireAll, Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 })}
	defer w.Close()
	for _, v := range []string{accessJSON("pii-before", now, "agent-p"), bad, accessJSON("pii-after", now, "agent-p")} {
		for try := 0; ; try++ {
			err := w.WriteMessages(t.Context(), kafka.Message{Key: []byte("agent-p"), Value: []byte(v)})
			if err == nil {
				break
			}
			if !errors.Is(err, kafka.UnknownTopicOrPartition) || try == 50 {
				t.Fatalf("producing: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// TestPIIDeadLetteredMasked (issue 14 item 4), through the real broker: an
// event with a card number in resource.id (and an e-mail in fields) between
// two valid events is dead-lettered as pii_in_payload naming resource.id,
// its dead-letter copy holds neither the card number nor the e-mail (masked
// in place, still JSON), the valid neighbours are stored, every offset is
// committed, and chatwarden_ingest_pii_total counts it for its store.
func TestPIIDeadLetteredMasked(t *testing.T) {
	cfg := testConfig(t)
	now := time.Now().UTC().Add(-time.Minute)
	piiMessages(t, cfg, now)
	st := storetest.New(t)
	m := NewMetrics(nil)
	runToCommitted(t, cfg, st, m, "PII events")

	sum, err := st.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != 2 || sum.DeadLetters[string(models.ReasonPIIInPayload)] != 1 || len(sum.DeadLetters) != 1 {
		t.Fatalf("stored %d events, dead letters %v; want 2 and one pii_in_payload", sum.Events, sum.DeadLetters)
	}
	if len(sum.PIIByStore) != 1 || sum.PIIByStore["crm"] != 1 {
		t.Fatalf("pii dead letters by store %v, want crm=1", sum.PIIByStore)
	}
	ids, err := st.ExistingEventIDs(t.Context(), []string{"pii-before", "pii-card", "pii-after"})
	if err != nil {
		t.Fatal(err)
	}
	if !ids["pii-before"] || !ids["pii-after"] || ids["pii-card"] {
		t.Fatalf("stored ids %v; want the two neighbours only", ids)
	}
	dl := readAll(t, cfg.Brokers, cfg.DeadLetterTopic, 2)
	if len(dl) != 1 {
		t.Fatalf("%d dead-letter messages, want 1", len(dl))
	}
	h := map[string]string{}
	for _, x := range dl[0].Headers {
		h[x.Key] = string(x.Value)
	}
	if h["reason"] != "pii_in_payload" || h["field"] != "resource.id" || !strings.Contains(h["detail"], "card") {
		t.Fatalf("dead letter headers %v", h)
	}
	v := string(dl[0].Value)
	for _, secret := range []string{testCard, "jane.doe", "example.com"} {
		if strings.Contains(v, secret) || strings.Contains(h["detail"], secret) {
			t.Fatalf("dead-letter copy holds %q: %s %v", secret, v, h)
		}
	}
	if !strings.Contains(v, `"id":"****************"`) || !strings.Contains(v, `"event_id":"pii-card"`) {
		t.Fatalf("dead-letter copy not masked in place: %s", v)
	}
	if got := testutil.ToFloat64(m.PII.WithLabelValues("crm", "card")); got != 1 {
		t.Errorf(`pii_total{store="crm",kind="card"} = %v, want 1`, got)
	}
	if got := testutil.CollectAndCount(m.PII); got != 1 {
		t.Errorf("%d pii series, want 1 (the first kind found)", got)
	}
}

// TestPIIPseudonymized: with ingest.pii: pseudonymize the same event is
// stored, its resource.id and its e-mail data category replaced by keyed
// pseudonyms, counted per kind (card and email), and one finding is raised
// against its producer (store crm) naming each field, its kind and its
// masked value, never the raw one.
func TestPIIPseudonymized(t *testing.T) {
	cfg := testConfig(t)
	cfg.PII = PIIPseudonymize
	now := time.Now().UTC().Add(-time.Minute)
	piiMessages(t, cfg, now)
	st := storetest.New(t)
	m := NewMetrics(nil)
	var (
		mu       sync.Mutex
		findings []models.Finding
	)
	raise := FindingSink(func(_ context.Context, at time.Time, fs []models.Finding) {
		if at.IsZero() {
			t.Error("findings raised with a zero time")
		}
		mu.Lock()
		defer mu.Unlock()
		findings = append(findings, fs...)
	})
	runToCommitted(t, cfg, st, m, "PII events", WithFindings(raise))

	// One finding against the producer (store crm), with each field, its
	// kind and its value masked; never the raw value.
	mu.Lock()
	defer mu.Unlock()
	if len(findings) != 1 {
		t.Fatalf("%d findings, want 1 against the producer: %+v", len(findings), findings)
	}
	f := findings[0]
	if f.Detector != string(models.ReasonPIIInPayload) || f.Tenant != "acme" || f.ActorID != "crm" || f.Severity != models.SeverityMedium {
		t.Errorf("finding %s tenant %q actor %q severity %s; want pii_in_payload against producer crm of acme, medium", f.Detector, f.Tenant, f.ActorID, f.Severity)
	}
	want := []models.PIIHit{{Field: "resource.id", Kind: models.PIICard, Masked: models.MaskPII(testCard)},
		{Field: "fields[1]", Kind: models.PIIEmail, Masked: models.MaskPII("jane.doe@example.com")}}
	if !slices.Equal(f.Evidence.PII, want) || f.Evidence.Observed != 1 || !slices.Equal(f.Evidence.EventIDs, []string{"pii-card"}) ||
		!slices.Equal(f.Evidence.TopStores, []string{"crm"}) {
		t.Errorf("evidence pii %+v observed %v event ids %q stores %q; want %+v, 1 event pii-card, store crm",
			f.Evidence.PII, f.Evidence.Observed, f.Evidence.EventIDs, f.Evidence.TopStores, want)
	}
	js, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(js, []byte(testCard)) || bytes.Contains(js, []byte("jane.doe")) || !bytes.Contains(js, []byte(`"masked":"****************"`)) {
		t.Errorf("the finding must show the masked value, never the raw one: %s", js)
	}

	sum, err := st.Summary(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != 3 || len(sum.DeadLetters) != 0 {
		t.Fatalf("stored %d events, dead letters %v; want 3 and none", sum.Events, sum.DeadLetters)
	}
	evs, _, err := st.History(t.Context(), store.HistoryFilter{Tenant: "acme", ActorID: "agent-p", From: now.Add(-time.Hour), To: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var got *models.Event
	for i := range evs {
		if evs[i].EventID == "pii-card" {
			got = &evs[i]
		}
	}
	if got == nil {
		t.Fatalf("pii-card not in history (%d events)", len(evs))
	}
	if !pseudonym.IsPseudonym(got.Resource.ID) || len(got.Fields) != 2 || got.Fields[0] != "email" || !pseudonym.IsPseudonym(got.Fields[1]) {
		t.Fatalf("stored resource.id %q, fields %q; want pseudonyms in place of the card and the e-mail", got.Resource.ID, got.Fields)
	}
	for _, k := range []string{"card", "email"} {
		if n := testutil.ToFloat64(m.PII.WithLabelValues("crm", k)); n != 1 {
			t.Errorf(`pii_total{store="crm",kind=%q} = %v, want 1`, k, n)
		}
	}
}

// TestPIIConfig: ingest.pii takes dead_letter (the default) or
// pseudonymize, and names itself otherwise.
func TestPIIConfig(t *testing.T) {
	if got := (Config{}).WithDefaults().PII; got != PIIDeadLetter {
		t.Fatalf("default ingest.pii = %q", got)
	}
	for _, v := range []string{"", PIIDeadLetter, PIIPseudonymize} {
		if err := (Config{PII: v}).Validate(); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
	if err := (Config{PII: "drop"}).Validate(); err == nil || !strings.Contains(err.Error(), "ingest.pii") {
		t.Fatalf("ingest.pii: drop: %v", err)
	}
}

// TestPIIStoreLabelBounded: a store name that looks like personal data is
// not a label value, and the store label is bounded.
func TestPIIStoreLabelBounded(t *testing.T) {
	if got := piiStoreLabel(&models.Event{Store: "jane@example.com"}); got != "redacted" {
		t.Fatalf("label %q", got)
	}
	m := NewMetrics(nil)
	var cs []piiCount
	for i := range maxSourceLabels + 50 {
		cs = append(cs, piiCount{"store-" + itoa(i), models.PIICard})
	}
	m.countPII(cs)
	if n := testutil.CollectAndCount(m.PII); n != maxSourceLabels+1 {
		t.Fatalf("%d series, want %d", n, maxSourceLabels+1)
	}
	if got := testutil.ToFloat64(m.PII.WithLabelValues("other", "card")); got != 50 {
		t.Fatalf(`store="other" = %v, want 50`, got)
	}
}
