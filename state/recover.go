package state

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hothost/hothost/shmpool"
)

// maxLostIDs bounds RecoveryReport.LostIDs.
const maxLostIDs = 100

// errOldAux marks a segment of an older aux version (1 has no index
// header, 2 no transaction journal): Open migrates it (by the same path as
// a layout change) instead of attaching it.
var errOldAux = errors.New("segment of an older aux version (without the crash-safe index header or the transaction journal): converted to version 3")

// recover makes a segment whose owner died consistent again, before anyone
// else uses it. The fast path touches the lanes' journals, the transaction
// journal and the few index clusters they name, never the records as a
// whole: every update or transaction cut short is rolled back from its
// undo records, every create cut short is
// removed and every delete cut short finished, and the id index (trusted:
// see index.go) is repaired where such a create or delete touched it.
// Checking every record's checksum is left to the background scrub.
//
// The slow path runs when the index cannot be trusted (untrusted names
// why: its header failed its check) or a journal entry holds what no
// store writes: the journal is still applied, then every record is checked
// and the index rebuilt from the records, as before the index was trusted.
//
// Each step is idempotent and a lane's journal word is cleared only after
// its entry is finished, so recovery killed at any instant is redone.
func (s *Store[T]) recover(untrusted error) RecoveryReport {
	start := time.Now()
	var rr RecoveryReport
	why := untrusted
	if why == nil {
		why = s.checkJournal()
	}
	if why != nil {
		// Persisted before anything changes: a crash from here on finds
		// the index marked and takes the slow path again.
		s.idx.setState(indexRebuilding)
	}
	for i := range s.lanes {
		s.finishLane(i, why == nil, &rr)
	}
	s.finishTx(&rr)
	if why != nil {
		rr.IndexRebuilt = why.Error()
		s.log.Warn("state: the index cannot be trusted; checking every record and rebuilding it", "cause", why)
		ids := s.checkAll(&rr)
		s.rebuildIndexFrom(ids, &rr)
	}
	rr.Duration = time.Since(start)
	s.log.Info("state: recovery done", "journal_entries", rr.Repaired, "index_rebuilt", rr.IndexRebuilt != "",
		"checked", rr.Checked, "lost", rr.Lost, "duration", rr.Duration)
	return rr
}

// checkJournal says why the journal cannot be applied by the fast path:
// an entry no store writes, or a delete whose record fails its check (its
// id field says which index cluster to repair, so it must be whole).
func (s *Store[T]) checkJournal() error {
	if err := s.checkTxJournal(); err != nil {
		return err
	}
	for i := range s.lanes {
		w := atomic.LoadUint64(s.lanes[i].active)
		kind, slot := w>>32, int(uint32(w))
		if w == 0 {
			continue
		}
		_, rec, live := s.pool.Lookup(slot)
		switch {
		case slot >= s.pool.Cap() || kind < journalUpdate || kind > journalDelete:
			return fmt.Errorf("%w: lane %d journal word %#x", ErrCorrupt, i, w)
		case kind == journalUpdate && !live:
			return fmt.Errorf("%w: lane %d journal updates free slot %d", ErrCorrupt, i, slot)
		case kind == journalDelete && live:
			if err := checkRecord(recordBytes(rec), false); err != nil {
				return fmt.Errorf("%w: lane %d journal deletes slot %d, whose record fails its check: %v", ErrCorrupt, i, slot, err)
			}
		}
	}
	return nil
}

// finishLane applies lane i's journal entry, if any, and then clears it.
// repairIndex is false on the slow path, where the index is rebuilt anyway.
func (s *Store[T]) finishLane(i int, repairIndex bool, rr *RecoveryReport) {
	ln := &s.lanes[i]
	w := atomic.LoadUint64(ln.active)
	if w == 0 {
		return
	}
	kind, slot := w>>32, int(uint32(w))
	h, rec, live := s.pool.Lookup(slot)
	switch {
	case !live: // a create before its slot was in use, a delete after its Free
	case kind == journalUpdate:
		if err := checkRecord(recordBytes(ln.undo), false); err != nil {
			s.log.Error("state: recovery restored an undo record that fails its check; the scrub will restore the player from a snapshot",
				"lane", i, "slot", slot, "player", ln.undo.ID, "cause", err)
		}
		*rec = *ln.undo
		if testHookRecovered != nil {
			testHookRecovered()
		}
		rr.Repaired++
		s.log.Info("state: recovery rolled back an unfinished update", "lane", i, "slot", slot, "player", rec.ID)
	case kind == journalCreate || kind == journalDelete: // undo, redo: either way the player goes
		id := atomic.LoadUint64(&rec.ID)
		if repairIndex {
			s.idx.repair(id, uint32(slot))
		}
		if testHookRecovered != nil {
			testHookRecovered()
		}
		s.pool.Free(h)
		rr.Repaired++
		what := "removed a half-created player"
		if kind == journalDelete {
			what = "finished an unfinished delete"
		}
		s.log.Info("state: recovery "+what, "lane", i, "slot", slot, "player", id)
	default: // no store writes it: checkJournal sent recovery down the slow path
		s.log.Error("state: recovery ignored an impossible journal entry", "lane", i, "word", w)
	}
	atomic.StoreUint64(ln.active, 0)
}

