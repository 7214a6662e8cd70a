package state

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sync"
	"sync/atomic"
	"unsafe"
)

// The aux region of a state segment:
//
//	[0, 64)        aux header: magic, version, lanes, record size, capacity,
//	               index length, journal and index offsets, CRC-32C
//	[64, ...)      journal: one entry per lane, 64-byte aligned so lanes
//	               never share a cache line: an active word, then a copy of
//	               the record being overwritten (the undo record)
//	[..., ...)     transaction journal (txjournal.go; version 3 on): the undo
//	               records of a transaction over several records, and the
//	               timer words it changes
//	[..., ...)     timer words (timers.go; version 3 on): one uint64 a timer
//	               slot, odd while the slot holds a pending timer
//	[..., ...)     timer bodies (version 3 on): 128 bytes a timer slot
//	[..., +64)     index header (index.go; version 2 on)
//	[..., end)     index: one uint32 per entry
//
// The header is written once, when the segment is built, and checked on
// every attach: a segment whose aux does not add up is refused by name.
// Older versions (1: no index header; 2: no transaction journal) are
// still read (migration converts them), never attached.
const (
	auxMagic   = "HHSTAUX\x01"
	auxVersion = 3
	auxHeader  = 64

	offAuxVersion  = 8  // uint32
	offAuxLanes    = 12 // uint32
	offAuxRecSize  = 16 // uint32
	offAuxTimers   = 20 // uint32: timer slots (version 3 on)
	offAuxCapacity = 24 // uint64
	offAuxIndexLen = 32 // uint64
	offAuxJournal  = 40 // uint64
	offAuxIndex    = 48 // uint64
	offAuxSum      = 56 // uint32 over [0, 56)
)

// Journal active word: 0 when the lane is idle, else kind<<32 | slot.
const (
	journalUpdate = 1 // undo: copy the saved record back over the slot
	journalCreate = 2 // undo: free the slot (an Ensure that did not finish)
	journalDelete = 3 // redo: take the slot out of the index and free it
)

// auxGeom is the decoded aux header.
type auxGeom struct {
	version  int
	lanes    int
	recSize  int
	capacity int
	indexLen int
	journal  int // offset of lane 0's entry
	stride   int // bytes per lane entry
	tx       int // offset of the transaction journal (version 3 on)
	timers   int // timer slots (version 3 on)
	words    int // offset of the timer words
	bodies   int // offset of the timer bodies
	index    int // offset of the index
	size     int // total aux bytes
}

// planAux is the aux layout of a segment of the given version: the
// current one for a new segment, an older one to read a segment that
// migration converts.
func planAux(version, lanes, recSize, capacity, timers int) auxGeom {
	g := auxGeom{version: version, lanes: lanes, recSize: recSize, capacity: capacity, indexLen: indexLen(capacity), journal: auxHeader}
	g.stride = alignUp(8+recSize, 64)
	end := g.journal + lanes*g.stride
	if version >= 3 {
		g.tx = alignUp(end, 64)
		g.timers = timers
		g.words = alignUp(g.tx+txJournalSize(recSize), 64)
		g.bodies = alignUp(g.words+8*timers, 64)
		end = g.bodies + timers*timerBodySize
	}
	g.index = alignUp(end, 64)
	if version >= 2 {
		g.index += indexHeader
	}
	g.size = g.index + 4*g.indexLen
	return g
}

func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }

func encodeAux(b []byte, g auxGeom) {
	le := binary.LittleEndian
	copy(b, auxMagic)
	le.PutUint32(b[offAuxVersion:], auxVersion)
	le.PutUint32(b[offAuxLanes:], uint32(g.lanes))
	le.PutUint32(b[offAuxRecSize:], uint32(g.recSize))
	le.PutUint32(b[offAuxTimers:], uint32(g.timers))
	le.PutUint64(b[offAuxCapacity:], uint64(g.capacity))
	le.PutUint64(b[offAuxIndexLen:], uint64(g.indexLen))
	le.PutUint64(b[offAuxJournal:], uint64(g.journal))
	le.PutUint64(b[offAuxIndex:], uint64(g.index))
	le.PutUint32(b[offAuxSum:], crc32.Checksum(b[:offAuxSum], castagnoli))
	encodeIndexHeader(b, g)
}

