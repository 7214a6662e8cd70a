package state

import "sync/atomic"

// The stores of a commit need an order for two reasons: a process killed
// with kill -9 leaves exactly the prefix of its stores that it executed
// (the kernel stops a thread at an instruction boundary, and stores it
// already executed reach the mapping), and readers on other cores must see
// a record's Seq go odd before its bytes change and even only after.
//
// On amd64 both hold for plain stores, with no locked instruction: the gc
// compiler emits a goroutine's stores in program order (in SSA each store
// takes the previous memory state as an argument, and no pass reorders
// them; a store is dropped only when a later store to the same word
// follows with no memory read between, and every pair below has a copy
// that reads memory between them), and x86-TSO makes other cores see
// stores in the order they were executed and keeps loads in order. A
// locked XCHG per store (what atomic.Store compiles to) would also drain
// the store buffer behind a 272-byte copy: about 8 ns each, four per
// commit. order_other.go keeps atomics on weaker machines.

// journalStore sets a lane's journal word.
func journalStore(p *uint64, v uint64) { *p = v }

// seqBegin makes *p odd: readers of the record will retry. It returns the
// even value it found.
func seqBegin(p *uint32) uint32 {
	q := *p
	*p = q + 1
	return q
}

// seqEnd makes *p even again, two above what seqBegin found.
func seqEnd(p *uint32, q uint32) { *p = q + 2 }

// seqRecheck reloads *p after a reader's copy.
func seqRecheck(p *uint32) uint32 { return atomic.LoadUint32(p) }
