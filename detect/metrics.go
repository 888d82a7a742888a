package detect

import "github.com/prometheus/client_golang/prometheus"

// metrics are the engine's Prometheus metrics.
type metrics struct {
	windows       prometheus.Counter
	missed        prometheus.Counter
	findings      *prometheus.CounterVec
	suppressed    *prometheus.CounterVec
	sinkErrors    *prometheus.CounterVec
	queryDuration prometheus.Histogram
	cycleDuration prometheus.Histogram
	lastWindowEnd prometheus.Gauge
	pending       prometheus.Gauge
	heldBack      prometheus.Gauge
	late          prometheus.Counter
	unreopened    prometheus.Counter
	reopened      prometheus.Counter
	reopenPending prometheus.Gauge
	dropped       *prometheus.CounterVec
	evicted       prometheus.Counter
	actors        prometheus.Gauge

	streamActors      prometheus.Gauge
	streamDropped     prometheus.Counter
	streamFindings    *prometheus.CounterVec
	streamConfirmed   *prometheus.CounterVec
	streamUnconfirmed *prometheus.CounterVec

	reg prometheus.Registerer
	all []prometheus.Collector
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		windows: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_detect_windows_total",
			Help: "Detection windows evaluated."}),
		missed: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_detect_missed_cycles_total",
			Help: "Detection cycles that could not read their aggregates (retried on the next tick)."}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_detect_findings_total",
			Help: "Findings sent on, by detector and severity."}, []string{"detector", "severity"}),
		suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_detect_suppressed_total",
			Help: "Findings muted by an allow-list entry, silence or false-positive mark."}, []string{"detector", "kind"}),
		sinkErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_detect_sink_errors_total",
			Help: "Errors handing findings on, by sink."}, []string{"sink"}),
		queryDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chatwarden_detect_query_duration_seconds",
			Help: "Time to read one batch of window aggregates.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		cycleDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "chatwarden_detect_cycle_duration_seconds",
			Help: "Time of one detection cycle (every window due, its detectors and sinks).", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		lastWindowEnd: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatwarden_detect_last_window_end_timestamp_seconds",
			Help: "End of the newest window evaluated (Unix seconds, the engine's clock): time() minus this is how far detection is behind."}),
		heldBack: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatwarden_detect_watermark_held_back_seconds",
			Help: "How far ingest's low watermark (consumer lag) held the last cycle back behind the wall clock."}),
		late: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_detect_late_events_total",
			Help: "Events stored for windows detection had already evaluated (later than the allowed lateness behind the watermark); they re-open their window (detect.reopen_windows)."}),
		unreopened: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_detect_late_events_unreopened_total",
			Help: "Late events whose window was too far back to re-open (detect.reopen_windows), or re-opening is off: counted, not judged by the window detectors."}),
		reopened: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_detect_windows_reopened_total",
			Help: "Windows evaluated again for the actors of late events (detect-only; a finding already raised for the window is not raised twice)."}),
		reopenPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatwarden_detect_windows_reopen_pending",
			Help: "Windows re-opened by late events and waiting to be evaluated (at most detect.reopen_per_cycle per cycle)."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatwarden_detect_findings_pending",
			Help: "Window findings whose hand-off (findings table, alerting) failed, waiting to be retried on the next cycle."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_detect_findings_dropped_total",
			Help: "Window findings dropped because too many were waiting for a retry, by sink."}, []string{"sink"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_detect_actors_evicted_total",
			Help: "Actor baselines forgotten after detect.evict_idle_after without activity."}),
		actors: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatwarden_detect_actors",
			Help: "Actors the engine holds a baseline for (after the last eviction pass)."}),
		streamActors: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chatwarden_detect_stream_actors",
			Help: "(actor, open window) counts held for streaming detection (at most detect.stream_max_actors)."}),
		streamDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "chatwarden_detect_stream_dropped_events_total",
			Help: "Events not counted for streaming detection because detect.stream_max_actors counts were held, or their window ends more than 60 windows after the last one evaluated (the window detectors still judge them)."}),
		streamFindings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_detect_stream_findings_total",
			Help: "Findings raised on an open window, before it closed, by detector."}, []string{"detector"}),
		streamConfirmed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_detect_stream_confirmed_total",
			Help: "Findings raised on an open window that the window's evaluation raised again (one alert, updated), by detector."}, []string{"detector"}),
		streamUnconfirmed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chatwarden_detect_stream_unconfirmed_total",
			Help: "Findings raised on an open window that the window's evaluation did not raise (their alert is closed), by detector."}, []string{"detector"}),
	}
	if reg != nil {
		m.reg = reg
		m.all = []prometheus.Collector{m.windows, m.missed, m.findings, m.suppressed, m.sinkErrors, m.queryDuration, m.cycleDuration, m.lastWindowEnd,
			m.pending, m.dropped, m.evicted, m.actors, m.heldBack, m.late, m.unreopened, m.reopened, m.reopenPending,
			m.streamActors, m.streamDropped, m.streamFindings, m.streamConfirmed, m.streamUnconfirmed}
		reg.MustRegister(m.all...)
	}
	return m
}

// Unregister removes the engine's metrics from Options.Registerer: an
// engine whose shard moved to another instance (detect.ownership: group)
// stops reporting, and the shard's next engine here registers its own.
func (e *Engine) Unregister() {
	for _, c := range e.metrics.all {
		e.metrics.reg.Unregister(c)
	}
}
