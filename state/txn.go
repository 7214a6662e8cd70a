package state

import (
	"fmt"
	"runtime/debug"
	"sync/atomic"
)

// Guard is a caller's handle on the transactions it runs with Store.Run,
// through which a watchdog can give up on one whose callback never
// returns (Store.Fence). A Guard runs one transaction at a time; reuse it
// for the next one (a host keeps one per connection). Once fenced, a Guard
// stays fenced: the goroutine stuck in the callback still holds it, so the
// caller starts a new one for whatever it does next.
//
// The zero value is ready to use.
type Guard struct {
	// w is lane<<32 | seq<<8 | held<<4 | phase, in one word so that Run
	// publishes them with one store and Fence checks them with one
	// compare-and-swap. seq counts transactions, so that a token from
	// Running fences that transaction and never a later one. held is 0
	// for a transaction holding one lane (the lane field), else the
	// number of lanes a RunMulti holds, listed in lanes.
	w atomic.Uint64
	// lanes lists a RunMulti's lanes, 16 bits each, written before w
	// publishes the transaction. Fence reads them before its
	// compare-and-swap: if they changed meanwhile, so did w, and the
	// swap fails.
	lanes [2]atomic.Uint64
}

// Guard phases (the low 4 bits of w).
const (
	phaseIdle    = 0
	phaseRunning = 1 // Run holds the lane; Fence may take it away
	phaseClaimed = 2 // the callback returned (or claimed early); the commit is Run's
	phaseFenced  = 3 // Fence took the lane; the transaction never commits
	phaseMask    = 0xf
)

// start publishes a new transaction on lane (the one Lane reports),
// holding held lanes listed in g.lanes (0: lane alone).
func (g *Guard) start(lane, held uint64) {
	seq := (g.w.Load()>>8 + 1) & 0xffffff
	g.w.Store(lane<<32 | seq<<8 | held<<4 | phaseRunning)
}

// startMulti publishes a transaction holding lanes (ascending, distinct);
// Lane reports first.
func (g *Guard) startMulti(first int, lanes []int) {
	if len(lanes) == 1 {
		g.start(uint64(first), 0)
		return
	}
	var w [2]uint64
	for i, l := range lanes {
		w[i/4] |= uint64(l) << (16 * (i % 4))
	}
	g.lanes[0].Store(w[0])
	g.lanes[1].Store(w[1])
	g.start(uint64(first), uint64(len(lanes)))
}

// held appends the lanes that token's transaction holds to out.
func (g *Guard) held(token uint64, out []int) []int {
	n := int(token >> 4 & 0xf)
	if n == 0 {
		return append(out, int(token>>32))
	}
	w := [2]uint64{g.lanes[0].Load(), g.lanes[1].Load()}
	for i := range min(n, MaxTxPlayers) {
		out = append(out, int(uint16(w[i/4]>>(16*(i%4)))))
	}
	return out
}

// Lane is the lane of the transaction g runs or ran last (see Store.LaneOf):
// for a RunMulti, the lane of its first player.
func (g *Guard) Lane() int { return int(g.w.Load() >> 32) }

// Running returns a token naming the transaction g is running now, for
// Fence, and false if g runs none (or its callback already returned).
func (g *Guard) Running() (token uint64, ok bool) {
	w := g.w.Load()
	return w, w&phaseMask == phaseRunning
}

// Claim ends the window in which Fence can give up on g's running
// transaction: after it returns true the transaction is the caller's to
// finish, and lane-owned data (the caller's own per-lane counters) may be
// written as if under the lane lock. It returns false if the transaction
// was fenced: the caller then owns nothing of the lane any more.
//
// A callback that only changes its value need not call Claim: Run claims
// after the callback returns.
func (g *Guard) Claim() bool {
	w := g.w.Load()
	switch w & phaseMask {
	case phaseClaimed:
		return true
	case phaseRunning:
		return g.w.CompareAndSwap(w, w&^phaseMask|phaseClaimed)
	}
	return false
}

// Fenced reports whether Fence gave up on g's transaction.
func (g *Guard) Fenced() bool { return g.w.Load()&phaseMask == phaseFenced }

// LaneOf is the lane that runs player id's transactions: a number in
// [0, Lanes()). Players of one lane are served one transaction at a time.
func (s *Store[T]) LaneOf(id uint64) int { return s.laneOfMixed(mix(id)) }

// laneOfMixed is LaneOf for an id whose mix the caller has already.
func (s *Store[T]) laneOfMixed(m uint64) int { return int(m & uint64(len(s.lanes)-1)) }

