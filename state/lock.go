package state

import (
	"runtime"
	"sync/atomic"
)

// How readers never see half a commit, with writers that take no lock but
// their lane's mutex.
//
// A record's Seq word is a sequence lock: commit makes it odd, writes the
// value and Sum, and makes it even again (seqBegin, seqEnd), all while
// holding the lane mutex, so each slot has one writer at a time. A reader
// (Store.read) loads Seq, copies the record if Seq was even, and keeps the
// copy only if Seq is unchanged after it; otherwise it retries. Readers
// write nothing and wait for nothing but a commit's own copy, never for a
// callback.
//
// Create and delete change more than the value (the slot goes from free
// to a player and back, and shmpool clears it on reuse, Seq included), so
// each slot also has a slotGen word in process memory: even while the slot
// holds a committed player, odd while it is free, being created or being
// deleted, and one higher at every change. A reader checks it before and
// after its copy too: a slot deleted and reused for another player while
// it copied can never pass for the one it started with.
//
// slotGen lives in process memory, not in the segment: it means nothing
// to the next process, so it is never persisted or reset.
type slotGen struct{ w atomic.Uint32 }

// load returns the generation and whether the slot holds a player.
func (g *slotGen) load() (uint32, bool) {
	v := g.w.Load()
	return v, v&1 == 0
}

// kill marks the slot dead before it is freed. Only the holder of the
// player's lane changes a live slot, and a slot is reused only after
// shmpool's mutex ordered its Free before the next Alloc, so a load and a
// store (not a compare-and-swap) are enough.
func (g *slotGen) kill() { g.w.Store(g.w.Load() | 1) }

// revive makes a dead slot live with a new generation.
func (g *slotGen) revive() { g.w.Store(g.w.Load() | 1 + 1) }

// backoff spins briefly, then yields: the writer copies a few hundred
// bytes, unless it was preempted in the middle.
func backoff(spin int) {
	if spin > 16 {
		runtime.Gosched()
	}
}
