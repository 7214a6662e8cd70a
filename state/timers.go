package state

import (
	"container/heap"
	"fmt"
	"hash/crc32"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Timers: per-player messages scheduled for later, kept in the segment
// with the players, so that they survive hot swaps, clean restarts and
// kill -9, and fire exactly once.
//
// # Where they live
//
// In the aux region (journal.go), not in a second pool: a timer is
// scheduled, cancelled and fired in the same commit as its players'
// change, and one journal (txjournal.go) can make that atomic only over
// one mapping; a migration renames one file. A timer slot is a word and a
// 128-byte body (the player, the due time, the message and its args, and
// a CRC-32C): 136 bytes of shared memory, committed when the segment is
// made, whether pending or not. The words sit in their own dense array so
// that Open reads a million slots' state in 8 megabytes.
//
// A slot's word counts the slot's changes: even while it is free, odd
// while it holds a pending timer, one higher at each change. A TimerID is
// the word of its timer with the slot, so an ID names one timer for ever:
// once it fired or was cancelled, the slot's word has moved on, whatever
// the slot holds since.
//
// # How a change commits
//
// Tx.At takes a free slot (in-process free list) and writes the body
// there while the word still says free; Tx.Cancel and RunTimer's removal
// only note the slot. The commit steps each word (free -> pending,
// pending -> free) with the players' records under the transaction
// journal, then updates the in-process index (due-time heap, per-player
// lists, free list) before the lanes are released. A transaction that
// changes no timer commits as it did before.
//
// The in-process index is rebuilt from the words on every Open (never a
// persisted free list); a pending timer whose body fails its check, or
// whose player no longer exists (a Delete cut short between the player
// and its timers), is dropped there and logged.
//
// Snapshots hold the players only: a store restored from one (after a
// reboot) starts with no timer pending.

// Timer limits.
const (
	// MaxTimerMsg is the longest message name a timer holds, in bytes.
	MaxTimerMsg = 32
	// MaxTimerArgs is the longest args a timer holds, in bytes: enough to
	// name what the message is about; what is bigger belongs in the
	// player's value.
	MaxTimerArgs = 72
	// MaxPlayerTimers is the most timers one player has pending.
	MaxPlayerTimers = 64

	timerBodySize = 128
	maxTimers     = 1 << 24 // slots: a TimerID keeps the slot in its low 24 bits
	maxDefTimers  = 1 << 16
)

// A timer body is exactly timerBodySize bytes (a compile error otherwise).
var _ = [1]struct{}{}[unsafe.Sizeof(timerBody{})-timerBodySize]

// TimerID names one timer, for as long as the segment lives.
type TimerID uint64

func makeTimerID(slot uint32, word uint64) TimerID { return TimerID(word<<24 | uint64(slot)) }

func (id TimerID) slot() uint32 { return uint32(id & (maxTimers - 1)) }
func (id TimerID) word() uint64 { return uint64(id) >> 24 }

// Timer is one pending timer: Msg with Args is due for Player at Due.
type Timer struct {
	ID     TimerID
	Player uint64
	Due    time.Time
	Msg    string
	Args   string
}

// timerBody is a timer slot's body in the segment.
type timerBody struct {
	Player uint64
	Due    int64  // Unix nanoseconds
	Sum    uint32 // CRC-32C of the slot's word and every other byte of the body
	MsgLen uint8
	ArgLen uint8
	_      [2]byte
	Msg    [MaxTimerMsg]byte
	Args   [MaxTimerArgs]byte
}

// sum is the body's checksum for the pending word w: a body left from an
// earlier timer of the slot does not pass for the current one.
func (b *timerBody) sum(w uint64) uint32 {
	raw := unsafe.Slice((*byte)(unsafe.Pointer(b)), timerBodySize)
	var wb [8]byte
	ne.PutUint64(wb[:], w)
	c := crc32.Update(0, castagnoli, wb[:])
	c = crc32.Update(c, castagnoli, raw[:16])
	return crc32.Update(c, castagnoli, raw[20:])
}

// check says what is wrong with the body of a pending timer of word w, or "".
func (b *timerBody) check(w uint64) string {
	switch {
	case b.Sum != b.sum(w):
		return fmt.Sprintf("checksum %#08x, computed %#08x", b.Sum, b.sum(w))
	case b.MsgLen == 0 || b.MsgLen > MaxTimerMsg || b.ArgLen > MaxTimerArgs:
		return fmt.Sprintf("message of %d bytes, args of %d", b.MsgLen, b.ArgLen)
	}
	return ""
}

func (b *timerBody) timer(slot uint32, w uint64) Timer {
	return Timer{ID: makeTimerID(slot, w), Player: b.Player, Due: time.Unix(0, b.Due),
		Msg: string(b.Msg[:b.MsgLen]), Args: string(b.Args[:b.ArgLen])}
}

// defaultTimers is the timer slots of a new segment of capacity players
// when Options.Timers is 0.
func defaultTimers(capacity int) int { return min(4*capacity, maxDefTimers) }

// timerSlots is how many timer slots a segment built now holds: what the
// options ask for, never fewer than the segment being replaced had (old).
func timerSlots(opts Options, capacity, old int) int {
	t := opts.Timers
	if t == 0 {
		t = old
	}
	if t == 0 {
		t = defaultTimers(capacity)
	}
	return max(t, old)
}

// copyTimers puts the pending timers of an old segment's aux region
// (layout g; words overrides the words its transaction journal restores)
// into b, a segment being built with at least as many timer slots, each
// in the same slot with the same word, so that their TimerIDs still name
// them. Timers that fail their check, or whose player b does not hold,
// are dropped, logged and counted.
func (b *Store[T]) copyTimers(aux []byte, g auxGeom, words map[int]uint64) (dropped int) {
	if g.version < 3 || g.timers == 0 {
		return 0
	}
	old := bindTimers(aux, g)
	for i := range old.words {
		w, ok := words[i]
		if !ok {
			w = atomic.LoadUint64(&old.words[i])
		}
		if w&1 == 0 {
			continue
		}
		body := &old.bodies[i]
		why := body.check(w)
		if _, _, _, ok := b.find(body.Player); why == "" && !ok {
			why = "its player was not carried over"
		}
		if why != "" {
			b.log.Error("state: migration dropped a pending timer", "slot", i, "player", body.Player, "cause", why)
			dropped++
			continue
		}
		b.timers.bodies[i] = *body
		b.timers.words[i] = w
	}
	return dropped
}

// timerSet is the in-process index of a segment's timers. mu guards
// everything but the segment's words and bodies, which change only in
// commits (holding the lanes of the timers' players) and in Delete.
type timerSet struct {
	words  []uint64    // in the segment
	bodies []timerBody // in the segment

	mu       sync.Mutex
	free     []uint32 // free slots no transaction holds; the lowest on top
	heap     []uint32 // pending slots, a min-heap by (due, slot)
	pos      []int32  // slot -> its position in heap, -1 when not pending
	due      []int64  // slot -> due, for the heap (not the segment's copy)
	byPlayer map[uint64][]uint32
}

func bindTimers(aux []byte, g auxGeom) *timerSet {
	ts := &timerSet{byPlayer: map[uint64][]uint32{}}
	if g.timers > 0 {
		ts.words = unsafe.Slice((*uint64)(unsafe.Pointer(&aux[g.words])), g.timers)
		ts.bodies = unsafe.Slice((*timerBody)(unsafe.Pointer(&aux[g.bodies])), g.timers)
	}
	return ts
}

// load builds the index from the segment, dropping (and counting) pending
// timers that fail their check or whose player does not exist (exists
// says).
func (ts *timerSet) load(exists func(id uint64) bool, drop func(slot uint32, player uint64, why string)) (dropped int) {
	n := len(ts.words)
	ts.pos = make([]int32, n)
	ts.due = make([]int64, n)
	ts.free = make([]uint32, 0, n)
	for i := n - 1; i >= 0; i-- {
		slot := uint32(i)
		ts.pos[i] = -1
		w := atomic.LoadUint64(&ts.words[i])
		if w&1 == 0 {
			ts.free = append(ts.free, slot)
			continue
		}
		b := &ts.bodies[i]
		why := b.check(w)
		if why == "" && !exists(b.Player) {
			why = "its player does not exist"
		}
		if why != "" {
			drop(slot, b.Player, why)
			atomic.StoreUint64(&ts.words[i], w+1)
			ts.free = append(ts.free, slot)
			dropped++
			continue
		}
		ts.add(slot)
	}
	return dropped
}

// alloc takes a free slot for a transaction to write a body into.
func (ts *timerSet) alloc() (uint32, bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.free) == 0 {
		return 0, false
	}
	slot := ts.free[len(ts.free)-1]
	ts.free = ts.free[:len(ts.free)-1]
	return slot, true
}

