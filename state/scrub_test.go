package state

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// scrubOptions: an unthrottled scrub, so that a test waits only for the
// work itself.
func scrubOptions(t *testing.T, capacity int, snapshots bool) Options {
	opts := testOptions(t, capacity)
	opts.ScrubRate = 1 << 30
	if snapshots {
		opts.SnapshotDir = filepath.Join(opts.ShmDir, "snap")
	}
	return opts
}

// filled opens a store of n players and waits for its first scrub pass.
func filled(t *testing.T, opts Options, n int) *Store[Player] {
	t.Helper()
	s, _ := mustOpen[Player](t, opts)
	fill(t, s, n)
	waitScrub(t, s)
	return s
}

// reopen closes s cleanly and opens it again with opts, returning the
// scrub's first pass over the reopened store.
func reopen(t *testing.T, s *Store[Player], opts Options) (*Store[Player], ScrubStatus) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, rep := mustOpen[Player](t, opts)
	t.Cleanup(func() { s.Close() })
	if rep.How != Attached {
		t.Fatalf("reopen: %v", rep)
	}
	return s, waitScrub(t, s)
}

func problemOf(t *testing.T, st ScrubStatus, id uint64) ScrubProblem {
	t.Helper()
	i := slices.IndexFunc(st.Problems, func(p ScrubProblem) bool { return p.ID == id })
	if i < 0 {
		t.Fatalf("scrub did not report player %d: %v %v", id, st, st.Problems)
	}
	return st.Problems[i]
}

