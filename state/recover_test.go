package state

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// markUnclean sets the segment's clean word (shmpool header offset 256,
// outside the header checksum) to 0: what an owner killed with kill -9
// leaves. The kill storm test does it for real with child processes.
func markUnclean(t testing.TB, opts Options) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(opts.ShmDir, opts.Name), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 8), 256); err != nil {
		t.Fatal(err)
	}
}

// Recovery of enough slots to be split over several workers: every record
// checked, a record with a flipped byte and a second record claiming an
// existing id are lost (and named), and every other player is found
// through the rebuilt index with its value.
func TestRecoveryChecksEveryRecordAndRebuildsIndex(t *testing.T) {
	const n = 40_000 // > 2 * 1<<14: two workers on a 2-CPU machine
	opts := testOptions(t, n)
	s, _ := mustOpen[Player](t, opts)
	fill(t, s, n)
	slotOf := func(id uint64) uint32 {
		slot, ok := s.idx.find(id)
		if !ok {
			t.Fatalf("player %d not in the index", id)
		}
		return slot
	}
	// A byte of player 777's value flips (its Sum no longer matches).
	_, rec, _ := s.pool.Lookup(int(slotOf(777)))
	rec.Val.Coins ^= 1 << 20
	// Player 30001's record claims to be player 12 (with a valid Sum): two
	// records, one id. The lower slot (the real 12) is kept.
	low, high := slotOf(12), slotOf(30001)
	if low > high {
		t.Fatalf("fill put player 12 in slot %d after player 30001's %d", low, high)
	}
	_, rec, _ = s.pool.Lookup(int(high))
	rec.ID = 12
	rec.Sum = recordSum(recordBytes(rec))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	markUnclean(t, opts)

	s, rep := mustOpen[Player](t, opts)
	defer s.Close()
	rr := rep.Recovery
	if rep.How != Recovered || rr == nil {
		t.Fatalf("open: %v", rep)
	}
	if rr.Checked != n || rr.Lost != 2 || !slices.Contains(rr.LostIDs, 777) || !slices.Contains(rr.LostIDs, 12) {
		t.Fatalf("recovery: %v, lost ids %v; want %d checked, 777 and a duplicate 12 lost", rr, rr.LostIDs, n)
	}
	if s.Len() != n-2 {
		t.Fatalf("Len = %d, want %d", s.Len(), n-2)
	}
	for _, id := range []uint64{777, 30001} {
		if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%d) = %v, want ErrNotFound", id, err)
		}
	}
	if slot, _ := s.idx.find(12); slot != low {
		t.Fatalf("player 12 in slot %d, want the first record's slot %d", slot, low)
	}
	keep := func(id uint64) bool { return id != 777 && id != 30001 }
	for id := uint64(1); id <= n; id++ {
		if !keep(id) {
			continue
		}
		p, err := s.Get(id)
		if err != nil || p.Coins != int64(id)*3 || p.consistent(id) != "" {
			t.Fatalf("player %d after recovery: %+v, %v", id, p.Coins, err)
		}
	}
	if c := s.idx.count(); c != n-2 {
		t.Fatalf("index has %d entries for %d players", c, n-2)
	}
	// The rebuilt index still deletes and inserts correctly.
	for id := uint64(1); id <= 1000; id++ {
		if keep(id) {
			if err := s.Delete(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	for id := uint64(1001); id <= n; id += 7 {
		if _, err := s.Get(id); keep(id) && err != nil {
			t.Fatalf("after deletes, Get(%d): %v", id, err)
		}
	}
}
