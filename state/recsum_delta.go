package state

import "hash/crc32"

// A commit does not checksum the new record afresh: it carries the old
// record's Sum over. Let R(s, X) be the CRC register after the bytes X
// from state s, with no inversion (recsum_amd64.go); it is linear in s
// and in X together, and Sum(X) = ^R(^0, X). For two records of one
// length,
//
//	Sum(new) = Sum(old) ^ R(0, old ^ new)
//
// which is the value recordSum would give: Sum stays CRC-32C of every
// byte after it, bit for bit, and old segments and snapshots read as
// before. old ^ new is zero but for the words a handler changed; the
// amd64 code skips the parts that are (recsum_amd64.go). Measured, that
// alone saved little: a commit waits on the checksum's latency more than
// on its work, and the time came back from commit512, which computes it
// off the path of the commit's stores.
//
// What carrying is for is damage. Damage made in shared memory (a stray
// write, a flipped bit) leaves a record whose Sum is off by some e = Sum ^
// recordSum(record); a checksum computed afresh at the next commit would
// seal the damaged bytes as good, where the carried one stays off by the
// same e through every later commit, so the scrub and recovery still find
// the record. Only a deliberate repair (the scrub's restore, a replacing
// import) seals a record afresh: commitSealed.

// carriedSum is the Sum rec will have once a commit has written scratch
// into it (every byte after the header, padding included: Store.commitWith):
// rec's Sum moved by what changes. scratch's id is made rec's first (the
// same id: the caller found rec by it), since a commit keeps rec's.
func carriedSum[T any](rec, scratch *record[T]) uint32 {
	scratch.ID = rec.ID
	return rec.Sum ^ crcDelta(recordBytes(rec)[8:], recordBytes(scratch)[8:])
}

// crcDeltaGo is R(0, a ^ b) for a and b of one length, in portable Go.
// R(0, ·) of the equal prefix is 0, so it is skipped; the rest is the two
// checksums' xor (their ^R(^0, ·) differ by exactly R(0, a ^ b): the
// inversions and the start state cancel), which hash/crc32 computes with
// this machine's crc32 instructions: about two fresh checksums.
func crcDeltaGo(a, b []byte) uint32 {
	b = b[:len(a)]
	i := 0
	for i+8 <= len(a) && ne.Uint64(a[i:]) == ne.Uint64(b[i:]) {
		i += 8
	}
	return crc32.Checksum(a[i:], castagnoli) ^ crc32.Checksum(b[i:], castagnoli)
}
