package state

import "sync/atomic"

// Commits is how many times player id's record has been committed, as a
// counter that wraps (compare two with int32(a-b)), and false if the player
// does not exist. A crash never leaves it between two values: recovery puts
// a record cut short back, counter included.
//
// It lets a caller keep its own note of a transaction beside the store,
// outside it, and still know after a crash whether that transaction
// committed: inside the callback (the player's lane held), the note records
// Commits+1, the value the commit will make; after a restart, a note ahead
// of Commits names a transaction that never committed. A host keeps the
// reply of a client's request that way, so that a request retried after a
// crash is answered, not run again.
func (s *Store[T]) Commits(id uint64) (uint32, bool) {
	for spin := 0; ; spin++ {
		_, _, rec, ok := s.find(id)
		if !ok || atomic.LoadUint64(&rec.ID) != id {
			return 0, false
		}
		// Seq moves by two per commit, and is odd only while one writes.
		if q := atomic.LoadUint32(&rec.Seq); q&1 == 0 {
			return q / 2, true
		}
		backoff(spin)
	}
}

// Commits is Store.Commits of the transaction's first player, read from
// the record the transaction holds (its lane is held: the count cannot
// move), without looking the player up again.
func (tx *Tx[T]) Commits() uint32 { return tx.recs[0].Seq / 2 }
