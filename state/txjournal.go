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
//	commitTx:  copy each old record and its slot into the journal ->
//	           word = prepared | count -> write each record (Seq odd, the
//	           bytes, Seq even, as a single-record commit does) ->
//	           word = 0
//
// The store of word = 0 is the commit point: a crash before it finds the
// word prepared, and recovery copies every saved record back (all players
// old); a crash after it finds the word idle and every record whole (all
// players new). A prepared word whose records were all written, or none,
// is rolled back the same way: the transaction was not acknowledged.
// Rolling back is idempotent, and the word is cleared only after every
// record is restored, so a recovery killed half way is redone.
//
// No lane's journal and this one ever name the same slot at once: a slot
// changes only under its player's lane, and a transaction holds the lanes
// of all its players from before it writes the journal until after it
// clears it. So recovery applies them in any order.

// MaxTxPlayers is the most players one transaction (RunMulti) holds.
const MaxTxPlayers = 8

// txPrepared tags a transaction journal word that names records to roll
// back: txPrepared<<32 | count.
const txPrepared = 0x54585052 // "TXPR"

// txJournal is the transaction journal's layout in the aux region.
type txJournal[T any] struct {
	word  uint64
	slots [MaxTxPlayers]uint32
	undo  [MaxTxPlayers]record[T]
}

// txJournalSize is unsafe.Sizeof(txJournal[T]) for records of recSize
// bytes (a multiple of 8, as record's uint64 field makes it): bind checks
// that the two agree.
func txJournalSize(recSize int) int { return 8 + 4*MaxTxPlayers + MaxTxPlayers*recSize }

func bindTxJournal[T any](aux []byte, g auxGeom) (*txJournal[T], error) {
	if got, want := int(unsafe.Sizeof(txJournal[T]{})), txJournalSize(g.recSize); got != want {
		return nil, fmt.Errorf("state: transaction journal of %d bytes, planned %d", got, want)
	}
	return (*txJournal[T])(unsafe.Pointer(&aux[g.tx])), nil
}

// txCount decodes a journal word: the records it names, and whether it is
// one that commitTx writes.
func txCount(w uint64) (int, bool) {
	n := int(uint32(w))
	return n, w>>32 == txPrepared && n >= 1 && n <= MaxTxPlayers
}

// commitTx writes the scratch values of t into their records, all or
// none across a crash (see above). The caller holds every lane of t and
// has claimed the transaction.
func (s *Store[T]) commitTx(t *txn[T]) {
	var sums [MaxTxPlayers]uint32
	for i := range t.n {
		sums[i] = recordSum(recordBytes(&t.scratch[i]))
	}
	j := s.txj
	s.txMu.Lock()
	defer s.txMu.Unlock()
	for i := range t.n {
		j.slots[i] = t.slots[i]
		j.undo[i] = *t.recs[i]
	}
	journalStore(&j.word, txPrepared<<32|uint64(t.n))
	for i := range t.n {
		if testHookTxWrite != nil {
			testHookTxWrite(i)
		}
		rec := t.recs[i]
		q := seqBegin(&rec.Seq)
		rec.Val = t.scratch[i].Val
		rec.Sum = sums[i]
		seqEnd(&rec.Seq, q)
	}
	if testHookTxWrite != nil {
		testHookTxWrite(t.n)
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
	n, ok := txCount(w)
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
	n, ok := txCount(w)
	if !ok {
		s.log.Error("state: recovery ignored an impossible transaction journal", "word", w)
		n = 0
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
	if n > 0 {
		rr.Repaired++
		s.log.Info("state: recovery rolled back an unfinished transaction", "players", ids)
	}
	atomic.StoreUint64(&j.word, 0)
}

// txUndo returns a new map of the undo records, by slot, that a segment's
// transaction journal holds (none for versions before 3): migration reads
// those slots from there, as recovery would have restored them.
func txUndo(aux []byte, g auxGeom, recSize int) map[int][]byte {
	out := map[int][]byte{}
	if g.version < 3 {
		return out
	}
	w := atomic.LoadUint64((*uint64)(unsafe.Pointer(&aux[g.tx])))
	n, ok := txCount(w)
	if !ok {
		return out
	}
	undo := g.tx + 8 + 4*MaxTxPlayers
	for i := range n {
		slot := int(ne.Uint32(aux[g.tx+8+4*i:]))
		out[slot] = aux[undo+i*recSize : undo+(i+1)*recSize]
	}
	return out
}
