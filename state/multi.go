package state

import "fmt"

// Tx is a running transaction, as its callback sees it: the private
// copies of its players' values, and the timers it schedules and cancels
// (timers.go). Everything commits together when the callback returns nil,
// or nothing does. A Tx is valid only during the callback: it must not be
// kept or used from another goroutine.
type Tx[T any] struct {
	s       *Store[T]
	n       int
	ids     [MaxTxPlayers]uint64
	lanes   [MaxTxPlayers]int // distinct, ascending: the order they are taken in
	nl      int
	holds   [MaxTxPlayers]*laneHold[T] // by lanes index
	slots   [MaxTxPlayers]uint32
	recs    [MaxTxPlayers]*record[T] // the committed records, in the segment
	scratch [MaxTxPlayers]record[T]  // what the callback changes
	vals    [MaxTxPlayers]*T
	ops     [MaxTxTimers]timerOp // timer words to step
	nops    int
	fired   bool // ops[0] is RunTimer's removal
	pooled  bool // from Store.txPool; else its one lane's hold owns it
}

// Values are the private copies of the transaction's players' values, in
// the order of its ids.
func (tx *Tx[T]) Values() []*T { return tx.vals[:tx.n] }

// Players are the transaction's players, as given to RunTx.
func (tx *Tx[T]) Players() []uint64 { return tx.ids[:tx.n] }

func (tx *Tx[T]) has(player uint64) bool {
	for _, id := range tx.ids[:tx.n] {
		if id == player {
			return true
		}
	}
	return false
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
	return s.run(ids, g, nil, func(tx *Tx[T]) error { return fn(tx.Values()) })
}

// RunTx is RunMulti whose callback gets the whole transaction: the
// players' copies (tx.Values) and the timers, so that a handler's change
// and the timers it schedules (tx.After) or cancels commit together. With
// one player and no timer changed it costs about what Run does.
func (s *Store[T]) RunTx(ids []uint64, g *Guard, fn func(tx *Tx[T]) error) error {
	return s.run(ids, g, nil, fn)
}

// run is RunTx, and RunTimer when fire is set: then fire's removal is
// part of the transaction, and is committed alone if fn fails.
func (s *Store[T]) run(ids []uint64, g *Guard, fire *Timer, fn func(tx *Tx[T]) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	tx, err := s.begin(ids)
	if err != nil {
		return err
	}
	if tx.pooled {
		defer s.txPool.Put(tx)
	}
	if g != nil {
		g.startMulti(s.LaneOf(ids[0]), tx.lanes[:tx.nl])
	}
	ok := false
	defer func() {
		if !ok { // fn panicked: the copies and timers are dropped, the lanes go on
			tx.dropTimers(false)
			if g == nil || g.Claim() {
				tx.unlock()
			}
		}
	}()
	if fire != nil {
		err = tx.takeTimer(*fire)
	}
	if err == nil {
		err = s.loadTx(tx)
	}
	if err == nil {
		err = fn(tx)
	}
	ok = true
	if g != nil && !g.Claim() {
		tx.dropTimers(false)
		return ErrFenced // Fence released the lanes; tx.holds are no longer ours
	}
	n := tx.n
	if err != nil {
		n = 0
		tx.dropTimers(true)
	}
	s.commitAll(tx, n)
	tx.unlock()
	return err
}

// commitAll commits the first n players of tx and its timer changes, by
// the cheapest way that is crash-atomic for what there is.
func (s *Store[T]) commitAll(tx *Tx[T], n int) {
	switch {
	case tx.nops == 0 && n == 0:
		return
	case tx.nops == 0 && n == 1:
		s.commit(&s.lanes[tx.lanes[0]], &tx.scratch[0], tx.slots[0], tx.recs[0])
		return
	case tx.nops == 1 && n == 0: // one word: a crash leaves it old or new
		journalStore(&s.timers.words[tx.ops[0].slot], tx.ops[0].old+1)
	default:
		s.commitTx(tx, n)
	}
	s.timers.applied(tx.ops[:tx.nops])
	tx.nops = 0
}

// begin checks ids, takes their lanes (in ascending order) and returns
// the transaction: the one its lane's hold keeps when there is one lane
// (as Run uses the hold's scratch: hot in cache, and Fence replaces it
// with the hold), else a pooled one. Touch a hold's Tx only while holding
// the hold.
func (s *Store[T]) begin(ids []uint64) (*Tx[T], error) {
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
	var lanes [MaxTxPlayers]int
	nl := 0
	for _, id := range ids {
		nl = addLane(&lanes, nl, s.LaneOf(id))
	}
	var tx *Tx[T]
	if nl == 1 {
		h := s.lanes[lanes[0]].lock()
		if h.tx == nil {
			h.tx = new(Tx[T])
		}
		tx = h.tx
		tx.holds[0], tx.pooled = h, false
	} else {
		tx = s.txPool.Get().(*Tx[T])
		for i, l := range lanes[:nl] {
			tx.holds[i] = s.lanes[l].lock()
		}
		tx.pooled = true
	}
	tx.s, tx.n, tx.lanes, tx.nl, tx.nops, tx.fired = s, len(ids), lanes, nl, 0, false
	copy(tx.ids[:], ids)
	return tx, nil
}

// addLane inserts lane l into lanes[:n] (ascending) unless it is there,
// and returns the new length.
func addLane(lanes *[MaxTxPlayers]int, n, l int) int {
	i := 0
	for i < n && lanes[i] < l {
		i++
	}
	if i < n && lanes[i] == l {
		return n
	}
	copy(lanes[i+1:n+1], lanes[i:n])
	lanes[i] = l
	return n + 1
}

// loadTx finds every player of tx and copies its committed value into
// tx's scratch. Only the lanes tx holds write those records, and readers
// only read: no seqlock check is needed.
func (s *Store[T]) loadTx(tx *Tx[T]) error {
	for i := range tx.n {
		slot, _, rec, err := s.lookupLocked(tx.ids[i])
		if err != nil {
			return err
		}
		tx.slots[i], tx.recs[i] = slot, rec
		tx.scratch[i].ID = tx.ids[i]
		tx.scratch[i].Val = rec.Val
		tx.vals[i] = &tx.scratch[i].Val
	}
	return nil
}

// unlock releases the transaction's lanes. A Tx that a hold owns is the
// next holder's from the instant that hold is released: nothing of tx is
// touched after.
func (tx *Tx[T]) unlock() {
	holds, nl := tx.holds, tx.nl
	tx.holds = [MaxTxPlayers]*laneHold[T]{}
	for _, h := range holds[:nl] {
		h.mu.Unlock()
	}
}

// initTimers builds the in-process timer index from the segment, after
// recovery, dropping what cannot fire (timers.go).
func (s *Store[T]) initTimers() {
	exists := func(id uint64) bool { _, _, _, ok := s.find(id); return ok }
	s.timersDropped = s.timers.load(exists, func(slot uint32, player uint64, why string) {
		s.log.Error("state: dropped a pending timer that cannot fire", "slot", slot, "player", player, "cause", why)
	})
}