// Lanes is the number of transaction lanes, fixed when the segment was made.
func (s *Store[T]) Lanes() int { return len(s.lanes) }

// Run is Update for a caller that watches its callbacks. fn runs on a
// private copy of player id's committed value while the caller holds the
// player's lane, and the copy is committed crash-atomically if fn returns
// nil and the transaction was not fenced meanwhile.
//
// Unlike Update, Run does not recover a panic of fn: the caller recovers
// inside fn (one recover per request, shared by the transaction and
// whatever fn calls). A panic that escapes fn leaves the player unchanged,
// releases the lane and continues up the caller's stack.
//
// g may be nil (nothing can fence the transaction). With a Guard, a
// watchdog that calls Fence while fn runs makes Run return ErrFenced
// whenever fn returns, having committed nothing and touched nothing of
// the lane: by then another transaction may own it.
func (s *Store[T]) Run(id uint64, g *Guard, fn func(v *T) error) error {
	return s.runOne(id, g, fn, false)
}

// runOne is Run, and Update with catch set: then a panic of fn is recovered
// here, in the one deferred call that also releases the lane, and
// returned as a *PanicError.
func (s *Store[T]) runOne(id uint64, g *Guard, fn func(v *T) error, catch bool) (err error) {
	if s.closed.Load() {
		return ErrClosed
	}
	m := mix(id) // the lane and the index's home both come from it
	li := s.laneOfMixed(m)
	ln := &s.lanes[li]
	h := ln.lock()
	if g != nil {
		g.start(uint64(li), 0)
	}
	ok := false
	defer func() {
		if ok {
			return
		}
		var r any
		if catch {
			r = recover()
		}
		if g == nil || g.Claim() {
			h.mu.Unlock() // fn panicked: the scratch is dropped, the lane goes on
		}
		if r != nil {
			err = &PanicError{ID: id, Value: r, Stack: debug.Stack()}
		}
	}()
	slot, _, rec, found := findMixed(&s.idx, s.pool, id, m)
	if !found {
		err = fmt.Errorf("%w: player %d", ErrNotFound, id)
	} else {
		// Only this lane writes rec, and readers only read: copying it
		// without a seqlock check is safe.
		h.scratch.ID = id
		h.scratch.Val = rec.Val
		err = fn(&h.scratch.Val)
	}
	ok = true
	if g != nil && !g.Claim() {
		return ErrFenced // Fence released the lane; h is no longer ours
	}
	if err == nil {
		s.commit(ln, &h.scratch, slot, rec)
	}
	h.mu.Unlock()
	return err
}

// Fence gives up on the transaction that token (from g.Running) names: it
// can never commit, whatever its callback does after this, and its lane
// (every lane, for a RunMulti) is handed at once to a fresh hold (mutex
// and scratch), so the other players of the lane are served again while
// the stuck callback keeps its goroutine (Go cannot stop one). Writes the
// callback makes to its copies after this are dropped with them.
//
// whileHeld, if not nil, runs after the fence and before any other
// transaction gets the lane: a watchdog rolls the stuck version back there,
// so that the requests queued behind it run on the version restored.
//
// Fence reports false, and changes nothing, if that transaction is no
// longer running: its callback returned (it ends normally), or g has
// moved on to another transaction.
func (s *Store[T]) Fence(g *Guard, token uint64, whileHeld func()) bool {
	if token&phaseMask != phaseRunning {
		return false
	}
	var buf [MaxTxPlayers]int
	lanes := g.held(token, buf[:0]) // before the swap: see Guard.lanes
	if !g.w.CompareAndSwap(token, token&^phaseMask|phaseFenced) {
		return false
	}
	fresh := make([]*laneHold[T], len(lanes))
	for i, li := range lanes {
		ln := &s.lanes[li]
		old := ln.cur.Load() // the hold g took: only Fence of its holder replaces it
		fresh[i] = &laneHold[T]{}
		fresh[i].mu.Lock() // held until whileHeld has run
		ln.cur.Store(fresh[i])
		old.dead.Store(true)
		old.mu.Unlock() // a Mutex may be unlocked by another goroutine than its locker
	}
	if whileHeld != nil {
		whileHeld()
	}
	for _, h := range fresh {
		h.mu.Unlock()
	}
	return true
}

// WithLane runs fn holding lane i, for callers that keep their own
// per-lane data next to the store's and write it only from inside Run
// callbacks (after Guard.Claim): fn reads it consistently.
func (s *Store[T]) WithLane(i int, fn func()) {
	ln := &s.lanes[i]
	h := ln.lock()
	defer h.mu.Unlock()
	fn()
}
