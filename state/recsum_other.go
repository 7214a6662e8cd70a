//go:build !amd64

package state

import "hash/crc32"

// crc32c is crc32.Checksum(p, castagnoli): hash/crc32 has this machine's
// fastest way (recsum_amd64.go adds one for short inputs on amd64).
func crc32c(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// crcDelta is R(0, a ^ b) for a and b of one length (recsum_delta.go).
func crcDelta(a, b []byte) uint32 { return crcDeltaGo(a, b) }

// commitRecord is the amd64 one-pass commit (recsum_amd64.go); elsewhere
// Store.commitWith does the work.
func commitRecord(rec, scratch, undo []byte, active *uint64, entry uint64) bool { return false }
