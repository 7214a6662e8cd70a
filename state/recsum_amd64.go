package state

import (
	"hash/crc32"
	"math/bits"
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

// The amd64 delta (recsum_delta.go). A word w (8 bytes) of a ^ b with j
// words after it adds Z(R(0, w)) = w * x^(32+64j) mod P to R(0, a ^ b).
// The crc32 instruction reduces: crc32q(0, v) = v * x^32 mod P, and
// crc32q(crc32q(0, lo), hi) = (lo * x^64 + hi) * x^32 mod P for the two
// halves of a 128-bit v. PCLMULQDQ multiplies: the carry-less product of
// two bit-reflected values is their product times x, one place short, so
// a 64-bit word times K = x^(64j-33) mod P gives a product whose two
// halves reduce to the word's part; a 32-bit register r times the same K
// gives one that crc32q(0, .) turns into Z(r) for the 8j bytes after it.
// Products are xored first and reduced once (all of it is linear). K for
// j = 0 is x^-33, which exists: P's constant term is 1.
//
// Two ways use it:
//   - commit512 (AVX-512 with VPCLMULQDQ): a whole Store.commit, every
//     word's product taken eight words at a time with no branch, while
//     the same loads feed the undo copy.
//   - crcDelta64 (SSE4.2 and PCLMULQDQ): cuts a ^ b into 64-byte pieces
//     counted from the end (the first piece takes the bytes left over),
//     skips a piece that is all zero, and runs one chain of the crc32
//     instruction over each other one, moved to its place by one product.

// deltaWords bounds both: records up to 4 KiB. Larger ones take the
// portable crcDeltaGo and Store.commitWith.
const deltaWords = 512

// deltaK[deltaWords-1-j] is K for a word with j words after it,
// bit-reflected in the low 32 bits: descending j, so that the constants
// of a record's words, first to last, lie in a row.
var deltaK = func() (k [deltaWords]uint64) {
	// x^-1 = (P + 1) / x: P is 0x1_1edc6f41 in the usual bit order, so
	// (P + 1) / x is 0x8f6e37a0 there, reflected here.
	xinv := bits.Reverse32(0x8f6e37a0)
	c := uint32(1) << 31 // x^0
	for range 33 {
		c = mulModP(c, xinv)
	}
	x64 := xPowModP(64)
	for j := range deltaWords {
		k[deltaWords-1-j] = uint64(c)
		c = mulModP(c, x64)
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

// What the two need of the CPU (x/sys/cpu counts AVX-512 only where the
// kernel saves its registers). AVX-512 with VPCLMULQDQ means Ice Lake or
// Zen 4 and later, which lose little or no clock to 512-bit work (unlike
// Skylake, which lacks VPCLMULQDQ and so never takes this path).
var (
	hasDelta64   = cpu.X86.HasSSE41 && cpu.X86.HasSSE42 && cpu.X86.HasPCLMULQDQ
	hasCommit512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VPCLMULQDQ && cpu.X86.HasAVX2 && cpu.X86.HasSSE42
)

// crcDelta64 is R(0, a ^ b) for the n bytes at a and b: n a multiple of
// 8, from 8 to 8*deltaWords. k is &deltaK[deltaWords-1].
//
//go:noescape
func crcDelta64(a, b *byte, n int, k *uint64) uint32

// crcDelta is R(0, a ^ b) for a and b of one length.
func crcDelta(a, b []byte) uint32 {
	n := len(a)
	if !hasDelta64 || n%8 != 0 || n == 0 || n > 8*deltaWords || len(b) != n {
		return crcDeltaGo(a, b)
	}
	return crcDelta64(unsafe.SliceData(a), unsafe.SliceData(b), n, &deltaK[deltaWords-1])
}

// commit512 is commitRecord's work: see recsum_amd64.s. k is the
// constant of rec's first word, &deltaK[deltaWords-q].
//
//go:noescape
func commit512(rec, scratch, undo *byte, q int, k *uint64, active *uint64, entry uint64)

// commitRecord is Store.commitWith for rec, scratch and undo (whole
// records of one length) with the Sum carried over, in one pass that
// takes the Sum's computation off the stores' path (see recsum_amd64.s);
// false, having done nothing, where it does not apply.
func commitRecord(rec, scratch, undo []byte, active *uint64, entry uint64) bool {
	q := len(rec) / 8
	if !hasCommit512 || q > deltaWords || len(rec)%8 != 0 || len(scratch) != len(rec) || len(undo) != len(rec) {
		return false
	}
	commit512(unsafe.SliceData(rec), unsafe.SliceData(scratch), unsafe.SliceData(undo), q, &deltaK[deltaWords-q], active, entry)
	return true
}
