package state

import (
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"
)

// sealed fills a record of n bytes (a multiple of 8, at least 16) with
// random bytes and a right Sum.
func sealed(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	ne.PutUint32(b[4:], recordSum(b))
	return b
}

// checkCarried fails unless the Sum carried from old to new is recordSum
// of new, on every way of computing the delta.
func checkCarried(t *testing.T, old, new []byte, what string) {
	t.Helper()
	want := recordSum(new)
	if got := ne.Uint32(old[4:]) ^ crcDelta(old[8:], new[8:]); got != want {
		t.Fatalf("%s (%d bytes): carried %#08x, recordSum %#08x", what, len(old), got, want)
	}
	if got := ne.Uint32(old[4:]) ^ crcDeltaGo(old[8:], new[8:]); got != want {
		t.Fatalf("%s (%d bytes): portable carried %#08x, recordSum %#08x", what, len(old), got, want)
	}
}

// TestCarriedSumIsRecordSum: a Sum carried over a change is bit for bit
// the one recordSum computes, at every record length from 16 bytes to
// past the 4 KiB the amd64 code covers, for the changes that test its
// edges: nothing, the first and the last byte after Sum, the words on
// either side of each 64-byte piece boundary (counted from the end), one
// random byte, a random run, and everything.
func TestCarriedSumIsRecordSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	lengths := []int{4096 + 8, 4096 + 64, 8192}
	for n := 16; n <= 640; n += 8 {
		lengths = append(lengths, n)
	}
	for _, n := range lengths {
		old := sealed(rng, n)
		new := make([]byte, n)
		edit := func(what string, at ...int) {
			copy(new, old)
			for _, i := range at {
				new[i] ^= byte(rng.Uint32()) | 1
			}
			checkCarried(t, old, new, what)
		}
		edit("nothing changed")
		edit("first byte", 8)
		edit("last byte", n-1)
		edit("first and last", 8, n-1)
		for end := n; end-64 > 8; end -= 64 {
			edit("either side of a piece boundary", end-64-1, end-64)
			edit("a boundary's words", end-64-8, end-64+7)
		}
		edit("one byte", 8+rng.IntN(n-8))
		lo := 8 + rng.IntN(n-8)
		run := make([]int, 0, n)
		for i := lo; i < min(n, lo+1+rng.IntN(100)); i++ {
			run = append(run, i)
		}
		edit("a run", run...)
		all := make([]int, 0, n)
		for i := 8; i < n; i++ {
			all = append(all, i)
		}
		edit("everything", all...)
	}
}

// TestCarriedSumKeepsDamage: a record whose Sum is off by e (damage)
// gets a Sum off by the same e after any change: never a right one.
func TestCarriedSumKeepsDamage(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{24, 272, 520} {
		old := sealed(rng, n)
		old[8+rng.IntN(n-8)] ^= 0x10 // damage, after sealing
		e := ne.Uint32(old[4:]) ^ recordSum(old)
		new := append([]byte(nil), old...)
		new[n-1]++
		new[8]--
		if got := ne.Uint32(old[4:]) ^ crcDelta(old[8:], new[8:]); got^recordSum(new) != e {
			t.Fatalf("%d bytes: carried Sum off by %#08x, the damage was %#08x", n, got^recordSum(new), e)
		}
	}
}

// padded is a T with padding of its own (after B); [9]byte is one whose
// record has padding after it.
type padded struct {
	A uint64
	B uint8
}

// TestCommitSumsWhatItWrites: after a commit the record is whole, for a T
// that fills its record, one with padding inside and one followed by
// padding, even when the padding of the committed record held bytes (and
// a Sum over them) that the scratch does not: the carried Sum describes
// the bytes the commit leaves, padding included.
func TestCommitSumsWhatItWrites(t *testing.T) {
	eachCommit(t, func(t *testing.T) {
		t.Run("Player", func(t *testing.T) {
			commitOver(t, 256, func(p *Player) { p.A++; p.Inv[23].Count = 5 })
		})
		t.Run("padded", func(t *testing.T) { commitOver(t, 9, func(p *padded) { p.B++ }) })
		t.Run("[9]byte", func(t *testing.T) { commitOver(t, 9, func(p *[9]byte) { p[8]++ }) })
		t.Run("[5000]byte", func(t *testing.T) { commitOver(t, 5000, func(p *[5000]byte) { p[4999]++ }) })
	})
}