// release gives back a slot that alloc handed out and no commit used.
func (ts *timerSet) release(slot uint32) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.free = append(ts.free, slot)
}

// pending reports whether slot holds player's pending timer of word w.
func (ts *timerSet) pending(slot uint32, w uint64, player uint64) bool {
	if int(slot) >= len(ts.words) {
		return false
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.pos[slot] >= 0 && atomic.LoadUint64(&ts.words[slot]) == w && ts.bodies[slot].Player == player
}

// count is how many timers player has pending.
func (ts *timerSet) count(player uint64) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.byPlayer[player])
}

// applied updates the index after a commit stepped the words of ops.
func (ts *timerSet) applied(ops []timerOp) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, op := range ops {
		if op.old&1 == 0 {
			ts.add(op.slot)
		} else {
			ts.remove(op.slot)
		}
	}
}

// dropPlayer removes every pending timer of player, for Delete: each word
// is stepped on its own (a crash part way leaves timers of a player that
// no longer exists, which the next Open drops).
func (ts *timerSet) dropPlayer(player uint64) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, slot := range slices.Clone(ts.byPlayer[player]) {
		journalStore(&ts.words[slot], ts.words[slot]+1)
		ts.remove(slot)
	}
}

// add indexes pending slot; mu is held (or the set is not shared yet).
func (ts *timerSet) add(slot uint32) {
	b := &ts.bodies[slot]
	ts.due[slot] = b.Due
	heap.Push((*timerHeap)(ts), slot)
	ts.byPlayer[b.Player] = append(ts.byPlayer[b.Player], slot)
}

