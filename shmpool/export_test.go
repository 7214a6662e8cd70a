package shmpool

// Offsets and the checksum, for corruption tests that poke header bytes.
const (
	OffMagic       = offMagic
	OffVersion     = offVersion
	OffHeaderSize  = offHeaderSize
	OffChecksum    = offChecksum
	OffSlotSize    = offSlotSize
	OffSegmentSize = offSegmentSize
	OffCapacity    = offCapacity
	OffLayoutOff   = offLayoutOff
	OffLayoutLen   = offLayoutLen
	OffAuxOff      = offAuxOff
	OffAuxLen      = offAuxLen
	OffStatesOff   = offStatesOff
	OffSlotsOff    = offSlotsOff
	OffCreated     = offCreated
	OffFingerprint = offFingerprint
	OffLayoutSum   = offLayoutSum
	HeaderSize     = headerSize
	HeaderRegion   = headerRegion
)

// HeaderChecksum recomputes the checksum of a header's checksummed bytes.
func HeaderChecksum(h []byte) uint32 { return headerChecksum(h) }
