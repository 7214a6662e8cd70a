package host

import (
	"github.com/hothost/hothost/state"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the host's Prometheus series, on a registry of its own so two
// hosts in one test binary do not collide.
type metrics struct {
	reg          *prometheus.Registry
	reqs         *requestCollector // requests and latency: per-lane counters summed at scrape time
	busy         prometheus.Counter
	timeouts     *prometheus.CounterVec // module, version: handlers past the deadline
	stuck        prometheus.Gauge       // fenced handlers still running
	crashes      *prometheus.CounterVec // module, version: unclean exits attributed at start
	authFailures *prometheus.CounterVec // reason: refused logins
	pushes       prometheus.Counter     // pushes queued to sessions
	pushDropped  prometheus.Counter     // pushes dropped: a slow reader's queue was full
	refused      prometheus.Counter
	// sessions resumed from a dead worker's table, requests answered from
	// its records or refused after two deaths, and connections served
	// without a kept session
	resumed, keptReplies, retried, resumeFailed prometheus.Counter
	badFrames                                   prometheus.Counter
	conns                                       prometheus.Gauge
	events                                      *prometheus.CounterVec // kind: activated, rolled_back, rejected, bad, config_reloaded, config_refused
	snapAge                                     prometheus.GaugeFunc
}

// scrubGauges exports the state scrub's status: progress of the pass and
// totals since start.
func scrubGauges(scrub func() state.ScrubStatus) []prometheus.Collector {
	g := func(name, help string, f func(st state.ScrubStatus) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(scrub()) })
	}
	return []prometheus.Collector{
		g("hothost_scrub_progress", "Fraction of the current (or last) scrub pass over every record, 0 to 1.", state.ScrubStatus.Progress),
		g("hothost_scrub_checked_records", "Records the scrub checked since start.", func(st state.ScrubStatus) float64 { return float64(st.TotalChecked) }),
		g("hothost_scrub_failed_records", "Records that failed the scrub's check since start (restored, kept or removed).", func(st state.ScrubStatus) float64 { return float64(st.TotalFailed) }),
		g("hothost_scrub_restored_records", "Failed records restored from a snapshot since start.", func(st state.ScrubStatus) float64 { return float64(st.Restored) }),
	}
}

func newMetrics(snapshotAge func() float64, players func() float64, requests func(chan<- prometheus.Metric)) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), reqs: newRequestCollector()}
	m.reqs.collect = requests
	m.timeouts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hothost_handler_timeouts_total", Help: "Requests whose handler ran past the handler timeout: fenced, the version marked bad.",
	}, []string{"module", "version"})
	m.stuck = prometheus.NewGauge(prometheus.GaugeOpts{Name: "hothost_stuck_handlers",
		Help: "Fenced handlers still running on their goroutine (Go cannot stop one; a restart reclaims their CPU)."})
	m.crashes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hothost_crashes_total", Help: "Unclean exits of the previous process attributed to a plugin version, counted at start.",
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
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hothost_auth_failures_total", Help: "Logins refused: missing, malformed, signature, expired, not_yet_valid, other_player, algorithm, limited.",
	}, []string{"reason"})
	m.pushes = prometheus.NewCounter(prometheus.CounterOpts{Name: "hothost_pushes_total", Help: "Pushes queued to client sessions (after their transaction committed)."})
	m.pushDropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "hothost_pushes_dropped_total", Help: "Pushes dropped because a slow reader's queue was full (oldest first)."})
	m.resumed = prometheus.NewCounter(prometheus.CounterOpts{Name: "hothost_sessions_resumed_total", Help: "Client sessions a previous worker left, resumed on their connection."})
	m.keptReplies = prometheus.NewCounter(prometheus.CounterOpts{Name: "hothost_kept_replies_total", Help: "Requests a previous worker committed but did not answer, answered from its record instead of run again."})
	m.retried = prometheus.NewCounter(prometheus.CounterOpts{Name: "hothost_retry_replies_total", Help: "Requests two workers in a row died running: answered err retry, not run a third time."})
	m.resumeFailed = prometheus.NewCounter(prometheus.CounterOpts{Name: "hothost_sessions_unkept_total", Help: "Connections served without a session kept in shared memory (the session table refused them)."})
	m.reg.MustRegister(m.resumed, m.keptReplies, m.retried, m.resumeFailed)
	m.reg.MustRegister(m.reqs, m.authFailures, m.pushes, m.pushDropped, m.timeouts, m.stuck, m.crashes, m.busy, m.refused, m.badFrames, m.conns, m.events, m.snapAge, playersGauge,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