// remove unindexes pending slot and frees it; mu is held.
func (ts *timerSet) remove(slot uint32) {
	heap.Remove((*timerHeap)(ts), int(ts.pos[slot]))
	p := ts.bodies[slot].Player
	if l := slices.DeleteFunc(ts.byPlayer[p], func(s uint32) bool { return s == slot }); len(l) > 0 {
		ts.byPlayer[p] = l
	} else {
		delete(ts.byPlayer, p)
	}
	ts.free = append(ts.free, slot)
}

func (ts *timerSet) before(a, b uint32) bool {
	return ts.due[a] < ts.due[b] || ts.due[a] == ts.due[b] && a < b
}

func (ts *timerSet) timer(slot uint32) Timer {
	return ts.bodies[slot].timer(slot, atomic.LoadUint64(&ts.words[slot]))
}

// timerHeap is the heap.Interface of the due-time heap.
type timerHeap timerSet

func (h *timerHeap) Len() int           { return len(h.heap) }
func (h *timerHeap) Less(i, j int) bool { return (*timerSet)(h).before(h.heap[i], h.heap[j]) }
func (h *timerHeap) Swap(i, j int) {
	h.heap[i], h.heap[j] = h.heap[j], h.heap[i]
	h.pos[h.heap[i]], h.pos[h.heap[j]] = int32(i), int32(j)
}
func (h *timerHeap) Push(x any) {
	slot := x.(uint32)
	h.pos[slot] = int32(len(h.heap))
	h.heap = append(h.heap, slot)
}
func (h *timerHeap) Pop() any {
	slot := h.heap[len(h.heap)-1]
	h.heap = h.heap[:len(h.heap)-1]
	h.pos[slot] = -1
	return slot
}

// frontier is a best-first walk of the due-time heap: positions whose
// parents were taken, smallest first. Taking k timers in due order costs
// O(k log k), however many more are due.
type frontier struct {
	ts  *timerSet
	pos []int
}

func (f *frontier) Len() int { return len(f.pos) }
func (f *frontier) Less(i, j int) bool {
	return f.ts.before(f.ts.heap[f.pos[i]], f.ts.heap[f.pos[j]])
}
func (f *frontier) Swap(i, j int) { f.pos[i], f.pos[j] = f.pos[j], f.pos[i] }
func (f *frontier) Push(x any)    { f.pos = append(f.pos, x.(int)) }
func (f *frontier) Pop() any {
	p := f.pos[len(f.pos)-1]
	f.pos = f.pos[:len(f.pos)-1]
	return p
}