// eachCommit runs test once with this machine's commit and once with the
// portable one (the same, where there is no other).
func eachCommit(t *testing.T, test func(t *testing.T)) {
	t.Run("this machine", test)
	t.Run("portable", func(t *testing.T) {
		portableCommit(t)
		test(t)
	})
}

// commitOver sets the bytes from pad on (counted from Val: the padding of
// Val and its record) in player 1's record to 0xee, seals the record as
// it is, and checks it after an Update by change and after a RunMulti of
// players 1 and 2.
func commitOver[T any](t *testing.T, pad int, change func(*T)) {
	s, _ := mustOpen[T](t, testOptions(t, 8))
	t.Cleanup(func() { s.Close() })
	for id := range uint64(3) {
		if _, err := s.Ensure(id); err != nil {
			t.Fatal(err)
		}
	}
	_, _, rec, _ := s.find(1)
	b := recordBytes(rec)
	for i := recHeader + pad; i < len(b); i++ {
		b[i] = 0xee
	}
	rec.Sum = recordSum(b)
	if err := s.Update(1, func(v *T) error { change(v); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := checkRecord(b, false); err != nil {
		t.Fatalf("after Update: %v", err)
	}
	if err := s.RunMulti([]uint64{1, 2}, nil, func(vs []*T) error { change(vs[0]); change(vs[1]); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{1, 2} {
		_, _, rec, _ := s.find(id)
		if err := checkRecord(recordBytes(rec), false); err != nil {
			t.Fatalf("player %d after RunMulti: %v", id, err)
		}
	}
}

// FuzzCarriedSum: for any record and any set of changed bytes, the
// carried Sum is recordSum's.
func FuzzCarriedSum(f *testing.F) {
	f.Add(uint16(272), uint64(1), []byte{16, 0, 1, 40, 1, 1})
	f.Add(uint16(24), uint64(2), []byte{})
	f.Add(uint16(4104), uint64(3), []byte{255, 15, 7})
	f.Fuzz(func(t *testing.T, size uint16, seed uint64, edits []byte) {
		n := 16 + int(size)%4200/8*8
		rng := rand.New(rand.NewPCG(seed, 7))
		old := sealed(rng, n)
		new := append([]byte(nil), old...)
		for len(edits) >= 3 {
			i := 8 + (int(edits[0])|int(edits[1])<<8)%(n-8)
			new[i] ^= edits[2]
			edits = edits[3:]
		}
		checkCarried(t, old, new, "fuzzed")
		if got, want := crcDelta(old[8:], new[8:]), crc32.Checksum(old[8:], castagnoli)^crc32.Checksum(new[8:], castagnoli); got != want {
			t.Fatalf("delta %#08x, crc32 says %#08x", got, want)
		}
	})
}

// TestDamageOutlivesCommits: a byte flipped in a record in shared memory
// is still found by the scrub after the player was updated, through every
// way a commit is made: a flip far from the change and one beside it
// (Update), a Run with a Guard, a RunTx of one player, and a RunMulti
// (the transaction journal's commit). Sealing the value afresh at each
// commit, as the store once did, would have made each one pass for whole.
// The undamaged player updated beside them stays whole.
func TestDamageOutlivesCommits(t *testing.T) { eachCommit(t, damageOutlivesCommits) }

func damageOutlivesCommits(t *testing.T) {
	const n = 100
	opts := scrubOptions(t, n, false)
	opts.ScrubRate = -1 // off while the damage is made and updated over
	s, _ := mustOpen[Player](t, opts)
	fill(t, s, n)
	damage := map[uint64]func(p *Player){
		11: func(p *Player) { p.Name[5] ^= 0x20 },  // a piece bump does not change
		12: func(p *Player) { p.Check ^= 1 << 40 }, // the piece bump changes
		13: func(p *Player) { p.Tail ^= 1 },
		14: func(p *Player) { p.Inv[5].ID ^= 8 },
		15: func(p *Player) { p.HP ^= 2 },
	}
	for id, hit := range damage {
		_, rec := recordOf(t, s, id)
		hit(&rec.Val)
	}
	var g Guard
	for range 3 {
		for _, id := range []uint64{11, 12} {
			if err := s.Update(id, bump); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Run(13, &g, bump); err != nil {
			t.Fatal(err)
		}
		if err := s.RunTx([]uint64{14}, &g, func(tx *Tx[Player]) error { return bump(tx.Values()[0]) }); err != nil {
			t.Fatal(err)
		}
		if err := s.RunMulti([]uint64{15, 16}, &g, func(vs []*Player) error { bump(vs[0]); return bump(vs[1]) }); err != nil {
			t.Fatal(err)
		}
	}
	for id := range damage {
		if _, rec := recordOf(t, s, id); checkRecord(recordBytes(rec), false) == nil {
			t.Fatalf("player %d passes its check after the updates: the damage was sealed", id)
		}
	}
	if _, rec := recordOf(t, s, 16); checkRecord(recordBytes(rec), false) != nil {
		t.Fatalf("player 16, updated with 15 and never damaged, fails its check")
	}

	opts.ScrubRate = 1 << 30
	_, st := reopen(t, s, opts)
	if st.Failed != len(damage) {
		t.Fatalf("scrub: %v %v; want the %d damaged players found", st, st.Problems, len(damage))
	}
	for id := range damage {
		if p := problemOf(t, st, id); !strings.Contains(p.Cause, "checksum") {
			t.Fatalf("player %d: cause %q does not name the checksum", id, p.Cause)
		}
	}
}

// TestUpdateSealedMakesWhole: the scrub's repair seals a damaged record
// afresh, as it is or with a value put in, where Update carries the
// damage on.
func TestUpdateSealedMakesWhole(t *testing.T) {
	opts := testOptions(t, 10)
	opts.ScrubRate = -1
	s, _ := mustOpen[Player](t, opts)
	t.Cleanup(func() { s.Close() })
	fill(t, s, 3)
	for id := range uint64(3) {
		_, rec := recordOf(t, s, id+1)
		rec.Val.Coins ^= 1 << 33
	}
	keep := func(*Player) error { return nil }
	if err := s.Update(1, keep); err != nil {
		t.Fatal(err)
	}
	if err := s.updateSealed(2, keep); err != nil {
		t.Fatal(err)
	}
	if err := s.updateSealed(3, func(p *Player) error { *p = Player{A: 9}; return nil }); err != nil {
		t.Fatal(err)
	}
	for id, whole := range map[uint64]bool{1: false, 2: true, 3: true} {
		if _, rec := recordOf(t, s, id); (checkRecord(recordBytes(rec), false) == nil) != whole {
			t.Fatalf("player %d: whole is %v, want %v", id, !whole, whole)
		}
	}
	if p, err := s.Get(3); err != nil || p != (Player{A: 9}) {
		t.Fatalf("player 3: %+v, %v; want the value put in", p, err)
	}
	if err := s.updateSealed(99, keep); !errors.Is(err, ErrNotFound) {
		t.Fatalf("updateSealed of a missing player: %v, want ErrNotFound", err)
	}
}

// BenchmarkCarriedSum is the Sum a commit of bump computes, carried over
// from the old record, against recordSum of the new one, interleaved:
// x-sum is the ratio.
func BenchmarkCarriedSum(b *testing.B) {
	var rec, scratch record[Player]
	rec.ID = 5
	rec.Sum = recordSum(recordBytes(&rec))
	var sink uint32
	took := interleave(b, []func(i int) error{
		func(i int) error {
			scratch.Val = rec.Val
			bump(&scratch.Val)
			sink += recordSum(recordBytes(&scratch))
			return nil
		},
		func(i int) error {
			scratch.Val = rec.Val
			bump(&scratch.Val)
			sink += carriedSum(&rec, &scratch)
			return nil
		},
	})
	_ = sink
	b.ReportMetric(float64(took[0].Nanoseconds())/float64(b.N), "sum-ns/op")
	b.ReportMetric(float64(took[1].Nanoseconds())/float64(b.N), "carried-ns/op")
	b.ReportMetric(float64(took[1])/float64(took[0]), "x-sum")
}

// TestImportReplaceSealsDamage: an import with replace puts a whole value
// in, so it seals the record afresh. Carried over, the Sum of a damaged
// record would keep it damaged, and the scrub would later replace the
// imported value with a snapshot's.
func TestImportReplaceSealsDamage(t *testing.T) {
	s, _ := mustOpen[Player](t, testOptions(t, 16))
	defer s.Close()
	fill(t, s, 4)
	doc := exportJSON(t, s, 2)
	_, rec := recordOf(t, s, 3)
	rec.Val.Name[0] ^= 0x20
	if checkRecord(recordBytes(rec), false) == nil {
		t.Fatal("the damaged record passes its check")
	}
	if _, err := importJSON(s, doc, 3, true); err != nil {
		t.Fatal(err)
	}
	if err := checkRecord(recordBytes(rec), false); err != nil {
		t.Fatalf("the record after an import with replace: %v", err)
	}
}
