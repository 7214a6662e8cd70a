package host

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the host's Prometheus series, on a registry of its own so two
// hosts in one test binary do not collide.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec   // module, version, code
	latency   *prometheus.HistogramVec // module, version
	busy      prometheus.Counter
	refused   prometheus.Counter
	badFrames prometheus.Counter
	conns     prometheus.Gauge
	events    *prometheus.CounterVec // kind: activated, rolled_back, rejected, bad, config_reloaded, config_refused
	snapAge   prometheus.GaugeFunc
}

func newMetrics(snapshotAge func() float64, players func() float64) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hothost_requests_total", Help: "Client requests by handler module, version and reply code (ok, or the error code; panics are code internal).",
	}, []string{"module", "version", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "hothost_request_seconds", Help: "Time from a request reaching its lane to its commit.",
		Buckets: prometheus.ExponentialBuckets(5e-6, 2.5, 14),
	}, []string{"module", "version"})
	m.busy = prometheus.NewCounter(prometheus.CounterOpts{Name: "hothost_busy_total", Help: "Requests refused because the player's lane mailbox was full."})
	m.refused = prometheus.NewCounter(prometheus.CounterOpts{Name: "hothost_refused_connections_total", Help: "Connections refused at the connection limit."})
	m.badFrames = prometheus.NewCounter(prometheus.CounterOpts{Name: "hothost_bad_frames_total", Help: "Client frames refused as malformed or oversized."})
	m.conns = prometheus.NewGauge(prometheus.GaugeOpts{Name: "hothost_connections", Help: "Open client connections."})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hothost_events_total", Help: "Plugin and config events: activated, rolled_back, rejected, bad, config_reloaded, config_refused.",
	}, []string{"kind"})
	m.snapAge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hothost_snapshot_age_seconds", Help: "Seconds since the last successful snapshot (-1: none yet)."}, snapshotAge)
	playersGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hothost_players", Help: "Players in the state store."}, players)
	m.reg.MustRegister(m.requests, m.latency, m.busy, m.refused, m.badFrames, m.conns, m.events, m.snapAge, playersGauge,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(module, version, code string, d time.Duration) {
	m.requests.WithLabelValues(module, version, code).Inc()
	m.latency.WithLabelValues(module, version).Observe(d.Seconds())
}
