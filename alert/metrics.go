package alert

import "github.com/prometheus/client_golang/prometheus"

// metrics are the dispatcher's Prometheus metrics.
type metrics struct {
	findings      prometheus.Counter
	duplicates    prometheus.Counter
	opened        prometheus.Counter
	changes       *prometheus.CounterVec
	muted         prometheus.Counter
	messages      *prometheus.CounterVec
	sendErrors    *prometheus.CounterVec
	rateLimited   prometheus.Counter
	lookups       *prometheus.CounterVec
	unsent        prometheus.Gauge
	storeErrors   prometheus.Counter
	digests       prometheus.Counter
	interactions  *prometheus.CounterVec
	notifyLatency prometheus.Histogram
	ownerChanges  prometheus.Counter
	groupsOwned   prometheus.Gauge
	notOwned      prometheus.Counter
	forwarded     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		findings: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_alert_findings_total",
			Help: "Findings received by the dispatcher."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_alert_duplicate_findings_total",
			Help: "Findings dropped as duplicates of one already folded into its alert."}),
		opened: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_alert_alerts_opened_total",
			Help: "Alerts opened (new fingerprints)."}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_alert_state_changes_total",
			Help: "Alert state changes by new status."}, []string{"status"}),
		muted: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_alert_muted_findings_total",
			Help: "Findings on alerts muted by a silence or by inhibition."}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_alert_slack_calls_total",
			Help: "Successful Slack calls by operation (post, update, find)."}, []string{"op"}),
		sendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_alert_slack_errors_total",
			Help: "Failed Slack calls by operation; each is retried."}, []string{"op"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_alert_slack_rate_limited_total",
			Help: "Slack answers of HTTP 429 (Retry-After honoured)."}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_alert_slack_lookups_total",
			Help: "Channel-history look-ups after an uncertain post, by result (found, absent)."}, []string{"result"}),
		unsent: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatwarden_alert_unsent_messages",
			Help: "Messages with a revision Slack does not show yet."}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_alert_store_errors_total",
			Help: "Failed ClickHouse writes or reads of alert state (retried)."}),
		digests: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_alert_digests_total",
			Help: "Weekly digests scheduled for delivery."}),
		interactions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_alert_actions_total",
			Help: "Responder actions applied, by action."}, []string{"action"}),
		notifyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chatwarden_alert_first_post_delay_seconds",
			Help:    "Time from an alert group's creation to its first Slack post (dispatcher clock).",
			Buckets: []float64{0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900}}),
		ownerChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_alert_ownership_changes_total",
			Help: "Times the dispatcher took or gave up its share of the alert groups (Own, Release)."}),
		groupsOwned: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatwarden_alert_groups_owned",
			Help: "Aggregation groups this dispatcher holds in memory (its share of the alert groups)."}),
		notOwned: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_alert_findings_not_owned_total",
			Help: "Findings dropped because their alert group belongs to another dispatcher (their owner receives them)."}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_alert_actions_forwarded_total",
			Help: "Responder actions on alerts another dispatcher owns, handed to it through the findings topic."}),
	}
	if reg != nil {
		reg.MustRegister(m.findings, m.duplicates, m.opened, m.changes, m.muted, m.messages, m.sendErrors,
			m.rateLimited, m.lookups, m.unsent, m.storeErrors, m.digests, m.interactions, m.notifyLatency,
			m.ownerChanges, m.groupsOwned, m.notOwned, m.forwarded)
	}
	return m
}