// testHookRecovered, when set (tests only), is called when recovery has
// restored a record or repaired the index for a journal entry, before it
// frees the slot or clears the entry: the crash tests kill the recovering
// process there.
var testHookRecovered func()

// allocCreating takes a slot for a new player, publishing the lane's
// journal entry (journalCreate) under the pool's lock before the slot is
// in use: kill -9 at any instant of an Ensure leaves no slot in use that
// the journal does not name.
func (s *Store[T]) allocCreating(active *uint64) (shmpool.Handle, *record[T], error) {
	return s.pool.AllocNoted(func(slot int) { journalStore(active, journalCreate<<32|uint64(slot)) })
}

// beginDelete publishes a delete's journal entry: call it before the
// delete's first index store, and end the delete with freeJournaled.
func beginDelete(active *uint64, slot uint32) { journalStore(active, journalDelete<<32|uint64(slot)) }

// freeJournaled frees h and retires the lane's journal entry (a create
// given up, or a delete) under the pool's lock at the same instant, so an
// entry that survives a crash never names a slot another lane took since.
func (s *Store[T]) freeJournaled(active *uint64, h shmpool.Handle) error {
	err := s.pool.FreeNoted(h, func() { journalStore(active, 0) })
	if err != nil {
		journalStore(active, 0)
	}
	return err
}

func (s *Store[T]) lose(rr *RecoveryReport, why string, id uint64, attrs ...any) {
	rr.Lost++
	if len(rr.LostIDs) < maxLostIDs {
		rr.LostIDs = append(rr.LostIDs, id)
	}
	s.log.Error("state: recovery lost a player: "+why, append([]any{"player", id}, attrs...)...)
}

// checkAll verifies every live record (Seq even, Sum right), split over
// the CPUs in disjoint slot ranges: after kill -9 this is the first touch
// of the whole mapping, so it pays for page faults as well as CRC-32C. It
// frees the records that fail (counting them repaired or lost) and
// returns every slot's id as it read it, for the index rebuild (ids of
// free slots are meaningless).
func (s *Store[T]) checkAll(rr *RecoveryReport) []uint64 {
	n := s.pool.Cap()
	ids := make([]uint64, n)
	workers := max(1, min(runtime.NumCPU(), n/(1<<14)))
	type result struct {
		checked int
		bad     []int // slots failing their check, in slot order
	}
	res := make([]result, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &res[w]
			for i := lo; i < hi; i++ {
				_, rec, live := s.pool.Lookup(i)
				if !live {
					continue
				}
				r.checked++
				ids[i] = rec.ID
				if rec.Seq&1 != 0 || rec.Sum != recordSum(recordBytes(rec)) {
					r.bad = append(r.bad, i)
				}
			}
		}()
	}
	wg.Wait()
	for _, r := range res {
		rr.Checked += r.checked
		for _, i := range r.bad {
			h, rec, _ := s.pool.Lookup(i)
			if allZero(recordBytes(rec)) {
				// Allocated by an Ensure killed before it published its
				// journal entry: never a player, nothing lost.
				s.pool.Free(h)
				rr.Repaired++
				continue
			}
			s.lose(rr, "record fails its check", rec.ID, slog.Int("slot", i), slog.Any("seq", rec.Seq))
			s.pool.Free(h)
		}
	}
	return ids
}