// Damaged records are restored from the newest snapshot that holds them
// whole, and the report names the snapshot and the loss bound:
//   - 777 (a flipped value byte) and 778 (an odd Seq, on which every read
//     would otherwise wait for ever) come from the newer snapshot, losing
//     the update made after it;
//   - 779 was damaged before the newer snapshot was written, so that one
//     holds it damaged, and it comes from the older snapshot.
func TestScrubRestoresFromNewestSnapshotHoldingThePlayer(t *testing.T) {
	const n = 3000 // several scrub chunks
	opts := scrubOptions(t, n, true)
	opts.ScrubRate = -1 // off while the damage is set up
	s, _ := mustOpen[Player](t, opts)
	fill(t, s, n)
	step := func(id uint64) {
		if err := s.Update(id, func(p *Player) error { p.step(id); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	older, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]Player{}
	for _, id := range []uint64{777, 778, 779} {
		step(id)
		want[id], _ = s.Get(id)
	}
	_, rec := recordOf(t, s, 779)
	rec.Val.Coins ^= 1 << 20
	newer, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want[779] = *loadPlayer(t, older.Path, 779)
	for _, id := range []uint64{777, 778} {
		step(id) // lost by the restore: the loss bound says so
	}
	_, rec = recordOf(t, s, 777)
	rec.Val.Inv[3].Count ^= 4
	_, rec = recordOf(t, s, 778)
	rec.Seq++

	opts.ScrubRate = 1 << 30
	s, st := reopen(t, s, opts)
	if st.Failed != 3 || st.Restored != 3 || st.Kept+st.Removed+st.Reindexed != 0 || st.Checked != n || st.Passes != 1 {
		t.Fatalf("scrub: %v %v; want 3 of %d records restored", st, st.Problems, n)
	}
	for id, path := range map[uint64]string{777: newer.Path, 778: newer.Path, 779: older.Path} {
		p := problemOf(t, st, id)
		if p.Action != ScrubRestored || p.Snapshot != path || p.LossBound <= 0 || p.Cause == "" {
			t.Fatalf("player %d: %v; want restored from %s with a loss bound", id, p, path)
		}
		got, err := s.Get(id)
		if err != nil || got != want[id] {
			t.Fatalf("player %d after the scrub: %+v, %v; want its snapshot value %+v", id, got, err, want[id])
		}
	}
	if p := problemOf(t, st, 778); !strings.Contains(p.Cause, "sequence word") {
		t.Fatalf("player 778's cause %q does not name the sequence word", p.Cause)
	}
	checkPlayers(t, s, n, 777, 778, 779)
	if _, err := s.Snapshot(); err != nil { // every record is whole again
		t.Fatal(err)
	}
}

func loadPlayer(t *testing.T, path string, id uint64) *Player {
	t.Helper()
	m, _, err := LoadSnapshot[Player](path, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := m[id]
	if !ok {
		t.Fatalf("snapshot %s has no player %d", path, id)
	}
	return &p
}

// With no snapshot holding the player, the damaged value is kept as it
// is, re-sealed (so reads and snapshots accept it), and reported.
func TestScrubKeepsDamagedRecordNoSnapshotHolds(t *testing.T) {
	const n = 100
	opts := scrubOptions(t, n, false)
	s := filled(t, opts, n)
	_, rec := recordOf(t, s, 5)
	rec.Val.Coins ^= 1 << 30
	damaged := rec.Val
	s, st := reopen(t, s, opts)
	p := problemOf(t, st, 5)
	if st.Failed != 1 || st.Kept != 1 || p.Action != ScrubKept || !strings.Contains(p.Cause, "checksum") {
		t.Fatalf("scrub: %v %v; want player 5 kept as is", st, st.Problems)
	}
	if got, err := s.Get(5); err != nil || got != damaged {
		t.Fatalf("player 5: %+v, %v; want the damaged value kept", got.Coins, err)
	}
	if err := s.verify(); err != nil {
		t.Fatalf("player 5 not re-sealed: %v", err)
	}
}

// Records no lookup can reach are removed, and named: a second record
// claiming an id the index gives another slot, and one whose id field is
// damaged. Nothing of them stays in the index.
func TestScrubRemovesRecordsNoIDLeadsTo(t *testing.T) {
	const n = 1000
	opts := scrubOptions(t, n, true)
	s := filled(t, opts, n)
	if _, err := s.Snapshot(); err != nil { // a snapshot cannot name them either
		t.Fatal(err)
	}
	slot30, rec := recordOf(t, s, 30)
	rec.ID = 12
	rec.Sum = recordSum(recordBytes(rec))
	slot40, rec := recordOf(t, s, 40)
	rec.ID ^= 1 << 33
	s, st := reopen(t, s, opts)
	if st.Failed != 1 || st.Removed != 2 || st.Restored+st.Kept+st.Reindexed != 0 {
		t.Fatalf("scrub: %v %v; want 2 removed", st, st.Problems)
	}
	if p := problemOf(t, st, 12); p.Slot != slot30 || p.Action != ScrubRemoved || !strings.Contains(p.Cause, "a second record of player 12") {
		t.Fatalf("duplicate: %v", p)
	}
	if p := problemOf(t, st, 40^1<<33); p.Slot != slot40 || p.Action != ScrubRemoved || !strings.Contains(p.Cause, "id field does not lead to it") {
		t.Fatalf("damaged id: %v", p)
	}
	for _, id := range []uint64{30, 40} {
		if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%d) = %v, want ErrNotFound", id, err)
		}
	}
	if s.Len() != n-2 {
		t.Fatalf("Len = %d, want %d", s.Len(), n-2)
	}
	checkPlayers(t, s, n, 30, 40)
}

// A whole record the index lost is put back.
func TestScrubPutsLostIndexEntryBack(t *testing.T) {
	const n = 1000
	opts := scrubOptions(t, n, false)
	s := filled(t, opts, n)
	slot, _ := recordOf(t, s, 50)
	s.idx.remove(50, uint32(slot))
	s, st := reopen(t, s, opts)
	if p := problemOf(t, st, 50); st.Reindexed != 1 || st.Failed != 0 || p.Action != ScrubReindexed {
		t.Fatalf("scrub: %v %v; want player 50 put back", st, st.Problems)
	}
	checkPlayers(t, s, n)
}

// The scrub runs pass after pass while transactions, creates and deletes
// run on both cores, and never takes a healthy record for a damaged one;
// every player stays whole. (Under -race this also checks the scrub's own
// bookkeeping.)
func TestScrubBesideTransactions(t *testing.T) {
	const players, churn = 64, 32
	opts := scrubOptions(t, 1024, false)
	opts.ScrubEvery = 1 // back to back
	s, _ := mustOpen[Player](t, opts)
	defer s.Close()
	for id := uint64(1); id <= players; id++ {
		s.Ensure(id)
	}
	var wg sync.WaitGroup
	var ops atomic.Int64
	start := s.Scrub().Passes
	for w := range 2 {
		wg.Go(func() {
			// At least 20000 operations each, and at least 5 whole
			// passes while they run.
			for i := uint64(0); i < 20000 || s.Scrub().Passes < start+6; i++ {
				id := 1 + (i+uint64(w)*7)%players
				if err := s.Update(id, func(p *Player) error { p.step(id); return nil }); err != nil {
					t.Error(err)
					return
				}
				c := 1000 + uint64(w)*churn + i%churn
				if err := s.Delete(c); err != nil && !errors.Is(err, ErrNotFound) {
					t.Error(err)
					return
				}
				if _, err := s.Ensure(c); err != nil {
					t.Error(err)
					return
				}
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	st := s.Scrub()
	if st.TotalFailed+st.Removed+st.Reindexed != 0 || st.Passes < start+6 || ops.Load() < 40000 {
		t.Fatalf("scrub beside %d transactions: %v %v", ops.Load(), st, st.Problems)
	}
	for id := uint64(1); id <= players; id++ {
		if p, err := s.Get(id); err != nil || p.consistent(id) != "" {
			t.Fatalf("player %d: %v %v", id, p.consistent(id), err)
		}
	}
	if err := s.verify(); err != nil {
		t.Fatal(err)
	}
}

// Close stops a slow scrub in the middle of its pass; WaitScrub then says
// the pass never completed.
func TestCloseStopsScrub(t *testing.T) {
	opts := testOptions(t, 4*scrubChunk)
	opts.ScrubRate = -1
	s, _ := mustOpen[Player](t, opts)
	fill(t, s, 4*scrubChunk)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	opts.ScrubRate = 1 // a record a second: the pass cannot end first
	s, _ = mustOpen[Player](t, opts)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := s.WaitScrub(context.Background())
	if !errors.Is(err, ErrClosed) || st.Passes != 0 || st.Running {
		t.Fatalf("WaitScrub after Close: %v, %v; want ErrClosed, no pass", st, err)
	}
}

// With ScrubRate < 0 there is no scrub, and the status says so.
func TestScrubOff(t *testing.T) {
	opts := testOptions(t, 10)
	opts.ScrubRate = -1
	s, _ := mustOpen[Player](t, opts)
	defer s.Close()
	st, err := s.WaitScrub(context.Background())
	if err != nil || st.Rate != 0 || st.Running || st.String() != "scrub off" {
		t.Fatalf("scrub off: %v, %v", st, err)
	}
}
