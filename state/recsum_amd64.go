package state

import (
	"hash/crc32"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Joining three chains: let R(s, X) be the CRC register after the bytes X
// from state s (no inversion), linear in s and in X. For X = A B C with
// |B| = |C| = n,
//
//	R(s, ABC) = Z(Z(R(s, A)) ^ R(0, B)) ^ R(0, C)
//	          = Z2(R(s, A)) ^ Z(R(0, B)) ^ R(0, C)
//
// where Z(r) = R(r, n zero bytes) and Z2(r) = R(r, 2n zero bytes) are
// linear in r: four table lookups each, one per byte of r, and the two do
// not wait for each other. crc32.Checksum(X) is ^R(^0, X).

// crcShift holds Z for one n and Z2: z[j][x] = R(x << 8j, n zero bytes),
// z2 likewise for 2n.
type crcShift struct{ z, z2 [4][256]uint32 }

func shiftBy(t *[4][256]uint32, r uint32) uint32 {
	return t[0][r&0xff] ^ t[1][r>>8&0xff] ^ t[2][r>>16&0xff] ^ t[3][r>>24]
}

// newCRCShift builds Z and Z2 for n zero bytes.
func newCRCShift(n int) *crcShift {
	t := new(crcShift)
	zeroTables(&t.z, n)
	zeroTables(&t.z2, 2*n)
	return t
}

// zeroTables fills t with R(., n zero bytes), from the images of the 32
// single bits (it is linear).
func zeroTables(t *[4][256]uint32, n int) {
	zeros := make([]byte, n)
	var bit [32]uint32
	for i := range bit {
		bit[i] = ^crc32.Update(^uint32(1<<i), castagnoli, zeros)
	}
	for j := range t {
		for x := range t[j] {
			var v uint32
			for b := range 8 {
				if x>>b&1 != 0 {
					v ^= bit[8*j+b]
				}
			}
			t[j][x] = v
		}
	}
}

// maxSplitQwords bounds the three-chain path: from 504 bytes on, hash/crc32
// splits the buffer itself.
const maxSplitQwords = 504 / 24

// crcShifts caches the tables for n = 8k bytes, by k: a process checksums
// records of one or two sizes (two while migrating), so few get built.
var crcShifts [maxSplitQwords + 1]atomic.Pointer[crcShift]

func crcShiftFor(k int) *crcShift {
	if t := crcShifts[k].Load(); t != nil {
		return t
	}
	crcShifts[k].CompareAndSwap(nil, newCRCShift(8*k))
	return crcShifts[k].Load()
}

// crc32cJoin is crc32.Checksum of A B C from the three chains' registers:
// a = R(^0, A), b = R(0, B), c = R(0, C), |B| = |C| = 8k.
func crc32cJoin(a, b, c uint32, k int) uint32 {
	t := crcShiftFor(k)
	return ^(shiftBy(&t.z2, a) ^ shiftBy(&t.z, b) ^ c)
}

// crc32c3 runs three chains of the crc32 instruction over p: chain A over
// the first 8(r+k) bytes from ^0, chains B and C over the next two 8k
// bytes from 0 (see recsum.go). k must be at least 1.
//
//go:noescape
func crc32c3(p *byte, r, k int) (a, b, c uint32)

// crc32c is crc32.Checksum(p, castagnoli), in three chains for the sizes
// records have (a multiple of 8 bytes, 24 to 503).
func crc32c(p []byte) uint32 {
	n := len(p)
	if !cpu.X86.HasSSE42 || n%8 != 0 || n < 24 || n >= 24*maxSplitQwords {
		return crc32.Checksum(p, castagnoli)
	}
	q := n / 8
	k := q / 3
	a, b, c := crc32c3(unsafe.SliceData(p), q-3*k, k)
	return crc32cJoin(a, b, c, k)
}
