package shmpool

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Header layout, version 1. The first 20 bytes are frozen for every future
// version: magic, header version, header size and the checksum, which covers
// bytes [0, headerSize) with the checksum field read as zero. A later version
// may grow the header; an older reader still finds and checks the prefix and
// refuses the version cleanly.
//
// The owner words (clean flag, owner pid, attach count) live outside the
// checksummed range on purpose: they change on every open and close, each is
// written with one atomic store, and a kill -9 between two such stores must
// not make the segment's checksum wrong.
const (
	headerVersion = 1
	headerSize    = 136 // checksummed bytes
	headerRegion  = 4096
	pageSize      = 4096

	offMagic       = 0   // [8]byte
	offVersion     = 8   // uint32
	offHeaderSize  = 12  // uint32
	offChecksum    = 16  // uint32
	offSlotSize    = 20  // uint32
	offSegmentSize = 24  // uint64
	offCapacity    = 32  // uint64
	offLayoutOff   = 40  // uint64
	offLayoutLen   = 48  // uint64
	offAuxOff      = 56  // uint64
	offAuxLen      = 64  // uint64
	offStatesOff   = 72  // uint64
	offSlotsOff    = 80  // uint64
	offCreated     = 88  // int64, unix nanoseconds
	offFingerprint = 96  // [32]byte, up to 128
	offLayoutSum   = 128 // uint32: CRC-32C of the stored layout description

	// Owner words: 8-byte aligned, updated atomically, not checksummed.
	offClean       = 256 // uint64: 1 after a clean Close, 0 while owned
	offOwnerPID    = 264 // uint64
	offAttachCount = 272 // uint64
)