// rebuildIndexFrom refills the index from ids[slot] of the live slots.
//
// Inserting a million ids one by one costs a cache (and TLB) miss per
// probe step, in the table and in the records whose ids a probe compares:
// about 100 ns each on a VM, over 100 ms in all. Instead every live slot
// becomes a key (home position, a fingerprint of its id, slot), the keys
// are radix-sorted by home, and the table is filled in one sequential
// sweep, each entry at its home or the first free position after it: the
// table linear probing would build, only in another insertion order, which
// lookups and deletes do not depend on. Every pass streams through memory.
// Equal ids have equal homes, so duplicates (only corruption makes them)
// are found among neighbours, comparing real ids only when fingerprints
// match; the lowest slot is kept, as before.
func (s *Store[T]) rebuildIndexFrom(ids []uint64, rr *RecoveryReport) {
	x := &s.idx
	x.mu.Lock()
	defer x.mu.Unlock()
	x.setState(indexRebuilding)
	defer x.sealHeader()
	n := len(x.tab)
	homeBits := bits.Len(uint(max(n-1, 1)))
	slotBits := bits.Len(uint(max(len(ids)-1, 1)))
	fpBits := max(0, 64-homeBits-slotBits)
	if n == 0 || homeBits+slotBits > 64 {
		s.rebuildIndexSlow(ids, rr)
		return
	}
	slotMask := uint64(1)<<slotBits - 1
	fpMask := uint64(1)<<fpBits - 1
	keys := make([]uint64, 0, len(ids))
	for i, id := range ids {
		if _, _, live := s.pool.Lookup(i); live {
			fp := (mix(id) & fpMask) << slotBits // low bits: home uses the high ones
			keys = append(keys, uint64(x.home(id))<<(64-homeBits)|fp|uint64(i))
		}
	}
	keys = radixSortHigh(keys, homeBits)

	x.ver.Add(1)
	defer x.ver.Add(1)
	clear(x.tab)
	var wrapped []uint64 // keys that ran past the end of the table
	next, runStart := 0, 0
	for k, key := range keys {
		home := int(key >> (64 - homeBits))
		slot := int(key & slotMask)
		if k > 0 && home != int(keys[k-1]>>(64-homeBits)) {
			runStart = k
		}
		if s.dupInRun(keys[runStart:k], key, slotMask, ids) {
			s.loseDup(rr, ids[slot], slot)
			continue
		}
		p := max(home, next)
		if p >= n {
			wrapped = append(wrapped, key)
			continue
		}
		x.tab[p] = uint32(slot) + 1
		next = p + 1
	}
	// Every position from such a key's home to the end is taken, so its
	// probe continues at 0.
	q := 0
	for _, key := range wrapped {
		slot := int(key & slotMask)
		for q < n && x.tab[q] != 0 {
			q++
		}
		if q < n {
			x.tab[q] = uint32(slot) + 1
		} else {
			h, _, _ := s.pool.Lookup(slot)
			s.lose(rr, fmt.Sprintf("%v: index of %d entries is full", ErrCorrupt, n), ids[slot], slog.Int("slot", slot))
			s.pool.Free(h)
		}
	}
}

// dupInRun reports whether key's id equals the id of an earlier key of the
// same home (run), comparing ids only where fingerprints agree.
func (s *Store[T]) dupInRun(run []uint64, key, slotMask uint64, ids []uint64) bool {
	for _, r := range run {
		if r&^slotMask == key&^slotMask && ids[r&slotMask] == ids[key&slotMask] {
			if _, _, live := s.pool.Lookup(int(r & slotMask)); live {
				return true
			}
		}
	}
	return false
}

func (s *Store[T]) loseDup(rr *RecoveryReport, id uint64, slot int) {
	h, _, _ := s.pool.Lookup(slot)
	s.lose(rr, "duplicate id", id, slog.Int("slot", slot))
	s.pool.Free(h)
}

// radixSortHigh sorts keys by their top bits bits (stable), 11 bits a
// pass, and returns the sorted slice (keys or a buffer of its length).
func radixSortHigh(keys []uint64, bits int) []uint64 {
	const digit = 11
	buf := make([]uint64, len(keys))
	for shift := 64 - bits; shift < 64; shift += digit {
		var count [1 << digit]int
		for _, k := range keys {
			count[k>>shift&(1<<digit-1)]++
		}
		sum := 0
		for d, c := range count {
			count[d] = sum
			sum += c
		}
		for _, k := range keys {
			d := k >> shift & (1<<digit - 1)
			buf[count[d]] = k
			count[d]++
		}
		keys, buf = buf, keys
	}
	return keys
}

// rebuildIndexSlow inserts slot by slot, for tables too large for the
// keys above (more than about 2^31 slots).
func (s *Store[T]) rebuildIndexSlow(ids []uint64, rr *RecoveryReport) {
	x := &s.idx // locked and marked rebuilding by the caller
	x.ver.Add(1)
	defer x.ver.Add(1)
	clear(x.tab)
	for i, id := range ids {
		h, _, live := s.pool.Lookup(i)
		if !live {
			continue
		}
		if _, _, _, dup := probe(x, s.pool, id, mix(id)); dup {
			s.lose(rr, "duplicate id", id, slog.Int("slot", i))
			s.pool.Free(h)
			continue
		}
		if err := x.insertLocked(id, uint32(i)); err != nil {
			s.lose(rr, err.Error(), id, slog.Int("slot", i))
			s.pool.Free(h)
		}
	}
}

// allZero reports whether b is all zero bytes. No written record is: its
// Sum is the CRC-32C of the bytes after it, and that of zeros is not zero.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
