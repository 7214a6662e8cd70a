package state

// The record checksum is CRC-32C (Castagnoli) of every byte after Sum:
// what recovery, the scrub, migration and snapshot readers check, so its
// value is part of the segment format and never changes. How it is
// computed may. A commit carries the old record's Sum over to the new
// value (recsum_delta.go) instead of computing it afresh, which also keeps
// damage visible. A fresh one (creates, checks, repairs) is recordSum:
// hash/crc32 runs one dependent chain of crc32 instructions below 504
// bytes (a 256-byte T is 33 of them, each waiting for the last), so
// recsum_amd64.go runs three chains side by side and joins them, which
// gives the same value; recsum_other.go leaves it to hash/crc32.

// recordSum is the checksum of a record's bytes b (the whole record): every
// byte after the Sum field.
func recordSum(b []byte) uint32 { return crc32c(b[8:]) }
