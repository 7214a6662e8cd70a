package state

import (
	"runtime"
	"sync/atomic"
)

// slotLock is a per-slot reader/writer lock word kept in process memory,
// not in the segment: it means nothing to the next process (a lock held by
// a killed owner must not survive it), so it never needs resetting and
// costs shared memory nothing.
//
// It is only ever held while bytes are copied (a reader copying a record
// out, a writer copying a committed value in), never while a callback
// runs, so spinning is the right wait. Writers of one slot are already
// serialized by their lane's mutex; the writer bit only keeps readers out.
//
// The dead bit marks a slot that holds no committed player (free, being
// created, being deleted): readers refuse it instead of copying bytes that
// shmpool may be clearing.
type slotLock struct{ w atomic.Uint32 }

const (
	lockWriter  = 1 << 31
	lockDead    = 1 << 30
	lockReaders = lockDead - 1
)

// rlock takes the read lock, or returns false if the slot is dead.
func (l *slotLock) rlock() bool {
	for spin := 0; ; spin++ {
		v := l.w.Load()
		if v&lockDead != 0 {
			return false
		}
		if v&lockWriter == 0 && l.w.CompareAndSwap(v, v+1) {
			return true
		}
		backoff(spin)
	}
}

func (l *slotLock) runlock() { l.w.Add(^uint32(0)) }

// lock takes the write lock: it shuts new readers out, then waits for the
// readers inside to finish their copies.
func (l *slotLock) lock() {
	for spin := 0; ; spin++ {
		v := l.w.Load()
		if v&lockWriter == 0 && l.w.CompareAndSwap(v, v|lockWriter) {
			break
		}
		backoff(spin)
	}
	for spin := 0; l.w.Load()&lockReaders != 0; spin++ {
		backoff(spin)
	}
}

func (l *slotLock) unlock() { l.w.Add(^uint32(lockWriter - 1)) }

// kill marks the slot dead; the caller holds the write lock, which kill
// releases.
func (l *slotLock) kill() { l.w.Store(lockDead) }

// set makes the slot live (false) or dead (true) when nobody else can use
// it: on open, and for a slot being created.
func (l *slotLock) set(dead bool) {
	if dead {
		l.w.Store(lockDead)
	} else {
		l.w.Store(0)
	}
}

// backoff spins briefly, then yields: the holder copies a few hundred
// bytes, unless it was preempted in the middle.
func backoff(spin int) {
	if spin > 16 {
		runtime.Gosched()
	}
}
