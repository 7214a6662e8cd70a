package loader

import (
	"math/bits"
	"sync/atomic"
	_ "unsafe" // go:linkname
)

// Entry.Call counts every call on its version (started, done, errors). One
// shared word per counter would be written by every core on every call,
// and each add would wait for the cache line to come back from the core
// that wrote it last. So each P has a shard of its own, alone on its cache
// line, and a call adds to its P's: lines move between cores only when a
// goroutine moves to another P between reading its P's id and adding.
// Reading the counters sums the shards.
//
// The P's id comes from runtime.procPin (sync.Pool finds its per-P pools
// the same way; the runtime keeps the symbol for such packages). The adds
// stay atomic: a goroutine may be preempted and moved right after it read
// the id, and then two Ps add to one shard, which is slower, never wrong.

//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

// callShard is one P's counters, alone on its cache line: its size is 64
// bytes, and a slice of them lands in a size class that is a multiple of
// 64, so each starts on a line (TestCallShardsOwnLines).
type callShard struct {
	started, done, errs atomic.Int64
	_                   [64 - 3*8]byte
}

type callCounters struct{ shards []callShard }

// newCallCounters makes the counters of a version: a shard per P, rounded
// up to a power of two so that a P finds its shard with a mask, not a
// division (GOMAXPROCS raised later folds the new Ps onto the shards).
func newCallCounters(ps int) callCounters {
	return callCounters{shards: make([]callShard, 1<<bits.Len(uint(max(ps, 1)-1)))}
}

// of is P p's shard. A call takes its P's once (Entry.Call: procPin,
// procUnpin, of; spelled out there because a function around the two
// calls, which are not inlined, is measurable on a call this short) and
// counts its start and its end there, even if it ran on another P
// meanwhile.
func (c *callCounters) of(p int) *callShard { return &c.shards[uint(p)&uint(len(c.shards)-1)] }

// end counts a call done, and an error if failed.
func (s *callShard) end(failed bool) {
	if failed {
		s.errs.Add(1)
	}
	s.done.Add(1)
}

// callCounts is the sum of a version's shards.
type callCounts struct{ started, done, errs int64 }

// sum adds up the shards. Every done is read before any started, so
// started-done (in flight) is never negative: started only grows.
func (c *callCounters) sum() callCounts {
	var n callCounts
	for i := range c.shards {
		n.done += c.shards[i].done.Load()
		n.errs += c.shards[i].errs.Load()
	}
	for i := range c.shards {
		n.started += c.shards[i].started.Load()
	}
	return n
}
