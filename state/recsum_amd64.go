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

// The amd64 delta (recsum_delta.go): crcDelta64 cuts a ^ b into 64-byte
// pieces counted from the end (the first piece takes the n mod 64 bytes
// left over), skips a piece that is all zero, and runs one chain of the
// crc32 instruction from 0 over each other one: r = R(0, piece). A piece
// with j pieces after it adds Z(r) = R(r, 64j zero bytes) = r * x^(512j)
// mod P to the result, which PCLMULQDQ and one more crc32 instruction
// give: crc32q(0, v) = v * x^32 mod P, so crc32q(0, clmul(r, K)) with
// K = x^(512j-33) mod P is Z(r) (the 33 and not 32: the product of two
// bit-reflected values comes out one place short). The products of all
// pieces are xored before that one reduction, which is linear too.

// deltaPieces bounds crcDelta64: records up to 4 KiB after Sum (64 pieces,
// K for up to 63 after one). Larger ones take crcDeltaGo.
const deltaPieces = 64

// deltaK[j] is K for a piece with j pieces after it (deltaK[0] is unused),
// bit-reflected in the low 32 bits.
var deltaK = func() (k [deltaPieces]uint64) {
	for j := 1; j < deltaPieces; j++ {
		k[j] = uint64(xPowModP(512*j - 33))
	}
	return k
}()

// crcPoly is the Castagnoli polynomial, bit-reflected.
const crcPoly = 0x82f63b78

// mulModP is a * b mod P, all bit-reflected (bit 31 is x^0).
func mulModP(a, b uint32) (p uint32) {
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		b = b>>1 ^ -(b&1)&crcPoly // b * x
	}
	return p
}

// xPowModP is x^k mod P, bit-reflected, by squaring.
func xPowModP(k int) uint32 {
	p, sq := uint32(1)<<31, uint32(1)<<30 // x^0, x^1
	for ; k > 0; k >>= 1 {
		if k&1 != 0 {
			p = mulModP(p, sq)
		}
		sq = mulModP(sq, sq)
	}
	return p
}

var hasDelta64 = cpu.X86.HasSSE41 && cpu.X86.HasSSE42 && cpu.X86.HasPCLMULQDQ

// crcDelta64 is R(0, a ^ b) for the n bytes at a and b: n a multiple of
// 8, from 8 to below 64*deltaPieces.
//
//go:noescape
func crcDelta64(a, b *byte, n int, k *[deltaPieces]uint64) uint32

// crcDelta is R(0, a ^ b) for a and b of one length.
func crcDelta(a, b []byte) uint32 {
	n := len(a)
	if !hasDelta64 || n%8 != 0 || n == 0 || n >= 64*deltaPieces || len(b) != n {
		return crcDeltaGo(a, b)
	}
	return crcDelta64(unsafe.SliceData(a), unsafe.SliceData(b), n, &deltaK)
}
