package state

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// TestRecordSumIsCRC32C: the record checksum is part of the segment
// format, so however it is computed it must be hash/crc32's CRC-32C, at
// every length (records are multiples of 8 bytes; other lengths take the
// fallback) and from every alignment.
func TestRecordSumIsCRC32C(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 700)
	for n := range 640 {
		for off := range 3 {
			p := buf[off : off+n]
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			if got, want := crc32c(p), crc32.Checksum(p, castagnoli); got != want {
				t.Fatalf("%d bytes at offset %d: %#08x, hash/crc32 says %#08x", n, off, got, want)
			}
		}
	}
	var r record[Player]
	r.ID, r.Val.A, r.Val.Inv[23].Count = 7, 3, 9
	b := recordBytes(&r)
	if got, want := recordSum(b), crc32.Checksum(b[8:], castagnoli); got != want {
		t.Fatalf("recordSum %#08x, want %#08x", got, want)
	}
}

// BenchmarkRecordSum is the record checksum of a 256-byte T (264 bytes
// after Sum) against hash/crc32 over the same bytes, interleaved in
// blocks: x-crc32 is the ratio.
func BenchmarkRecordSum(b *testing.B) {
	var r record[Player]
	p := recordBytes(&r)
	var sink uint32
	took := interleave(b, []func(i int) error{
		func(i int) error { r.Val.A = int64(i); sink += crc32.Checksum(p[8:], castagnoli); return nil },
		func(i int) error { r.Val.A = int64(i); sink += recordSum(p); return nil },
	})
	_ = sink
	b.ReportMetric(float64(took[0].Nanoseconds())/float64(b.N), "crc32-ns/op")
	b.ReportMetric(float64(took[1].Nanoseconds())/float64(b.N), "sum-ns/op")
	b.ReportMetric(float64(took[1])/float64(took[0]), "x-crc32")
}
