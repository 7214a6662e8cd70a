package state

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// The transaction journal: what makes a transaction over several records
// (RunMulti) crash-atomic, where a lane's journal holds one undo record.
//
// It is one region of the aux area, shared by every such transaction and
// serialized by Store.txMu, which a commit takes after all its lanes (so
// it orders nothing that the lanes do not already order, and it is held
// only while the commit copies bytes, never while a callback runs):
//
//	commitTx:  copy each old record and its slot into the journal, and
//	           each timer slot it changes with the slot's word before ->
//	           word = prepared | counts -> write each record (Seq odd, the
//	           bytes, Seq even, as a single-record commit does) -> step
//	           each timer word (timers.go) -> word = 0
//
// The store of word = 0 is the commit point: a crash before it finds the
// word prepared, and recovery copies every saved record and timer word
// back (all players and their timers old); a crash after it finds the
// word idle and every record whole (all new). A prepared word whose
// records were all written, or none, is rolled back the same way: the
// transaction was not acknowledged. Rolling back is idempotent, and the
// word is cleared only after everything is restored, so a recovery killed
// half way is redone. The body of a timer a transaction schedules is
// written before the journal is (into a slot whose word says free, so a
// crash leaves it unseen): only its word needs undoing.
//
// No lane's journal and this one ever name the same slot at once: a slot
// changes only under its player's lane, and a transaction holds the lanes
// of all its players from before it writes the journal until after it
// clears it. So recovery applies them in any order.

// MaxTxPlayers is the most players one transaction (RunMulti) holds.
const MaxTxPlayers = 8

// MaxTxTimers is the most timers one transaction schedules and cancels
// (a fired timer's removal included).
const MaxTxTimers = 16

// txPrepared tags a transaction journal word that names what to roll
// back: txPrepared<<32 | timer words<<8 | records.
const txPrepared = 0x54585052 // "TXPR"

// txJournal is the transaction journal's layout in the aux region.
type txJournal[T any] struct {
	word   uint64
	slots  [MaxTxPlayers]uint32 // record slots
	tslots [MaxTxTimers]uint32  // timer slots
	told   [MaxTxTimers]uint64  // their words before the transaction
	undo   [MaxTxPlayers]record[T]
}

// txJournalSize is unsafe.Sizeof(txJournal[T]) for records of recSize
// bytes (a multiple of 8, as record's uint64 field makes it): bind checks
// that the two agree.
func txJournalSize(recSize int) int {
	return 8 + 4*MaxTxPlayers + 12*MaxTxTimers + MaxTxPlayers*recSize
}

// undoOffset is where the undo records start in the journal.
const undoOffset = 8 + 4*MaxTxPlayers + 12*MaxTxTimers

func bindTxJournal[T any](aux []byte, g auxGeom) (*txJournal[T], error) {
	if got, want := int(unsafe.Sizeof(txJournal[T]{})), txJournalSize(g.recSize); got != want {
		return nil, fmt.Errorf("state: transaction journal of %d bytes, planned %d", got, want)
	}
	return (*txJournal[T])(unsafe.Pointer(&aux[g.tx])), nil
}

// txCounts decodes a journal word: the records and timer words it names,
// and whether it is one that commitTx writes.
func txCounts(w uint64) (records, timers int, ok bool) {
	records, timers = int(uint8(w)), int(uint8(w>>8))
	ok = w>>32 == txPrepared && uint16(w>>16) == 0 && records <= MaxTxPlayers && timers <= MaxTxTimers && records+timers > 0
	return records, timers, ok
}

// commitTx writes the scratch values of tx's first n players into their
// records, and steps the timer words of its timer changes, all or none
// across a crash (see above). The caller holds every lane of tx and has
// claimed the transaction.
func (s *Store[T]) commitTx(tx *Tx[T], n int) {
	var sums [MaxTxPlayers]uint32
	for i := range n {
		sums[i] = carriedSum(tx.recs[i], &tx.scratch[i])
	}
	ops := tx.ops[:tx.nops]
	j := s.txj
	s.txMu.Lock()
	defer s.txMu.Unlock()
	for i := range n {
		j.slots[i] = tx.slots[i]
		j.undo[i] = *tx.recs[i]
	}
	for k, op := range ops {
		j.tslots[k], j.told[k] = op.slot, op.old
	}
	journalStore(&j.word, txPrepared<<32|uint64(len(ops))<<8|uint64(n))
	for i := range n {
		if testHookTxWrite != nil {
			testHookTxWrite(i)
		}
		rec := tx.recs[i]
		q := seqBegin(&rec.Seq)
		copy(recordBytes(rec)[recHeader:], recordBytes(&tx.scratch[i])[recHeader:]) // as Store.commitWith
		rec.Sum = sums[i]
		seqEnd(&rec.Seq, q)
	}
	for _, op := range ops {
		journalStore(&s.timers.words[op.slot], op.old+1)
	}
	if testHookTxWrite != nil {
		testHookTxWrite(n)
	}
	journalStore(&j.word, 0)
}