// DueTimers returns up to max timers due at now (Due not after it), the
// earliest first. A timer stays pending until RunTimer fires it (or its
// player cancels it or is deleted): a caller that fires timers
// concurrently keeps track of those in flight, and a late duplicate gets
// ErrTimerGone.
func (s *Store[T]) DueTimers(now time.Time, max int) []Timer {
	if s.closed.Load() || max <= 0 {
		return nil
	}
	ts := s.timers
	ts.mu.Lock()
	defer ts.mu.Unlock()
	limit := now.UnixNano()
	var out []Timer
	f := &frontier{ts: ts}
	if len(ts.heap) > 0 {
		f.pos = append(f.pos, 0)
	}
	for f.Len() > 0 && len(out) < max {
		p := heap.Pop(f).(int)
		slot := ts.heap[p]
		if ts.due[slot] > limit {
			break
		}
		out = append(out, ts.timer(slot))
		for _, c := range []int{2*p + 1, 2*p + 2} {
			if c < len(ts.heap) {
				heap.Push(f, c)
			}
		}
	}
	return out
}

// NextDue is when the earliest pending timer is due, and false if none
// is pending: how long a caller firing timers may sleep.
func (s *Store[T]) NextDue() (time.Time, bool) {
	ts := s.timers
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.heap) == 0 || s.closed.Load() {
		return time.Time{}, false
	}
	return time.Unix(0, ts.due[ts.heap[0]]), true
}

// Timers returns player's pending timers, the earliest first.
func (s *Store[T]) Timers(player uint64) []Timer {
	if s.closed.Load() {
		return nil
	}
	ts := s.timers
	ts.mu.Lock()
	defer ts.mu.Unlock()
	slots := slices.Clone(ts.byPlayer[player])
	slices.SortFunc(slots, func(a, b uint32) int {
		if ts.before(a, b) {
			return -1
		}
		return 1
	})
	out := make([]Timer, len(slots))
	for i, slot := range slots {
		out[i] = ts.timer(slot)
	}
	return out
}

// PendingTimers is how many timers are pending, and how many the segment
// holds (Options.Timers).
func (s *Store[T]) PendingTimers() (pending, capacity int) {
	ts := s.timers
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.heap), len(ts.words)
}

// RunTimer fires timer t: fn runs on its player as a RunTx transaction,
// and the timer is removed in the same commit as fn's change, so that
// kill -9 at any instant leaves it either pending with no effect or gone
// with its effect: a timer fires once. If fn returns an error its change
// is dropped but the timer is still removed (it fired; its handler
// refused), and that error is returned. A fenced transaction, or a panic
// escaping fn, commits nothing: the timer stays pending.
//
// A timer that is no longer pending (fired, cancelled, its player
// deleted) gives ErrTimerGone, and fn is not run. One whose player does
// not exist is removed, with ErrNotFound.
func (s *Store[T]) RunTimer(t Timer, g *Guard, fn func(tx *Tx[T]) error) error {
	ids := [1]uint64{t.Player}
	return s.run(ids[:], g, &t, fn)
}

// timerOp is one timer word a transaction steps: a pending slot to free
// (old odd), or a free slot whose body it wrote to make pending (old even).
type timerOp struct {
	slot uint32
	old  uint64
}

// At schedules msg with args for player (one of the transaction's) at
// due, if the transaction commits: the timer and the players' change
// become durable together. The ID is the timer's from then on.
//
// Errors: ErrBadPlayers for a player the transaction does not hold,
// ErrBadTimer for an empty msg or one longer than MaxTimerMsg (args:
// MaxTimerArgs), ErrTimersFull when the transaction already changes
// MaxTxTimers timers, the player has MaxPlayerTimers pending, or every
// timer slot of the segment (Options.Timers) is taken.
func (tx *Tx[T]) At(player uint64, due time.Time, msg, args string) (TimerID, error) {
	if !tx.has(player) {
		return 0, fmt.Errorf("%w: player %d is not in this transaction (%v)", ErrBadPlayers, player, tx.Players())
	}
	if msg == "" || len(msg) > MaxTimerMsg || len(args) > MaxTimerArgs {
		return 0, fmt.Errorf("%w: message of %d bytes (1 to %d), args of %d bytes (at most %d)",
			ErrBadTimer, len(msg), MaxTimerMsg, len(args), MaxTimerArgs)
	}
	ts := tx.s.timers
	if err := tx.roomFor(player); err != nil {
		return 0, err
	}
	slot, ok := ts.alloc()
	if !ok {
		return 0, fmt.Errorf("%w: all %d timer slots of the segment are taken (Options.Timers)", ErrTimersFull, len(ts.words))
	}
	old := atomic.LoadUint64(&ts.words[slot])
	b := &ts.bodies[slot]
	*b = timerBody{Player: player, Due: due.UnixNano(), MsgLen: uint8(len(msg)), ArgLen: uint8(len(args))}
	copy(b.Msg[:], msg)
	copy(b.Args[:], args)
	b.Sum = b.sum(old + 1)
	tx.ops[tx.nops] = timerOp{slot: slot, old: old}
	tx.nops++
	return makeTimerID(slot, old+1), nil
}

