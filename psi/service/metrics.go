package service

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus collectors, on a registry of its own.
type metrics struct {
	reg            *prometheus.Registry
	sessions       *prometheus.CounterVec
	inFlight       prometheus.Gauge
	duration       *prometheus.HistogramVec
	elements       prometheus.Counter
	setElements    prometheus.Counter
	budgetRefusals prometheus.Counter
	poolHits       prometheus.Counter
	poolMisses     prometheus.Counter
	poolDiscarded  prometheus.Counter
	poolReady      *prometheus.GaugeVec
	busyRetries    prometheus.Counter
	reconciled     *prometheus.CounterVec
	abandoned      prometheus.Counter
	throttled      prometheus.Counter
	tlsErrors      prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "overlap_sessions_total",
			Help: "Match sessions by result: ok, refused_<limit>, unauthenticated, permission_denied, peer_error, truncated, timeout, canceled, abandoned, aborted, unavailable, deviation, internal_error.",
		}, []string{"result"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "overlap_sessions_in_flight",
			Help: "Match sessions running now.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "overlap_session_duration_seconds",
			Help:    "Duration of match sessions by result.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}, []string{"result"}),
		elements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "overlap_elements_evaluated_total",
			Help: "Blinded client elements the server evaluated.",
		}),
		setElements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "overlap_set_elements_prepared_total",
			Help: "Matchable identifiers the server encoded into per-session sets.",
		}),
		budgetRefusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "overlap_budget_refusals_total",
			Help: "Sessions refused because the advertiser's identifier budget was exhausted.",
		}),
		poolHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "overlap_pool_hits_total",
			Help: "Exact-mode sessions served a prepared set from the warm pool (Config.PoolSize).",
		}),
		poolMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "overlap_pool_misses_total",
			Help: "Exact-mode sessions of a pooled kind that prepared their set cold: the pool was empty, or its sets came from a superseded consent snapshot.",
		}),
		poolDiscarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "overlap_pool_discarded_total",
			Help: "Prepared sets destroyed unused because the consent snapshot they came from was superseded.",
		}),
		poolReady: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "overlap_pool_ready_sets",
			Help: "Prepared sets in the warm pool, by identifier kind and ciphersuite.",
		}, []string{"kind", "suite"}),
		busyRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "overlap_store_busy_retries_total",
			Help: "Store calls of sessions retried because the store was busy (a lock held by another writer).",
		}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "overlap_sessions_reconciled_total",
			Help: "Sessions left open by a stopped server and closed as crashed, by whether their reservation was refunded.",
		}, []string{"refunded"}),
		abandoned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "overlap_sessions_abandoned_total",
			Help: "Sessions the client left after admission without sending any element (also counted in overlap_sessions_total{result=\"abandoned\"}).",
		}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "overlap_sessions_throttled_total",
			Help: "Sessions refused because their advertiser abandoned too many sessions lately.",
		}),
		tlsErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "overlap_tls_handshake_errors_total",
			Help: "Failed TLS handshakes, logged or not (the log is rate-limited).",
		}),
	}
	m.reg.MustRegister(m.sessions, m.inFlight, m.duration, m.elements, m.setElements, m.budgetRefusals,
		m.poolHits, m.poolMisses, m.poolDiscarded, m.poolReady, m.busyRetries, m.reconciled, m.abandoned, m.throttled, m.tlsErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
