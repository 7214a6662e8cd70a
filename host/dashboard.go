package host

import (
	"embed"
	"math"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// web holds the dashboard: plain HTML, CSS and JavaScript, all served from
// here (no CDN, nothing fetched from elsewhere), so it works on an admin
// network with no way out.
//
//go:embed web
var web embed.FS

// dashboardHandler serves the dashboard's files under /dashboard/. It sits
// behind the admin mux's token check and audit like every other route.
// The page may talk only to the admin API it came from.
func dashboardHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache") // a restarted host may serve a newer page
		name := strings.TrimPrefix(r.URL.Path, "/dashboard/")
		if name == "" {
			name = "index.html"
		}
		http.ServeFileFS(w, r, web, path.Join("web", name))
	})
}

// Usage is what GET /v1/usage answers: each version's request counters
// and latency histogram as the host has counted them since it started
// (the numbers /metrics exports as hothost_requests_total and
// hothost_request_seconds, as JSON), and when they were read. Rates and
// quantiles come from the difference of two readings.
type Usage struct {
	At       time.Time      `json:"at"`
	Versions []VersionUsage `json:"versions"`
}

// VersionUsage is one version's requests since the host started.
type VersionUsage struct {
	Module   string            `json:"module"`
	Version  string            `json:"version"`
	Requests uint64            `json:"requests"` // every reply, errors included
	Errors   uint64            `json:"errors"`   // replies with a code other than ok
	Codes    map[string]uint64 `json:"codes"`
	Latency  Histogram         `json:"latency"`
}

// Histogram is a latency histogram: Buckets[i] requests took at most
// Bounds[i] seconds (cumulative); Count took any time.
type Histogram struct {
	Count   uint64    `json:"count"`
	Sum     float64   `json:"sum"` // seconds
	Bounds  []float64 `json:"bounds"`
	Buckets []uint64  `json:"buckets"`
}

// usageReport answers GET /v1/usage. It reads the request collector
// through a registry of its own, so the figures are the very ones a
// Prometheus scrape gets, without the process and Go collectors.
func (h *Host[T, C]) usageReport(*http.Request) (any, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(h.metrics.reqs); err != nil {
		return nil, err
	}
	at := time.Now().UTC()
	families, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	byKey := map[[2]string]*VersionUsage{}
	get := func(m *dto.Metric) *VersionUsage {
		k := [2]string{labelValue(m, "module"), labelValue(m, "version")}
		if k[0] == "" { // requests no version handles
			return nil
		}
		if byKey[k] == nil {
			byKey[k] = &VersionUsage{Module: k[0], Version: k[1], Codes: map[string]uint64{}}
		}
		return byKey[k]
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			u := get(m)
			switch {
			case u == nil:
			case m.Counter != nil:
				n := uint64(m.GetCounter().GetValue())
				code := labelValue(m, "code")
				u.Codes[code] += n
				u.Requests += n
				if code != "ok" {
					u.Errors += n
				}
			case m.Histogram != nil:
				hist := m.GetHistogram()
				u.Latency = Histogram{Count: hist.GetSampleCount(), Sum: hist.GetSampleSum()}
				for _, b := range hist.GetBucket() {
					if math.IsInf(b.GetUpperBound(), 1) {
						continue // Count is the +Inf bucket, and JSON has no infinity
					}
					u.Latency.Bounds = append(u.Latency.Bounds, b.GetUpperBound())
					u.Latency.Buckets = append(u.Latency.Buckets, b.GetCumulativeCount())
				}
			}
		}
	}
	out := Usage{At: at, Versions: make([]VersionUsage, 0, len(byKey))}
	for _, u := range byKey {
		out.Versions = append(out.Versions, *u)
	}
	sort.Slice(out.Versions, func(i, j int) bool {
		a, b := out.Versions[i], out.Versions[j]
		return a.Module < b.Module || a.Module == b.Module && a.Version < b.Version
	})
	return out, nil
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