// After is At(player, time.Now().Add(d), msg, args).
func (tx *Tx[T]) After(player uint64, d time.Duration, msg, args string) (TimerID, error) {
	return tx.At(player, time.Now().Add(d), msg, args)
}

// Cancel removes player's pending timer id if the transaction commits
// (or drops a timer this transaction scheduled). ErrTimerGone: no such
// timer is pending for player.
func (tx *Tx[T]) Cancel(player uint64, id TimerID) error {
	if !tx.has(player) {
		return fmt.Errorf("%w: player %d is not in this transaction (%v)", ErrBadPlayers, player, tx.Players())
	}
	slot, w := id.slot(), id.word()
	ts := tx.s.timers
	for k, op := range tx.ops[:tx.nops] {
		if op.slot != slot {
			continue
		}
		if op.old&1 == 1 || op.old+1 != w || ts.bodies[slot].Player != player {
			break // cancelled or fired by this transaction already, or another's
		}
		ts.release(slot) // scheduled by this transaction: never mind
		copy(tx.ops[k:], tx.ops[k+1:tx.nops])
		tx.nops--
		return nil
	}
	if !ts.pending(slot, w, player) || tx.changes(slot) {
		return fmt.Errorf("%w: timer %d of player %d", ErrTimerGone, id, player)
	}
	if tx.nops == MaxTxTimers {
		return fmt.Errorf("%w: a transaction changes at most %d timers", ErrTimersFull, MaxTxTimers)
	}
	tx.ops[tx.nops] = timerOp{slot: slot, old: w}
	tx.nops++
	return nil
}

// roomFor says whether the transaction may schedule one more timer for
// player.
func (tx *Tx[T]) roomFor(player uint64) error {
	if tx.nops == MaxTxTimers {
		return fmt.Errorf("%w: a transaction changes at most %d timers", ErrTimersFull, MaxTxTimers)
	}
	n := tx.s.timers.count(player)
	for _, op := range tx.ops[:tx.nops] {
		if tx.s.timers.bodies[op.slot].Player == player {
			n += 1 - 2*int(op.old&1) // scheduled +1, removed -1
		}
	}
	if n >= MaxPlayerTimers {
		return fmt.Errorf("%w: player %d has %d timers pending, at most %d", ErrTimersFull, player, n, MaxPlayerTimers)
	}
	return nil
}

func (tx *Tx[T]) changes(slot uint32) bool {
	for _, op := range tx.ops[:tx.nops] {
		if op.slot == slot {
			return true
		}
	}
	return false
}

// takeTimer notes RunTimer's removal of t, which must be pending for the
// transaction's player.
func (tx *Tx[T]) takeTimer(t Timer) error {
	if !tx.s.timers.pending(t.ID.slot(), t.ID.word(), t.Player) {
		return fmt.Errorf("%w: timer %d (%s for player %d)", ErrTimerGone, t.ID, t.Msg, t.Player)
	}
	tx.ops[0] = timerOp{slot: t.ID.slot(), old: t.ID.word()}
	tx.nops, tx.fired = 1, true
	return nil
}

// dropTimers gives back the slots of the timers the transaction
// scheduled, and forgets its timer changes; keepFired keeps RunTimer's
// removal (ops[0]).
func (tx *Tx[T]) dropTimers(keepFired bool) {
	keep := 0
	if keepFired && tx.fired {
		keep = 1
	}
	for _, op := range tx.ops[keep:tx.nops] {
		if op.old&1 == 0 {
			tx.s.timers.release(op.slot)
		}
	}
	tx.nops = keep
}
