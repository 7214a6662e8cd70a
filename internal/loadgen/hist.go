package loadgen

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// subBits is the precision of the latency histogram: 2^subBits linear
// buckets per power of two, so a quantile is within about 3% of the truth.
const subBits = 5

const (
	sub      = 1 << subBits
	nBuckets = 2*sub + (64-subBits-1)*sub
)

// Hist is a lock-free log-linear latency histogram. Its memory is fixed
// (about 15 KiB) whatever the number of samples.
type Hist struct {
	counts [nBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

func bucketOf(ns uint64) int {
	if ns < 2*sub {
		return int(ns)
	}
	shift := bits.Len64(ns) - subBits - 1
	return 2*sub + (shift-1)*sub + int(ns>>shift) - sub
}

// lowerBound is the smallest value that falls into bucket i.
func lowerBound(i int) uint64 {
	if i < 2*sub {
		return uint64(i)
	}
	i -= 2 * sub
	shift := i/sub + 1
	return uint64(i%sub+sub) << shift
}

// Record adds one sample.
func (h *Hist) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// Count is the number of samples.
func (h *Hist) Count() uint64 { return h.n.Load() }

// Max is the largest sample.
func (h *Hist) Max() time.Duration { return time.Duration(h.max.Load()) }

// Snapshot copies the counts, for a windowed quantile (Quantile of the
// difference of two snapshots).
func (h *Hist) Snapshot() *Counts {
	c := &Counts{}
	for i := range h.counts {
		c.c[i] = h.counts[i].Load()
		c.n += c.c[i]
	}
	return c
}

// Quantile is the q-quantile (0 < q <= 1) of every sample so far.
func (h *Hist) Quantile(q float64) time.Duration { return h.Snapshot().Quantile(q) }

// Counts is a frozen copy of a histogram's buckets.
type Counts struct {
	c [nBuckets]uint64
	n uint64
}

// Sub returns c minus an earlier snapshot of the same histogram.
func (c *Counts) Sub(earlier *Counts) *Counts {
	d := &Counts{}
	for i := range c.c {
		d.c[i] = c.c[i] - earlier.c[i]
		d.n += d.c[i]
	}
	return d
}

// N is the number of samples.
func (c *Counts) N() uint64 { return c.n }

// Quantile is the q-quantile of the samples, reported as the upper edge of
// its bucket (a slight over-estimate, never an under-estimate).
func (c *Counts) Quantile(q float64) time.Duration {
	if c.n == 0 {
		return 0
	}
	rank := uint64(q*float64(c.n) + 0.5)
	rank = max(1, min(rank, c.n))
	var seen uint64
	for i, k := range c.c {
		seen += k
		if seen >= rank {
			if i+1 < nBuckets {
				return time.Duration(lowerBound(i+1) - 1)
			}
			return time.Duration(lowerBound(i))
		}
	}
	return 0
}