var magic = [8]byte{'H', 'H', 'S', 'H', 'M', 'P', 'L', 0}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// geometry is everything the checksummed header says about the segment.
type geometry struct {
	slotSize    uint64
	segmentSize uint64
	capacity    uint64
	layoutOff   uint64
	layoutLen   uint64
	auxOff      uint64
	auxLen      uint64
	statesOff   uint64
	slotsOff    uint64
	created     int64
	fingerprint [32]byte
	layoutSum   uint32
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

// plan computes the geometry of a new segment. It fails rather than
// overflow on absurd capacities.
func plan(valueSize uint64, capacity uint64, layoutLen, auxLen uint64) (geometry, error) {
	g := geometry{capacity: capacity, layoutLen: layoutLen, auxLen: auxLen}
	g.slotSize = alignUp(max(valueSize, 1), 8)
	if capacity == 0 || capacity > math.MaxUint32-1 {
		return g, fmt.Errorf("shmpool: capacity %d out of range [1, %d]", capacity, uint64(math.MaxUint32-1))
	}
	if g.slotSize > math.MaxUint32 || auxLen > 1<<40 || layoutLen > 1<<24 {
		return g, fmt.Errorf("shmpool: slot size %d, aux %d or layout %d too large", g.slotSize, auxLen, layoutLen)
	}
	g.layoutOff = headerRegion
	g.auxOff = alignUp(g.layoutOff+layoutLen, pageSize)
	g.statesOff = alignUp(g.auxOff+auxLen, pageSize)
	g.slotsOff = alignUp(g.statesOff+8*capacity, pageSize)
	if g.slotSize > (1<<46)/capacity {
		return g, fmt.Errorf("shmpool: %d slots of %d bytes is too large", capacity, g.slotSize)
	}
	g.segmentSize = alignUp(g.slotsOff+g.slotSize*capacity, pageSize)
	return g, nil
}

func encodeHeader(b []byte, g geometry) {
	le := binary.LittleEndian
	clear(b[:headerRegion])
	copy(b[offMagic:], magic[:])
	le.PutUint32(b[offVersion:], headerVersion)
	le.PutUint32(b[offHeaderSize:], headerSize)
	le.PutUint32(b[offSlotSize:], uint32(g.slotSize))
	le.PutUint64(b[offSegmentSize:], g.segmentSize)
	le.PutUint64(b[offCapacity:], g.capacity)
	le.PutUint64(b[offLayoutOff:], g.layoutOff)
	le.PutUint64(b[offLayoutLen:], g.layoutLen)
	le.PutUint64(b[offAuxOff:], g.auxOff)
	le.PutUint64(b[offAuxLen:], g.auxLen)
	le.PutUint64(b[offStatesOff:], g.statesOff)
	le.PutUint64(b[offSlotsOff:], g.slotsOff)
	le.PutUint64(b[offCreated:], uint64(g.created))
	copy(b[offFingerprint:offFingerprint+32], g.fingerprint[:])
	le.PutUint32(b[offLayoutSum:], g.layoutSum)
	le.PutUint32(b[offChecksum:], headerChecksum(b[:headerSize]))
}

func headerChecksum(h []byte) uint32 {
	c := crc32.Update(0, castagnoli, h[:offChecksum])
	c = crc32.Update(c, castagnoli, []byte{0, 0, 0, 0})
	return crc32.Update(c, castagnoli, h[offChecksum+4:])
}

// decodeHeader validates a segment's header in the fixed order size, magic,
// checksum, version, geometry. It reads only b, so it is safe on any bytes.
func decodeHeader(b []byte, fileSize uint64) (geometry, error) {
	le := binary.LittleEndian
	var g geometry
	if fileSize < headerRegion || uint64(len(b)) < headerRegion {
		return g, fmt.Errorf("%w: %d bytes, a header needs %d", ErrTooSmall, fileSize, headerRegion)
	}
	if [8]byte(b[offMagic:offMagic+8]) != magic {
		return g, fmt.Errorf("%w: found %q, want %q", ErrMagic, b[offMagic:offMagic+8], magic[:])
	}
	hsize := uint64(le.Uint32(b[offHeaderSize:]))
	if hsize < offChecksum+4 || hsize > headerRegion {
		return g, fmt.Errorf("%w: header size %d outside [%d, %d]", ErrChecksum, hsize, offChecksum+4, headerRegion)
	}
	if got, want := le.Uint32(b[offChecksum:]), headerChecksum(b[:hsize]); got != want {
		return g, fmt.Errorf("%w: stored %#08x, computed %#08x", ErrChecksum, got, want)
	}
	if v := le.Uint32(b[offVersion:]); v != headerVersion {
		return g, fmt.Errorf("%w: version %d, this build reads %d", ErrVersion, v, headerVersion)
	}
	if hsize != headerSize {
		return g, fmt.Errorf("%w: header size %d, version %d has %d", ErrCorrupt, hsize, headerVersion, headerSize)
	}
	g = geometry{
		slotSize:    uint64(le.Uint32(b[offSlotSize:])),
		segmentSize: le.Uint64(b[offSegmentSize:]),
		capacity:    le.Uint64(b[offCapacity:]),
		layoutOff:   le.Uint64(b[offLayoutOff:]),
		layoutLen:   le.Uint64(b[offLayoutLen:]),
		auxOff:      le.Uint64(b[offAuxOff:]),
		auxLen:      le.Uint64(b[offAuxLen:]),
		statesOff:   le.Uint64(b[offStatesOff:]),
		slotsOff:    le.Uint64(b[offSlotsOff:]),
		created:     int64(le.Uint64(b[offCreated:])),
		fingerprint: [32]byte(b[offFingerprint : offFingerprint+32]),
		layoutSum:   le.Uint32(b[offLayoutSum:]),
	}
	// The checksum passed, so these were written by a shmpool; still, the
	// geometry must be exactly what plan computes for the same inputs, or
	// offsets could point outside the file.
	want, err := plan(g.slotSize, g.capacity, g.layoutLen, g.auxLen)
	if err != nil {
		return g, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if want.slotSize != g.slotSize || want.segmentSize != g.segmentSize || want.layoutOff != g.layoutOff ||
		want.auxOff != g.auxOff || want.statesOff != g.statesOff || want.slotsOff != g.slotsOff {
		return g, fmt.Errorf("%w: header geometry does not add up (segment %d, slots at %d)", ErrCorrupt, g.segmentSize, g.slotsOff)
	}
	if fileSize < g.segmentSize {
		return g, fmt.Errorf("%w: file has %d bytes, header says %d", ErrTooSmall, fileSize, g.segmentSize)
	}
	return g, nil
}
