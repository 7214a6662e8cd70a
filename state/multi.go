package state

import (
	"fmt"
)

// txn is one transaction over several players: the players, the lanes it
// holds, and the private copies its callback changes. Transactions are
// pooled (Store.txPool), so that RunMulti allocates nothing in the steady
// state; a txn goes back to the pool only once its callback has returned.
type txn[T any] struct {
	n       int
	ids     [MaxTxPlayers]uint64
	lanes   [MaxTxPlayers]int // distinct, ascending: the order they are taken in
	nl      int
	holds   [MaxTxPlayers]*laneHold[T] // by lanes index
	slots   [MaxTxPlayers]uint32
	recs    [MaxTxPlayers]*record[T] // the committed records, in the segment
	scratch [MaxTxPlayers]record[T]  // what the callback changes
	vals    [MaxTxPlayers]*T
}

// RunMulti is Run over several players at once: fn runs on private copies
// of players ids (vs[i] is ids[i]'s) while the caller holds the lanes of
// all of them, and if fn returns nil (and the transaction was not fenced)
// every copy is committed, crash-atomically across players: kill -9 at
// any instant leaves every player as before or every player as after.
// Once RunMulti returns nil the change survives kill -9.
//
// ids holds 1 to MaxTxPlayers distinct players (else ErrBadPlayers); one
// that does not exist fails the transaction with ErrNotFound naming it,
// before fn runs. The lanes are taken each once, in ascending order, so
// RunMulti never deadlocks with another RunMulti, Run, Update, Ensure or
// Delete, and it is ordered with each of its players' other transactions.
//
// The rest is Run's contract: fn must not keep vs or call the Store; a
// panic escaping fn (no recover inside) leaves every player unchanged and
// releases the lanes; g may be nil; with a Guard, Fence releases every
// lane the transaction holds at once, and RunMulti returns ErrFenced when
// fn returns, having committed nothing.
func (s *Store[T]) RunMulti(ids []uint64, g *Guard, fn func(vs []*T) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	t, err := s.newTxn(ids)
	if err != nil {
		return err
	}
	defer s.txPool.Put(t)
	for i := range t.nl {
		t.holds[i] = s.lanes[t.lanes[i]].lock()
	}
	if g != nil {
		g.startMulti(s.LaneOf(ids[0]), t.lanes[:t.nl])
	}
	ok := false
	defer func() {
		if !ok && (g == nil || g.Claim()) {
			t.unlock() // fn panicked: the copies are dropped, the lanes go on
		}
	}()
	if err = s.loadTxn(t); err == nil {
		err = fn(t.vals[:t.n])
	}
	ok = true
	if g != nil && !g.Claim() {
		return ErrFenced // Fence released the lanes; t.holds are no longer ours
	}
	if err == nil {
		if t.n == 1 {
			s.commit(&s.lanes[t.lanes[0]], &t.scratch[0], t.slots[0], t.recs[0])
		} else {
			s.commitTx(t)
		}
	}
	t.unlock()
	return err
}

// newTxn checks ids and returns a pooled transaction for them, its lanes
// sorted.
func (s *Store[T]) newTxn(ids []uint64) (*txn[T], error) {
	if len(ids) == 0 || len(ids) > MaxTxPlayers {
		return nil, fmt.Errorf("%w: %d players, a transaction holds 1 to %d", ErrBadPlayers, len(ids), MaxTxPlayers)
	}
	for i, id := range ids {
		for _, prev := range ids[:i] {
			if prev == id {
				return nil, fmt.Errorf("%w: player %d appears twice", ErrBadPlayers, id)
			}
		}
	}
	t := s.txPool.Get().(*txn[T])
	t.n, t.nl = len(ids), 0
	copy(t.ids[:], ids)
	for _, id := range ids {
		t.addLane(s.LaneOf(id))
	}
	return t, nil
}

// addLane inserts lane l into t.lanes (ascending) unless it is there.
func (t *txn[T]) addLane(l int) {
	i := 0
	for i < t.nl && t.lanes[i] < l {
		i++
	}
	if i < t.nl && t.lanes[i] == l {
		return
	}
	copy(t.lanes[i+1:t.nl+1], t.lanes[i:t.nl])
	t.lanes[i] = l
	t.nl++
}

// loadTxn finds every player of t and copies its committed value into
// t's scratch. Only the lanes t holds write those records, and readers
// only read: no seqlock check is needed.
func (s *Store[T]) loadTxn(t *txn[T]) error {
	for i := range t.n {
		slot, _, rec, err := s.lookupLocked(t.ids[i])
		if err != nil {
			return err
		}
		t.slots[i], t.recs[i] = slot, rec
		t.scratch[i].ID = t.ids[i]
		t.scratch[i].Val = rec.Val
		t.vals[i] = &t.scratch[i].Val
	}
	return nil
}

func (t *txn[T]) unlock() {
	for i := range t.nl {
		t.holds[i].mu.Unlock()
		t.holds[i] = nil
	}
}
