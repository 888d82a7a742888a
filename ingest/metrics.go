package ingest

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are ingest's Prometheus metrics.
type Metrics struct {
	Messages   prometheus.Counter
	Events     prometheus.Counter
	Consents   prometheus.Counter
	Duplicates prometheus.Counter
	Batches    prometheus.Counter
	BatchSize  prometheus.Histogram
	// BacklogBatches counts batches that grew past batch_size because the
	// consumer was behind (ingest.backlog_batch_size).
	BacklogBatches prometheus.Counter
	DeadLetters    *prometheus.CounterVec
	InsertDuration prometheus.Histogram
	Retries        *prometheus.CounterVec
	CommitFailures prometheus.Counter
	Lag            *prometheus.GaugeVec
	Rebalances     prometheus.Counter
	Stale          prometheus.Counter
	// SourceLastEvent is the event time of the newest event stored per
	// store (source): Prometheus' "no events from a source" rule reads it.
	// At most maxSourceLabels stores get their own series; later ones
	// share store="other", so a producer cannot grow it without bound.
	SourceLastEvent *prometheus.GaugeVec

	// StoreFailing is 1 while a write (ClickHouse insert, dead-letter topic)
	// keeps failing and is retried: nothing is committed meanwhile.
	StoreFailing prometheus.Gauge
	// BufferedBytes is the bytes of fetched messages held between fetch
	// and commit (bounded by ingest.max_buffer_bytes).
	BufferedBytes prometheus.Gauge
	// Unjudged counts events a redelivered batch found stored but never
	// seen by the batch observer (the event rules), observed then.
	Unjudged prometheus.Counter
	// PII counts access events whose free string fields looked like
	// personal data (dead-lettered or stored pseudonymized, per
	// ingest.pii), per producer store and kind. At most maxSourceLabels
	// stores get their own series, later ones store="other".
	PII *prometheus.CounterVec

	mu        sync.Mutex // guards sources, piiStores and failing
	sources   map[string]float64
	piiStores map[string]bool
	failing   *failure // nil: healthy
}

// failure is the write step that is failing now.
type failure struct {
	op       string
	since    time.Time
	attempts int
	err      error
}

// maxSourceLabels bounds the store label of SourceLastEvent.
const maxSourceLabels = 200

