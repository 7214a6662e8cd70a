package state

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestCommitRecordIsCommitWith: the one-pass commit (where this machine
// has it) leaves what Store.commitWith leaves, for records of 2 to 520
// words at 8-byte alignments: the old record in undo, the header but for
// Seq (two higher) and Sum, scratch's bytes after it, the Sum of those
// bytes (carried: a damaged record stays off by as much), the journal
// word idle, and nothing written outside the three records.
func TestCommitRecordIsCommitWith(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	const guard = 72
	fill := func(b []byte) {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	}
	ran := false
	for q := 2; q <= 520; q++ {
		for _, damaged := range []bool{false, true} {
			n := 8 * q
			off := 8 * rng.IntN(3)
			bufs := make([][]byte, 3) // rec, scratch, undo, each with guards
			for i := range bufs {
				bufs[i] = make([]byte, off+n+2*guard)
				fill(bufs[i])
			}
			rec, scratch, undo := bufs[0][off+guard:][:n], bufs[1][off+guard:][:n], bufs[2][off+guard:][:n]
			ne.PutUint32(rec, 2*rng.Uint32())
			ne.PutUint32(rec[4:], recordSum(rec))
			if damaged {
				rec[8+rng.IntN(n-8)] ^= 0x80
			}
			for range rng.IntN(4) {
				copy(scratch[rng.IntN(n):], rec[rng.IntN(n):]) // some of it the same
			}
			copy(scratch[8:16], rec[8:16]) // as commit makes it
			old := append([]byte(nil), rec...)
			sc := append([]byte(nil), scratch...)
			before := [][]byte{append([]byte(nil), bufs[0]...), append([]byte(nil), bufs[1]...), append([]byte(nil), bufs[2]...)}
			active := uint64(0x1234)

			if !commitRecord(rec, scratch, undo, &active, 5<<32|7) {
				if n/8 <= 512 && ran {
					t.Fatalf("%d words: commitRecord declined a size it took before", q)
				}
				for i := range bufs {
					if !bytes.Equal(bufs[i], before[i]) {
						t.Fatalf("%d words: commitRecord declined but wrote", q)
					}
				}
				continue
			}
			ran = true
			want := append(append([]byte(nil), old[:16]...), sc[16:]...)
			ne.PutUint32(want, ne.Uint32(old)+2)
			e := ne.Uint32(old[4:]) ^ recordSum(old)
			ne.PutUint32(want[4:], recordSum(want)^e)
			switch {
			case !bytes.Equal(undo, old):
				t.Fatalf("%d words: undo is not the old record", q)
			case !bytes.Equal(rec, want):
				t.Fatalf("%d words (damaged %v): record\n%x\nwant\n%x", q, damaged, rec, want)
			case active != 0:
				t.Fatalf("%d words: journal word %#x, want idle", q, active)
			case !bytes.Equal(scratch, sc):
				t.Fatalf("%d words: scratch changed", q)
			}
			for i, b := range bufs {
				if !bytes.Equal(b[:off+guard], before[i][:off+guard]) || !bytes.Equal(b[off+guard+n:], before[i][off+guard+n:]) {
					t.Fatalf("%d words: wrote outside record %d", q, i)
				}
			}
		}
	}
	t.Logf("one-pass commit on this machine: %v", ran)
}
