package loadgen

import (
	"testing"
	"time"
)

// TestHistQuantile: a quantile is never below the true value and at most
// one bucket (about 3%) above it, over the whole range of durations.
func TestHistQuantile(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 63, 64, 65, 1000, 123_456, time.Millisecond, 3 * time.Second, 1 << 62} {
		var h Hist
		h.Record(d)
		got := h.Quantile(0.99)
		if got < d || float64(got-d) > 0.04*float64(d)+1 {
			t.Errorf("one sample %v: p99 %v", d, got)
		}
	}
	var h Hist
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 500 * time.Microsecond, 0.99: 990 * time.Microsecond} {
		if got := h.Quantile(q); got < want || got > want+want/25 {
			t.Errorf("q%v = %v, want %v (+4%%)", q, got, want)
		}
	}
	for i := range nBuckets - 1 {
		if lowerBound(i) >= lowerBound(i+1) || bucketOf(lowerBound(i)) != i {
			t.Fatalf("bucket %d: bounds %d, %d; bucketOf(lower) %d", i, lowerBound(i), lowerBound(i+1), bucketOf(lowerBound(i)))
		}
	}
}

func TestParseMix(t *testing.T) {
	m, err := ParseMix("work=6, buy potion=1")
	if err != nil || len(m) != 2 || m[1].Cmd != "buy potion" || m[1].Weight != 1 {
		t.Fatalf("%v %v", m, err)
	}
	if _, err := ParseMix("work"); err == nil {
		t.Fatal("a mix entry without weight accepted")
	}
}
