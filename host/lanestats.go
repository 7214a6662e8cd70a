package host

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyBuckets are the request latency histogram's upper bounds:
// 5 µs growing by 2.5x, 14 buckets (to about 1.5 s).
var latencyBuckets = prometheus.ExponentialBuckets(5e-6, 2.5, 14)

// latencyBoundsNs are latencyBuckets in nanoseconds: a request finds its
// bucket with a few integer compares (most are fast, so a linear scan from
// the smallest ends early).
var latencyBoundsNs = func() [14]int64 {
	var b [14]int64
	for i, s := range latencyBuckets {
		b[i] = int64(s * 1e9)
	}
	return b
}()

// latencyHist is one lane's histogram of one version's request times,
// merged with the other lanes' when /metrics is read.
type latencyHist struct {
	counts [15]uint64 // per bucket, the last one +Inf
	sumNs  int64      // nanoseconds: an integer add per request, seconds at scrape time
}

func (lh *latencyHist) observe(d time.Duration) {
	i := 0
	for i < len(latencyBoundsNs) && int64(d) > latencyBoundsNs[i] {
		i++
	}
	lh.counts[i]++
	lh.sumNs += int64(d)
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
				if vc.calls == 0 {
					continue
				}
				u := out[serial]
				if u == nil {
					u = &versionUsage{codes: map[string]int64{}}
					out[serial] = u
				}
				u.calls += vc.calls
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
