package host

import (
	"math/bits"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The request latency histogram's bounds are powers of two nanoseconds,
// from 2^latencyShift (1.024 µs: a request that finds its lane free
// commits in a few) to 2^30 (1.07 s), so that a request finds its bucket
// with a shift and a bit length rather than a search (latencyBucket).
const (
	latencyShift  = 10
	latencyBounds = 21
)

// latencyBuckets are the bounds in seconds, as /metrics exports them.
var latencyBuckets = func() []float64 {
	b := make([]float64, latencyBounds)
	for i := range b {
		b[i] = float64(int64(1)<<(latencyShift+i)) / 1e9
	}
	return b
}()

// latencyHist is one lane's histogram of one version's request times,
// merged with the other lanes' when /metrics is read.
type latencyHist struct {
	counts [latencyBounds + 1]uint64 // per bucket, the last one +Inf
	sumNs  int64                     // nanoseconds: an integer add per request, seconds at scrape time
}

func (lh *latencyHist) observe(d time.Duration) {
	lh.counts[latencyBucket(d)]++
	lh.sumNs += int64(d)
}

// count is the number of requests observed.
func (lh *latencyHist) count() int64 {
	var n uint64
	for _, c := range lh.counts {
		n += c
	}
	return int64(n)
}

// latencyBucket is the index in latencyHist.counts of a request that took
// d: the first bucket whose bound is >= d, as Prometheus's le (a d <= 0
// counts in the first). It is min(bits.Len64((d-1)>>latencyShift),
// latencyBounds), written so that the compiler needs no zero test for the
// bit length: x>>(latencyShift-1)|1 has a bit length one more, never 0.
func latencyBucket(d time.Duration) int {
	return min(bits.Len64(uint64(max(d, 1)-1)>>(latencyShift-1)|1), latencyBounds+1) - 1
}

// versionUsage is one version's requests summed over every lane.
type versionUsage struct {
	calls, errs, panics int64
	codes               map[string]int64
	hist                latencyHist
}

// usage sums the lanes' counters by loader serial, taking each lane in
// turn (a lane held by a running request is waited for: at most one
// handler deadline).
func (h *Host[T, C]) usage() map[int]*versionUsage {
	out := map[int]*versionUsage{}
	for i := range h.lanes {
		h.store.WithLane(i, func() {
			for serial := range h.lanes[i].counts {
				vc := &h.lanes[i].counts[serial]
				calls := vc.hist.count()
				if calls == 0 {
					continue
				}
				u := out[serial]
				if u == nil {
					u = &versionUsage{codes: map[string]int64{}}
					out[serial] = u
				}
				u.calls += calls
				u.errs += vc.errs
				u.panics += vc.panics
				for code, n := range vc.codes {
					u.codes[code] += n
				}
				for b, n := range vc.hist.counts {
					u.hist.counts[b] += n
				}
				u.hist.sumNs += vc.hist.sumNs
			}
		})
	}
	return out
}

// requestCollector exports the per-lane counters as hothost_requests_total
// and hothost_request_seconds, summed at scrape time.
type requestCollector struct {
	requests, latency *prometheus.Desc
	collect           func(ch chan<- prometheus.Metric)
}

func (rc *requestCollector) Describe(ch chan<- *prometheus.Desc) { ch <- rc.requests; ch <- rc.latency }
func (rc *requestCollector) Collect(ch chan<- prometheus.Metric) { rc.collect(ch) }

func newRequestCollector() *requestCollector {
	return &requestCollector{
		requests: prometheus.NewDesc("hothost_requests_total",
			"Client requests by handler module, version and reply code (ok, or the error code; panics are code internal).",
			[]string{"module", "version", "code"}, nil),
		latency: prometheus.NewDesc("hothost_request_seconds",
			"Time from a request reaching its lane to its commit.", []string{"module", "version"}, nil),
	}
}

// collectRequests is the requestCollector's Collect for this host.
func (h *Host[T, C]) collectRequests(ch chan<- prometheus.Metric) {
	rc := h.metrics.reqs
	if n := h.unknown.Load(); n > 0 {
		ch <- prometheus.MustNewConstMetric(rc.requests, prometheus.CounterValue, float64(n), "", "", "unknown")
	}
	if h.store == nil || h.loader == nil {
		return
	}
	use := h.usage()
	for _, v := range h.loader.Versions() {
		serial, ok := h.loader.SerialOf(v.Module, v.Version)
		u := use[serial]
		if !ok || u == nil || v.File == "" {
			continue
		}
		delete(use, serial) // a version appears once in the history's loaded entries
		ch <- prometheus.MustNewConstMetric(rc.requests, prometheus.CounterValue, float64(u.calls-u.errs), v.Module, v.Version, "ok")
		for code, n := range u.codes {
			ch <- prometheus.MustNewConstMetric(rc.requests, prometheus.CounterValue, float64(n), v.Module, v.Version, code)
		}
		buckets := make(map[float64]uint64, len(latencyBuckets))
		var cum uint64
		for i, ub := range latencyBuckets {
			cum += u.hist.counts[i]
			buckets[ub] = cum
		}
		ch <- prometheus.MustNewConstHistogram(rc.latency, uint64(u.calls), float64(u.hist.sumNs)/1e9, buckets, v.Module, v.Version)
	}
}
