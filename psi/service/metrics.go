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
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "overlap_sessions_total",
			Help: "Match sessions by result: ok, refused_<limit>, unauthenticated, permission_denied, peer_error, truncated, timeout, aborted, internal_error.",
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
	}
	m.reg.MustRegister(m.sessions, m.inFlight, m.duration, m.elements, m.setElements, m.budgetRefusals,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
