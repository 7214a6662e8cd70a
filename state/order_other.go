//go:build !amd64

package state

import "sync/atomic"

// See order_amd64.go. Machines with weaker ordering than x86-TSO get
// atomics: a read-modify-write (a full barrier) to start a commit, a
// store-release to end it, and a read-don't-modify-write for the reader's
// recheck, which orders the reader's copy before it (Boehm, "Can seqlocks
// get along with programming language memory models?", 2012).

func journalStore(p *uint64, v uint64) { atomic.StoreUint64(p, v) }

func seqBegin(p *uint32) uint32 { return atomic.AddUint32(p, 1) - 1 }

func seqEnd(p *uint32, q uint32) { atomic.StoreUint32(p, q+2) }

func seqRecheck(p *uint32) uint32 { return atomic.AddUint32(p, 0) }
