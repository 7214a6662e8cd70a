package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
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

// crashAndReopen closes s, marks the segment as a killed owner leaves it,
// and opens it again, which must recover.
func crashAndReopen(t *testing.T, s *Store[Player], opts Options) (*Store[Player], *OpenReport) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	markUnclean(t, opts)
	s, rep := mustOpen[Player](t, opts)
	t.Cleanup(func() { s.Close() })
	if rep.How != Recovered || rep.Recovery == nil {
		t.Fatalf("open after a crash: %v", rep)
	}
	return s, rep
}

// recordOf is player id's record in the mapping, for tests that damage it.
func recordOf(t testing.TB, s *Store[Player], id uint64) (int, *record[Player]) {
	t.Helper()
	slot, _, _, ok := s.find(id)
	if !ok {
		t.Fatalf("player %d not in the index", id)
	}
	_, rec, _ := s.pool.Lookup(int(slot))
	return int(slot), rec
}

// checkPlayers fails unless every id in [1, n] but the skipped is found
// with the value fill gave it, and the index is exactly right.
func checkPlayers(t *testing.T, s *Store[Player], n int, skip ...uint64) {
	t.Helper()
	for id := uint64(1); id <= uint64(n); id++ {
		if slices.Contains(skip, id) {
			continue
		}
		p, err := s.Get(id)
		if err != nil || p.Coins != int64(id)*3 || p.consistent(id) != "" {
			t.Fatalf("player %d: %+v, %v", id, p.Coins, err)
		}
	}
	if err := s.verify(); err != nil {
		t.Fatal(err)
	}
}

// After kill -9 the fast path trusts the index: no record is read, and
// every player is found with its value.
func TestRecoveryTrustsIndex(t *testing.T) {
	const n = 40_000
	opts := testOptions(t, n)
	s, _ := mustOpen[Player](t, opts)
	fill(t, s, n)
	s, rep := crashAndReopen(t, s, opts)
	rr := rep.Recovery
	if rr.IndexRebuilt != "" || rr.Checked != 0 || rr.Repaired != 0 || rr.Lost != 0 {
		t.Fatalf("open after a crash: %v; want the fast path", rep)
	}
	if !strings.Contains(rep.String(), "background scrub") {
		t.Fatalf("report %q does not say the records are left to the scrub", rep)
	}
	checkPlayers(t, s, n)
}

// Each way an index can be untrustworthy is named, and the index is then
// rebuilt from the records (the slow path): even a table wiped clean
// finds every player again, and the next open trusts the new one.
func TestUntrustedIndexIsRebuilt(t *testing.T) {
	const n = 3000
	le := binary.LittleEndian
	reseal := func(b []byte) { le.PutUint32(b[offIndexSum:], crc32.Checksum(b[:offIndexSum], castagnoli)) }
	cases := []struct {
		name, want string
		crashed    bool
		damage     func(s *Store[Player], hdr []byte)
	}{
		{"magic", "index header magic", false, func(_ *Store[Player], b []byte) { b[3] ^= 1 }},
		{"checksum", "index header checksum", false, func(_ *Store[Player], b []byte) { b[offIndexSum] ^= 1 }},
		{"length", "index header says 4502 entries", false, func(_ *Store[Player], b []byte) {
			le.PutUint64(b[offIndexLen:], 4502)
			reseal(b)
		}},
		{"hash", "index hash 2", false, func(_ *Store[Player], b []byte) { le.PutUint32(b[offIndexHash:], 2); reseal(b) }},
		{"rebuild cut short", "index rebuild was cut short", true, func(_ *Store[Player], b []byte) {
			le.PutUint32(b[offIndexState:], indexRebuilding)
		}},
		{"state word", "index state word 0x00000000", false, func(_ *Store[Player], b []byte) { le.PutUint32(b[offIndexState:], 0) }},
		{"journal word", "lane 3 journal word 0x700000005", true, func(s *Store[Player], _ []byte) {
			atomic.StoreUint64(s.lanes[3].active, 7<<32|5)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := testOptions(t, n)
			opts.ScrubRate = -1 // the test clears the index table: no scrub may read it meanwhile
			s, _ := mustOpen[Player](t, opts)
			opts.ScrubRate = 0
			fill(t, s, n)
			c.damage(s, indexHeaderBytes(s.aux, s.geom))
			clear(s.idx.tab)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if c.crashed {
				markUnclean(t, opts)
			}
			s, rep := mustOpen[Player](t, opts)
			rr := rep.Recovery
			if rep.How != Recovered || rr == nil || !strings.Contains(rr.IndexRebuilt, c.want) || rr.Checked != n || rr.Lost != 0 {
				t.Fatalf("open: %v; want the index rebuilt because %q, %d checked", rep, c.want, n)
			}
			checkPlayers(t, s, n)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, rep = mustOpen[Player](t, opts)
			defer s.Close()
			if rep.How != Attached || rep.Recovery != nil {
				t.Fatalf("open after the rebuild: %v; want a plain attach", rep)
			}
		})
	}
}