// decodeAux validates an aux header against the segment it sits in: it
// must be exactly what planAux computes for the stored lanes, record size
// and capacity, so no offset can point outside the region.
func decodeAux(b []byte, recSize, capacity int) (auxGeom, error) {
	le := binary.LittleEndian
	if len(b) < auxHeader {
		return auxGeom{}, fmt.Errorf("%w: aux region of %d bytes has no header", ErrCorrupt, len(b))
	}
	if string(b[:8]) != auxMagic {
		return auxGeom{}, fmt.Errorf("%w: aux magic %q, want %q", ErrCorrupt, b[:8], auxMagic)
	}
	if got, want := le.Uint32(b[offAuxSum:]), crc32.Checksum(b[:offAuxSum], castagnoli); got != want {
		return auxGeom{}, fmt.Errorf("%w: aux header checksum %#08x, computed %#08x", ErrCorrupt, got, want)
	}
	v := le.Uint32(b[offAuxVersion:])
	if v < 1 || v > auxVersion {
		return auxGeom{}, fmt.Errorf("%w: aux version %d, this build reads 1 to %d", ErrCorrupt, v, auxVersion)
	}
	lanes := int(le.Uint32(b[offAuxLanes:]))
	if lanes <= 0 || lanes > maxLanes || lanes&(lanes-1) != 0 {
		return auxGeom{}, fmt.Errorf("%w: %d lanes", ErrCorrupt, lanes)
	}
	timers := 0
	if v >= 3 {
		if timers = int(le.Uint32(b[offAuxTimers:])); timers > maxTimers {
			return auxGeom{}, fmt.Errorf("%w: %d timer slots, at most %d", ErrCorrupt, timers, maxTimers)
		}
	}
	g := planAux(int(v), lanes, recSize, capacity, timers)
	if int(le.Uint32(b[offAuxRecSize:])) != recSize || le.Uint64(b[offAuxCapacity:]) != uint64(capacity) ||
		le.Uint64(b[offAuxIndexLen:]) != uint64(g.indexLen) || le.Uint64(b[offAuxJournal:]) != uint64(g.journal) ||
		le.Uint64(b[offAuxIndex:]) != uint64(g.index) || g.size > len(b) {
		return auxGeom{}, fmt.Errorf("%w: aux geometry does not match the segment (record %d bytes, %d slots)", ErrCorrupt, recSize, capacity)
	}
	return g, nil
}

// lane serializes the transactions of the players hashed onto it. Its
// journal entry (active word and undo record) is in the segment and never
// moves; the part a running transaction holds (the mutex and the scratch
// the callback writes) is a laneHold that Fence can replace, so that a
// callback that never returns costs its own goroutine, not the lane.
type lane[T any] struct {
	cur    atomic.Pointer[laneHold[T]]
	active *uint64    // in the segment
	undo   *record[T] // in the segment
	_      [64]byte   // keep neighbouring lanes' hot words apart
}

// laneHold is what a transaction holds while it runs: the lane's mutex and
// the scratch its callback changes, so that Update allocates nothing.
//
// The holds of all lanes are allocated one after another, side by side in
// the heap, and two cores writing the scratches of neighbouring lanes slow
// each other down even when no cache line is shared: measured on this
// project's 2-core machine, copying a record into the scratches of lanes
// of its own from each core cost 6x the CPU of one core doing it (109 vs
// 18 ns) with 64-byte pads, and the same as one core with 256-byte pads,
// which keep neighbours' written bytes at least 512 bytes apart (likely
// the hardware fetching lines around a written one for ownership).
type laneHold[T any] struct {
	_  [256]byte
	mu sync.Mutex
	// dead is set when Fence replaced this hold; whoever acquires mu after
	// that lets go and takes the lane's new hold instead.
	dead atomic.Bool
	// scratch is a whole record, not just a T, so that the checksum of the
	// new value (ID, Val and zero padding, contiguous) is computed here,
	// before the record is touched, without copying or allocating.
	scratch record[T]
	// tx is the transaction of a RunTx whose players all hash onto this
	// lane (multi.go), made on first use.
	tx *Tx[T]
	_  [256]byte
}

// lock takes the lane: its current hold's mutex, skipping holds that a
// Fence retired while this caller waited on them.
func (ln *lane[T]) lock() *laneHold[T] {
	for {
		h := ln.cur.Load()
		h.mu.Lock()
		if !h.dead.Load() {
			return h
		}
		h.mu.Unlock()
	}
}

func laneEntry[T any](aux []byte, g auxGeom, i int) (*uint64, *record[T]) {
	off := g.journal + i*g.stride
	return (*uint64)(unsafe.Pointer(&aux[off])), (*record[T])(unsafe.Pointer(&aux[off+8]))
}

func indexTable(aux []byte, g auxGeom) []uint32 {
	if g.indexLen == 0 {
		return nil
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(&aux[g.index])), g.indexLen)
}
