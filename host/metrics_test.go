package host_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// /metrics counts every request by module, version and reply code, and
// times each one in the latency histogram of its version: bucket counts
// cumulative, the +Inf bucket and _count equal to the requests, the sum
// positive.
func TestMetricsCountRequestsAndLatency(t *testing.T) {
	t.Parallel()
	p, _ := startHost(t)
	c := dial(t, p, 41)
	for range 3 {
		if r := do(t, c, "work"); !r.OK {
			t.Fatalf("work: %s", r)
		}
	}
	if r := do(t, c, "work now"); r.Code != "usage" {
		t.Fatalf("work now: %s, want err usage", r)
	}
	if r := do(t, c, "buy sword"); r.Code != "funds" {
		t.Fatalf("buy sword: %s, want err funds", r)
	}
	metrics, _, err := runHotctl(t, p, "metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`hothost_requests_total{code="ok",module="coin",version="1.0.0"} 3`,
		`hothost_requests_total{code="usage",module="coin",version="1.0.0"} 1`,
		`hothost_requests_total{code="funds",module="shop",version="1.0.0"} 1`,
		`hothost_request_seconds_count{module="coin",version="1.0.0"} 4`,
		`hothost_request_seconds_count{module="shop",version="1.0.0"} 1`,
		`hothost_request_seconds_bucket{module="coin",version="1.0.0",le="1.024e-06"} `,
		`hothost_request_seconds_bucket{module="coin",version="1.0.0",le="1.073741824"} 4`,
		`hothost_request_seconds_bucket{module="coin",version="1.0.0",le="+Inf"} 4`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics do not say %q", want)
		}
	}
	// The coin histogram's buckets never decrease, and its sum is the
	// time of four real requests.
	var last uint64
	buckets := 0
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, `hothost_request_seconds_bucket{module="coin"`) {
			continue
		}
		n, err := strconv.ParseUint(line[strings.LastIndexByte(line, ' ')+1:], 10, 64)
		if err != nil || n < last {
			t.Fatalf("bucket line %q after %d: %v", line, last, err)
		}
		last, buckets = n, buckets+1
	}
	if buckets != 22 || last != 4 {
		t.Errorf("%d coin buckets ending at %d, want 22 ending at 4", buckets, last)
	}
	var sum float64
	for _, line := range strings.Split(metrics, "\n") {
		if rest, ok := strings.CutPrefix(line, `hothost_request_seconds_sum{module="coin",version="1.0.0"} `); ok {
			if _, err := fmt.Sscan(rest, &sum); err != nil {
				t.Fatal(err)
			}
		}
	}
	if sum <= 0 {
		t.Errorf("coin latency sum %v s, want the time of four requests", sum)
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", metrics)
	}
}