// The slow path checks every record, split over several workers: a record
// with a flipped byte and a second record claiming an existing id are lost
// (and named), and every other player is found through the rebuilt index.
func TestSlowRecoveryChecksEveryRecord(t *testing.T) {
	const n = 40_000 // > 2 * 1<<14: two workers on a 2-CPU machine
	opts := testOptions(t, n)
	s, _ := mustOpen[Player](t, opts)
	fill(t, s, n)
	// A byte of player 777's value flips (its Sum no longer matches).
	_, rec := recordOf(t, s, 777)
	rec.Val.Coins ^= 1 << 20
	// Player 30001's record claims to be player 12 (with a valid Sum): two
	// records, one id. The lower slot (the real 12) is kept.
	low, _ := recordOf(t, s, 12)
	high, rec := recordOf(t, s, 30001)
	if low > high {
		t.Fatalf("fill put player 12 in slot %d after player 30001's %d", low, high)
	}
	rec.ID = 12
	rec.Sum = recordSum(recordBytes(rec))
	indexHeaderBytes(s.aux, s.geom)[0] ^= 1
	s, rep := crashAndReopen(t, s, opts)
	rr := rep.Recovery
	if rr.IndexRebuilt == "" {
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
	if slot, _, _, _ := s.find(12); int(slot) != low {
		t.Fatalf("player 12 in slot %d, want the first record's slot %d", slot, low)
	}
	checkPlayers(t, s, n, 777, 30001)
	// The rebuilt index still deletes and inserts correctly.
	for id := uint64(1); id <= 1000; id++ {
		if id != 777 {
			if err := s.Delete(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	for id := uint64(1001); id <= n; id += 7 {
		if _, err := s.Get(id); id != 30001 && err != nil {
			t.Fatalf("after deletes, Get(%d): %v", id, err)
		}
	}
}

// repair rebuilds a cluster from whatever a remove cut short left in it:
// for a remove stopped before each of its stores, the table repaired from
// that instant's copy holds the entries the finished remove leaves, once
// each, every one reachable from its home.
func TestIndexRepairAfterRemoveCutShort(t *testing.T) {
	const capacity = 64
	opts := testOptions(t, capacity)
	opts.ScrubRate = -1 // the test pokes the index table: no scrub may read it meanwhile
	s, _ := mustOpen[Player](t, opts)
	defer s.Close()
	ids := clusterIDs(capacity, clusterLen)
	for _, id := range ids {
		s.Ensure(id)
	}
	for victim := range ids {
		var states [][]uint32 // the table before each store
		testHookIndexStore = func(int) { states = append(states, slices.Clone(s.idx.tab)) }
		slot, _, _, _ := s.find(ids[victim])
		before := slices.Clone(s.idx.tab)
		s.idx.remove(ids[victim], slot)
		testHookIndexStore = nil
		after := slices.Clone(s.idx.tab)
		if len(states) < 2 {
			t.Fatalf("victim %d: remove made %d stores", victim, len(states)-1)
		}
		want := entries(after)
		for k, st := range states {
			copy(s.idx.tab, st)
			s.idx.repair(ids[victim], slot)
			if got := entries(s.idx.tab); !slices.Equal(got, want) {
				t.Fatalf("victim %d, cut before store %d: entries %v, want %v", victim, k, got, want)
			}
			if err := probeInvariant(&s.idx); err != "" {
				t.Fatalf("victim %d, cut before store %d: %s", victim, k, err)
			}
		}
		copy(s.idx.tab, before) // the next victim starts from the full cluster
	}
}

// A segment of an older aux version (1: no index header, 2: no
// transaction journal) is converted, not refused and not attached: the
// players are all there after.
func TestOldAuxSegmentIsConverted(t *testing.T) {
	for v := 1; v < auxVersion; v++ {
		t.Run(fmt.Sprint("version-", v), func(t *testing.T) {
			const n = 500
			opts := testOptions(t, n)
			s, _ := mustOpen[Player](t, opts)
			fill(t, s, n)
			// What version v puts where: the records' undo journal
			// (unchanged since 1) is all a conversion reads of it.
			old := planAux(v, s.geom.lanes, s.geom.recSize, s.geom.capacity, 0)
			b := s.aux
			le := binary.LittleEndian
			le.PutUint32(b[offAuxVersion:], uint32(v))
			le.PutUint64(b[offAuxIndex:], uint64(old.index))
			le.PutUint32(b[offAuxSum:], crc32.Checksum(b[:offAuxSum], castagnoli))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, rep := mustOpen[Player](t, opts)
			defer s.Close()
			if rep.How != Migrated || rep.Reason != errOldAux.Error() {
				t.Fatalf("open of a version %d segment: %v", v, rep)
			}
			if s.geom.version != auxVersion {
				t.Fatalf("aux version %d after the conversion", s.geom.version)
			}
			checkPlayers(t, s, n)
		})
	}
}

// entries are a table's non-empty entries, sorted.
func entries(tab []uint32) []uint32 {
	var out []uint32
	for _, e := range tab {
		if e != 0 {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out
}

// probeInvariant says what breaks linear probing in x, or "": every entry
// must be reachable from its id's home without crossing an empty position.
func probeInvariant(x *index) string {
	n := len(x.tab)
	for p, e := range x.tab {
		if e == 0 {
			continue
		}
		id, live := x.idOf(e - 1)
		if !live {
			return fmt.Sprintf("entry at %d holds free slot %d", p, e-1)
		}
		for i := x.home(id); i != p; i = (i + 1) % n {
			if x.tab[i] == 0 {
				return fmt.Sprintf("player %d at %d: empty position %d between it and its home", id, p, i)
			}
		}
	}
	return ""
}
