package loader

import (
	"runtime"
	"sync"
	"testing"
	"unsafe"
)

// TestCallShardsOwnLines: every P's shard starts on a cache line of its
// own, whatever the number of Ps, or two cores would write one line.
func TestCallShardsOwnLines(t *testing.T) {
	for ps := 1; ps <= 256; ps++ {
		c := newCallCounters(ps)
		for i := range c.shards {
			if a := uintptr(unsafe.Pointer(&c.shards[i])); a%64 != 0 {
				t.Fatalf("%d Ps: shard %d at %#x, not on a 64-byte line", ps, i, a)
			}
		}
	}
	if s := unsafe.Sizeof(callShard{}); s != 64 {
		t.Fatalf("a shard is %d bytes, want one 64-byte line", s)
	}
}

// TestCallCountersExact: calls counted from goroutines on every P, with
// one shard per P and with fewer shards than Ps (GOMAXPROCS raised after
// the version loaded), add up exactly.
func TestCallCountersExact(t *testing.T) {
	for _, shards := range []int{runtime.GOMAXPROCS(0), 1} {
		counted(t, newCallCounters(shards))
	}
}

func counted(t *testing.T, c callCounters) {
	const goroutines, calls = 8, 20000
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				p := procPin() // as Entry.Call takes its shard
				procUnpin()
				s := c.of(p)
				s.started.Add(1)
				if i%100 == 0 {
					runtime.Gosched() // move between Ps
				}
				s.end(i%3 == 0)
			}
		}()
	}
	wg.Wait()
	n := c.sum()
	if want := int64(goroutines * calls); n.started != want || n.done != want {
		t.Fatalf("%d shards: started %d, done %d; want %d each", len(c.shards), n.started, n.done, want)
	}
	if want := int64(goroutines * ((calls + 2) / 3)); n.errs != want {
		t.Fatalf("%d shards: %d errors, want %d", len(c.shards), n.errs, want)
	}
}
