package host

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
)

// latencyBucket puts a time where Prometheus puts an observation: the
// first bucket whose upper bound (le) it does not exceed, else +Inf.
func TestDispatchLatencyBucketIsPrometheusLe(t *testing.T) {
	want := func(d time.Duration) int {
		for i, le := range latencyBuckets {
			if d.Seconds() <= le {
				return i
			}
		}
		return len(latencyBuckets)
	}
	ds := []time.Duration{math.MinInt64, -1, 0, 1, math.MaxInt64}
	for i := range latencyBounds {
		bound := time.Duration(1) << (latencyShift + i)
		ds = append(ds, bound-1, bound, bound+1)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		ds = append(ds, time.Duration(rng.Int64N(int64(3*time.Second))))
	}
	for _, d := range ds {
		if got, w := latencyBucket(d), want(d); got != w {
			t.Fatalf("%v (%d ns) in bucket %d, want %d (le %v)", d, int64(d), got, w, latencyBuckets[min(w, len(latencyBuckets)-1)])
		}
	}
	if latencyBuckets[0] != 1024e-9 || latencyBuckets[len(latencyBuckets)-1] != float64(1<<30)/1e9 {
		t.Fatalf("bounds %v, want 1.024 µs to 2^30 ns", latencyBuckets)
	}
}

// A lane counts every call of a version, its errors by code, its panics,
// and the times in its histogram, whichever of count or countSlow takes
// the call.
func TestDispatchLaneCounts(t *testing.T) {
	var ln lane
	calls := []struct {
		serial int
		err    error
		d      time.Duration
	}{
		{1, nil, 3 * time.Microsecond}, // the lane's first of serial 1: countSlow grows it
		{1, nil, 50 * time.Microsecond},
		{1, abi.Fail("funds", "no"), 1024},
		{1, &loader.PanicError{Module: "m", Version: "1", Msg: "x", Value: "boom"}, 2 * time.Second},
		{0, nil, 1025},
		{-1, nil, time.Millisecond}, // no version: not counted
	}
	for _, c := range calls {
		if !ln.count(c.serial, c.err, c.d) {
			ln.countSlow(c.serial, c.err, c.d)
		}
	}
	if len(ln.counts) != 2 {
		t.Fatalf("%d versions counted, want 2", len(ln.counts))
	}
	v1, v0 := &ln.counts[1], &ln.counts[0]
	if v1.hist.count() != 4 || v1.errs != 2 || v1.panics != 1 || v1.codes["funds"] != 1 || v1.codes["internal"] != 1 {
		t.Fatalf("serial 1: %d calls, %d errors, %d panics, codes %v; want 4, 2, 1, funds and internal once",
			v1.hist.count(), v1.errs, v1.panics, v1.codes)
	}
	wantSum := int64(3*time.Microsecond + 50*time.Microsecond + 1024 + 2*time.Second)
	if v1.hist.counts[0] != 1 || v1.hist.counts[2] != 1 || v1.hist.counts[6] != 1 || v1.hist.counts[latencyBounds] != 1 || v1.hist.sumNs != wantSum {
		t.Fatalf("serial 1 histogram %v sum %d, want one each in le 1.024µs, 4.096µs, 65.536µs and +Inf, sum %d",
			v1.hist.counts, v1.hist.sumNs, wantSum)
	}
	if v0.hist.count() != 1 || v0.hist.counts[1] != 1 || v0.errs != 0 || v0.codes != nil {
		t.Fatalf("serial 0: %+v, want one call in le 2.048µs", *v0)
	}
}