// testHookTxWrite, when set (tests only), is called before commitTx writes
// record i of the transaction, and with i = the count after the last one,
// before the journal is cleared: the crash tests kill the process there,
// or widen the window.
var testHookTxWrite func(i int)

// checkTxJournal says why the transaction journal cannot be applied by
// recovery's fast path, or nil.
func (s *Store[T]) checkTxJournal() error {
	w := atomic.LoadUint64(&s.txj.word)
	if w == 0 {
		return nil
	}
	n, m, ok := txCounts(w)
	if !ok {
		return fmt.Errorf("%w: transaction journal word %#x", ErrCorrupt, w)
	}
	for i := range n {
		slot := s.txj.slots[i]
		_, rec, live := s.pool.Lookup(int(slot))
		switch {
		case int(slot) >= s.pool.Cap() || !live:
			return fmt.Errorf("%w: transaction journal names slot %d, which holds no player", ErrCorrupt, slot)
		case rec.ID != s.txj.undo[i].ID:
			return fmt.Errorf("%w: transaction journal saved player %d for slot %d, which holds player %d",
				ErrCorrupt, s.txj.undo[i].ID, slot, rec.ID)
		}
	}
	for k := range m {
		if int(s.txj.tslots[k]) >= s.geom.timers {
			return fmt.Errorf("%w: transaction journal names timer slot %d of %d", ErrCorrupt, s.txj.tslots[k], s.geom.timers)
		}
	}
	return nil
}

// finishTx rolls back the transaction that the journal names, if any, then
// clears it. On the slow path (checkTxJournal failed) it restores only
// what can be restored, and the records are checked after.
func (s *Store[T]) finishTx(rr *RecoveryReport) {
	j := s.txj
	w := atomic.LoadUint64(&j.word)
	if w == 0 {
		return
	}
	n, m, ok := txCounts(w)
	if !ok {
		s.log.Error("state: recovery ignored an impossible transaction journal", "word", w)
		n, m = 0, 0
	}
	ids := make([]uint64, 0, n)
	for i := range n {
		slot := int(j.slots[i])
		_, rec, live := s.pool.Lookup(slot)
		if !live || rec.ID != j.undo[i].ID {
			s.log.Error("state: recovery skipped a transaction journal record that names no such player",
				"slot", slot, "player", j.undo[i].ID)
			continue
		}
		if err := checkRecord(recordBytes(&j.undo[i]), false); err != nil {
			s.log.Error("state: recovery restored an undo record that fails its check; the scrub will restore the player from a snapshot",
				"slot", slot, "player", j.undo[i].ID, "cause", err)
		}
		*rec = j.undo[i]
		ids = append(ids, rec.ID)
		if testHookRecovered != nil {
			testHookRecovered()
		}
	}
	for k := range m {
		if slot := int(j.tslots[k]); slot < len(s.timers.words) {
			atomic.StoreUint64(&s.timers.words[slot], j.told[k])
		}
	}
	if n+m > 0 {
		rr.Repaired++
		s.log.Info("state: recovery rolled back an unfinished transaction", "players", ids, "timers", m)
	}
	atomic.StoreUint64(&j.word, 0)
}

// txUndo reads a segment's transaction journal (none before version 3)
// as recovery would apply it: the undo records by slot, and the timer
// words by timer slot. Migration reads those from there.
func txUndo(aux []byte, g auxGeom, recSize int) (records map[int][]byte, timerWords map[int]uint64) {
	records, timerWords = map[int][]byte{}, map[int]uint64{}
	if g.version < 3 {
		return records, timerWords
	}
	n, m, ok := txCounts(atomic.LoadUint64((*uint64)(unsafe.Pointer(&aux[g.tx]))))
	if !ok {
		return records, timerWords
	}
	for i := range n {
		slot := int(ne.Uint32(aux[g.tx+8+4*i:]))
		off := g.tx + undoOffset + i*recSize
		records[slot] = aux[off : off+recSize]
	}
	for k := range m {
		slot := int(ne.Uint32(aux[g.tx+8+4*MaxTxPlayers+4*k:]))
		timerWords[slot] = ne.Uint64(aux[g.tx+8+4*MaxTxPlayers+4*MaxTxTimers+8*k:])
	}
	return records, timerWords
}