// NewMetrics creates ingest's metrics and registers them on reg (nil: not
// registered, for tests and one-shot commands).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatwarden_ingest_messages_total", Help: "Kafka messages stored (valid or dead-lettered) and committed (or their commit given up)."}),
		Events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatwarden_ingest_events_total", Help: "Valid access.v1 events inserted into ClickHouse (after dedupe)."}),
		Consents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatwarden_ingest_consents_total", Help: "Valid consent.v1 events inserted into ClickHouse."}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatwarden_ingest_duplicates_dropped_total", Help: "Events dropped because their event_id was already in the batch or stored."}),
		Batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatwarden_ingest_batches_total", Help: "Batches inserted and committed."}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chatwarden_ingest_batch_messages", Help: "Messages per batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
		BacklogBatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatwarden_ingest_backlog_batches_total", Help: "Batches that grew past ingest.batch_size (up to ingest.backlog_batch_size) because the consumer was behind."}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatwarden_ingest_dead_letters_total", Help: "Messages rejected to the dead-letter topic, by reason code."}, []string{"reason"}),
		InsertDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chatwarden_ingest_insert_duration_seconds", Help: "Time to insert one batch of events into ClickHouse.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14)}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatwarden_ingest_retries_total", Help: "Retried operations after a ClickHouse or Kafka error, by operation."}, []string{"op"}),
		CommitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatwarden_ingest_commit_failures_total", Help: "Offset commits given up (the batch is stored; redelivery is deduplicated)."}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chatwarden_ingest_consumer_lag_messages", Help: "Messages behind the partition's high watermark after the last commit."}, []string{"topic", "partition"}),
		Rebalances: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatwarden_ingest_rebalances_total", Help: "Consumer group generations joined by this instance."}),
		Stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatwarden_ingest_stale_messages_total", Help: "Messages fetched in a consumer group generation that ended before they were stored; re-read by the partition's new owner."}),
		SourceLastEvent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chatwarden_ingest_source_last_event_timestamp_seconds", Help: "Event time (ts) of the newest event stored, per store; the first 200 stores get their own series, later ones store=\"other\"."}, []string{"store"}),
		BufferedBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chatwarden_ingest_buffered_bytes", Help: "Bytes of fetched messages held between fetch and commit (at most five eighths of ingest.max_buffer_bytes)."}),
		Unjudged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatwarden_ingest_unjudged_events_total", Help: "Events found already stored on redelivery but never seen by the event rules (ingest stopped between insert and rules); judged then."}),
		StoreFailing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chatwarden_ingest_store_failing", Help: "1 while a write to ClickHouse or the dead-letter topic keeps failing and is retried (a disk full or read-only, a server down); nothing is committed meanwhile."}),
		PII: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chatwarden_ingest_pii_total", Help: "Access events with a free string field that looks like personal data (email, phone, card, ssn, iban), dead-lettered or stored pseudonymized per ingest.pii, by producer store (the first 200; later ones store=\"other\") and kind."}, []string{"store", "kind"}),
		sources:   map[string]float64{},
		piiStores: map[string]bool{},
	}
	if reg != nil {
		reg.MustRegister(m.Messages, m.Events, m.Consents, m.Duplicates, m.Batches, m.BatchSize, m.BacklogBatches,
			m.DeadLetters, m.InsertDuration, m.Retries, m.CommitFailures, m.Lag, m.Rebalances, m.Stale, m.SourceLastEvent, m.StoreFailing,
			m.Unjudged, m.BufferedBytes, m.PII)
	}
	return m
}

func (m *Metrics) setLag(topic string, partition int, lag int64) {
	m.Lag.WithLabelValues(topic, strconv.Itoa(partition)).Set(float64(max(lag, 0)))
}

// sawEvent moves store's last-event time forward to ts (never back).
func (m *Metrics) sawEvent(store string, ts time.Time) {
	v := float64(ts.Unix())
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sources[store]; !ok && len(m.sources) >= maxSourceLabels {
		store = "other"
	}
	if old, ok := m.sources[store]; ok && old >= v {
		return
	}
	m.sources[store] = v
	m.SourceLastEvent.WithLabelValues(store).Set(v)
}

// countPII counts payload PII findings; the store label is bounded like
// SourceLastEvent's.
func (m *Metrics) countPII(cs []piiCount) {
	if len(cs) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range cs {
		st := c.store
		if !m.piiStores[st] {
			if len(m.piiStores) >= maxSourceLabels {
				st = "other"
			} else {
				m.piiStores[st] = true
			}
		}
		m.PII.WithLabelValues(st, string(c.kind)).Inc()
	}
}

// Health returns nil while ingest stores batches, or an error naming the
// write step that keeps failing, since when and its last error (for
// /healthz).
func (m *Metrics) Health() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failing == nil {
		return nil
	}
	f := m.failing
	return fmt.Errorf("ingest: %s failing since %s (%d attempts, nothing committed meanwhile): %w",
		f.op, f.since.UTC().Format(time.RFC3339), f.attempts, f.err)
}

// stepFailed records a failed attempt of op.
func (m *Metrics) stepFailed(op string, err error, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failing == nil || m.failing.op != op {
		m.failing = &failure{op: op, since: now}
	}
	m.failing.attempts++
	m.failing.err = err
	m.StoreFailing.Set(1)
}

// stepOK records that the write step op succeeded. It clears only a
// failure of op itself: a step nested in another's retry (the fence inside
// insert_events' attempts) succeeding says nothing about the outer step,
// which would otherwise read healthy between each of its failed attempts.
func (m *Metrics) stepOK(op string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failing != nil && m.failing.op == op {
		m.failing = nil
		m.StoreFailing.Set(0)
	}
}
