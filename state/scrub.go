package state

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The background scrub: what recovery no longer does before serving.
//
// kill -9 cannot damage a record: the journal rolls back or finishes
// whatever it cut short (recover.go). What the scrub looks for is damage
// from outside the commit protocol (a stray write into the mapping, a bit
// flip, a bug), which a check at Open could only find sooner, at the price
// of reading every page before the first request. Until the scrub reaches
// a damaged record, readers see it as it is, as they always did for damage
// done while a store was running.
//
// After Open (after a crash or not) a goroutine walks every slot, copies
// each record with a sequence-lock read (it never blocks a commit and never
// sees half of one), and checks it: Seq even, Sum right, and the index
// leading from the record's id back to its slot. It is throttled to
// Options.ScrubRate records a second and reports what it did in Scrub().
//
// A record that fails its check and that the index names (its id field
// leads to it, so the id can be believed) is restored from the newest
// snapshot holding that player, through Update, so the restore is an
// ordinary crash-atomic commit under the player's lane; what the player did
// since that snapshot is lost, and the snapshot's age is reported as that
// loss bound. A player that committed after the damage is restored all the
// same: those commits were computed from the damaged value.
//
// When no snapshot holds the player (created since the newest one, or no
// snapshots configured) the value is kept as it is and re-sealed (Seq made
// even, Sum recomputed), and the player is reported loudly (an Error log
// line and a ScrubProblem) with its id: no better copy exists anywhere,
// locking the player out would need an operator anyway, and an unsealed
// record would make every later snapshot unreadable and every read of it
// spin on its odd Seq. The operator sees the value (admin Describe) and
// decides.
//
// A record its own id does not lead to (its id field is damaged, or a
// second record claims an id the index gives another slot) can be named by
// no lookup: it is taken out of the index and freed, and reported as
// removed. A whole record the index lost is put back.

// DefaultScrubRate is the records a second the scrub checks unless
// Options.ScrubRate says otherwise: a million players in 10 s, at a few
// per cent of one core.
const DefaultScrubRate = 100_000

const (
	scrubChunk       = 512 // slots between status updates and pacing
	scrubSpins       = 64  // reads of an odd Seq before asking the lane
	maxScrubProblems = 100
)

// ScrubAction is what the scrub did about a record.
type ScrubAction string

const (
	// ScrubRestored: the record failed its check and was replaced by the
	// player's value in the newest snapshot holding it.
	ScrubRestored ScrubAction = "restored from snapshot"
	// ScrubKept: the record failed its check and no snapshot holds the
	// player: its value was kept as it was and re-sealed. Check it.
	ScrubKept ScrubAction = "kept as is (no snapshot holds the player)"
	// ScrubRemoved: the record cannot be reached through its own id (a
	// damaged id field, or a duplicate id): it was freed.
	ScrubRemoved ScrubAction = "removed"
	// ScrubReindexed: a whole record the index did not lead to was put
	// back into the index.
	ScrubReindexed ScrubAction = "put back into the index"
)

// ScrubProblem is one record the scrub found wrong, and what it did.
type ScrubProblem struct {
	At     time.Time
	Slot   int
	ID     uint64 // as the record says; for ScrubRemoved it may be the damage
	Cause  string // "checksum 0x1a2b3c4d, computed 0x...", "sequence word 7", ...
	Action ScrubAction
	// Snapshot and LossBound are set for ScrubRestored: the file the value
	// came from and its age at the restore, the most this player lost.
	Snapshot  string
	LossBound time.Duration
}

func (p ScrubProblem) String() string {
	s := fmt.Sprintf("player %d (slot %d): %s: %s", p.ID, p.Slot, p.Cause, p.Action)
	if p.Action == ScrubRestored {
		s += fmt.Sprintf(" %s, losing at most %v", p.Snapshot, p.LossBound.Round(time.Millisecond))
	}
	return s
}

// ScrubStatus is what the background scrub has done: the pass under way
// (or the last one) and totals since Open, for a status page and metrics.
type ScrubStatus struct {
	Rate    int  // records a second; 0 when the scrub is off
	Running bool // a pass is under way
	Passes  int  // passes completed since Open

	// The pass under way, or the last one.
	Started  time.Time
	Finished time.Time // zero while running
	Slots    int       // slots the pass walks
	Scanned  int       // slots walked so far
	Checked  int       // records checked so far
	Failed   int       // records that failed their check (Seq, Sum)

	// Totals since Open (counters).
	TotalChecked int64
	TotalFailed  int64 // records that failed their check
	Restored     int64 // ... and were restored from a snapshot
	Kept         int64 // ... and no snapshot held: kept as is, re-sealed
	Removed      int64 // records no id leads to, freed
	Reindexed    int64 // whole records put back into the index

	// Problems are the latest records found wrong, oldest first (at most
	// 100 are kept; the totals count them all).
	Problems []ScrubProblem
}

// Progress is the fraction of the current pass done, 0 to 1.
func (st ScrubStatus) Progress() float64 {
	if st.Slots == 0 {
		return 1
	}
	return float64(st.Scanned) / float64(st.Slots)
}

func (st ScrubStatus) String() string {
	if st.Rate == 0 {
		return "scrub off"
	}
	state := "done"
	if st.Running {
		state = fmt.Sprintf("running %.0f%%", 100*st.Progress())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "scrub %s (%d passes, %d records/s): checked %d, failed %d", state, st.Passes, st.Rate, st.TotalChecked, st.TotalFailed)
	if st.TotalFailed+st.Removed+st.Reindexed > 0 {
		fmt.Fprintf(&b, " (restored %d, kept %d, removed %d, reindexed %d)", st.Restored, st.Kept, st.Removed, st.Reindexed)
	}
	return b.String()
}

// scrubber is the scrub's goroutine and what it reports.
type scrubber struct {
	rate  int
	every time.Duration
	stop  chan struct{}
	done  chan struct{}

	mu   sync.Mutex
	st   ScrubStatus
	pass chan struct{} // closed when the pass under way ends
}

// Scrub reports the background scrub's progress and findings.
func (s *Store[T]) Scrub() ScrubStatus {
	sc := s.scrub
	if sc == nil {
		return ScrubStatus{}
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	st := sc.st
	st.Problems = append([]ScrubProblem(nil), st.Problems...)
	return st
}

// WaitScrub waits until the scrub pass under way (or the first one, if
// none has started) completes, or ctx is done, and returns the status.
// Between passes, and with the scrub off, it returns at once. A pass cut
// short by Close gives ErrClosed.
func (s *Store[T]) WaitScrub(ctx context.Context) (ScrubStatus, error) {
	sc := s.scrub
	if sc == nil || sc.stop == nil {
		return s.Scrub(), nil
	}
	sc.mu.Lock()
	wait := sc.st.Running || sc.st.Passes == 0
	ch := sc.pass
	sc.mu.Unlock()
	if !wait {
		return s.Scrub(), nil
	}
	select {
	case <-ch:
		return s.Scrub(), nil
	case <-ctx.Done():
		return s.Scrub(), ctx.Err()
	case <-sc.done: // stopped; its last pass may still have completed
		select {
		case <-ch:
			return s.Scrub(), nil
		default:
			return s.Scrub(), ErrClosed
		}
	}
}

// startScrub starts the background scrub (Open calls it last).
func (s *Store[T]) startScrub() {
	sc := &scrubber{rate: s.opts.ScrubRate, every: s.opts.ScrubEvery}
	s.scrub = sc
	if sc.rate < 0 {
		return
	}
	if sc.rate == 0 {
		sc.rate = DefaultScrubRate
	}
	sc.st.Rate = sc.rate
	sc.stop, sc.done, sc.pass = make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sc.done)
		for {
			if !s.scrubPass() || sc.every <= 0 || !sc.sleep(time.Now().Add(sc.every)) {
				return
			}
		}
	}()
}

// stopScrub stops the scrub and waits for it: it reads the mapping, so it
// must be gone before the segment is closed.
func (s *Store[T]) stopScrub() {
	if sc := s.scrub; sc != nil && sc.stop != nil {
		if !sc.stopped() {
			close(sc.stop)
		}
		<-sc.done
	}
}

// stopped reports whether Close asked the scrub to stop.
func (sc *scrubber) stopped() bool {
	select {
	case <-sc.stop:
		return true
	default:
		return false
	}
}

// sleep waits until t; false if the scrub was stopped first.
func (sc *scrubber) sleep(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return !sc.stopped()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-sc.stop:
		return false
	case <-tm.C:
		return true
	}
}

// begin and end bracket a pass in the status.
func (sc *scrubber) begin(slots int) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	st := &sc.st
	st.Running, st.Started, st.Finished = true, time.Now(), time.Time{}
	st.Slots, st.Scanned, st.Checked, st.Failed = slots, 0, 0, 0
}

// end closes a pass; only a complete one counts and wakes WaitScrub.
func (sc *scrubber) end(complete bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.st.Running, sc.st.Finished = false, time.Now()
	if complete {
		sc.st.Passes++
		close(sc.pass)
		sc.pass = make(chan struct{})
	}
}

// progress adds what a chunk of the pass did.
func (sc *scrubber) progress(scanned, checked, failed int) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	st := &sc.st
	st.Scanned += scanned
	st.Checked += checked
	st.Failed += failed
	st.TotalChecked += int64(checked)
	st.TotalFailed += int64(failed)
}

// report records one problem and counts its action.
func (sc *scrubber) report(p ScrubProblem) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	st := &sc.st
	switch p.Action {
	case ScrubRestored:
		st.Restored++
	case ScrubKept:
		st.Kept++
	case ScrubRemoved:
		st.Removed++
	case ScrubReindexed:
		st.Reindexed++
	}
	if len(st.Problems) == maxScrubProblems {
		st.Problems = append(st.Problems[:0], st.Problems[1:]...)
	}
	st.Problems = append(st.Problems, p)
}

// suspect is a record the pass found wrong; the remedy runs per batch.
type suspect struct {
	slot  int
	id    uint64
	cause string // "" for a whole record the index does not lead to
}

// scrubPass walks every slot once; false if the scrub was stopped.
func (s *Store[T]) scrubPass() (complete bool) {
	sc := s.scrub
	n := s.pool.Cap()
	sc.begin(n)
	defer func() { sc.end(complete) }()
	start := time.Now()
	var r record[T]
	var bad []suspect
	checked := 0
	for lo := 0; lo < n; lo += scrubChunk {
		hi := min(n, lo+scrubChunk)
		c, f := 0, 0
		for i := lo; i < hi; i++ {
			if sus, live := s.scrubSlot(i, &r); live {
				c++
				if sus != nil {
					bad = append(bad, *sus)
				}
				if sus != nil && sus.cause != "" {
					f++
				}
			}
		}
		sc.progress(hi-lo, c, f)
		if checked += c; len(bad) >= maxScrubProblems || hi == n {
			s.remedy(bad)
			bad = bad[:0]
		}
		due := start.Add(time.Duration(float64(checked) / float64(sc.rate) * float64(time.Second)))
		if !sc.sleep(due) {
			return false
		}
	}
	s.log.Info("state: scrub pass done", "slots", n, "checked", checked, "duration", time.Since(start))
	return true
}

// scrubSlot checks slot i: live is false for a free slot (or one being
// created or deleted); a non-nil suspect names what is wrong.
func (s *Store[T]) scrubSlot(i int, r *record[T]) (sus *suspect, live bool) {
	live, torn := s.scrubRead(i, r)
	if !live {
		return nil, false
	}
	if torn {
		// Seq stayed odd: a commit descheduled half way, or damage. Only
		// under the player's lane can the two be told apart.
		unlock := s.lockLane(r.ID)
		cause, stillLive := s.recordFault(i, r.ID)
		unlock()
		if !stillLive || cause == "" {
			return nil, stillLive
		}
		return &suspect{slot: i, id: r.ID, cause: cause}, true
	}
	if err := checkRecord(recordBytes(r), false); err != nil {
		return &suspect{slot: i, id: r.ID, cause: err.Error()}, true
	}
	if slot, _, _, ok := s.find(r.ID); !ok || slot != uint32(i) {
		return &suspect{slot: i, id: r.ID}, true
	}
	return nil, true
}

// scrubRead copies slot i's committed record into out as a sequence-lock
// read (Store.read), but gives up on an odd Seq after a bounded wait:
// damage can leave Seq odd for ever, and the scrub must not spin on it.
// Then torn is true and out holds an unchecked copy (its id is a hint).
func (s *Store[T]) scrubRead(i int, out *record[T]) (live, torn bool) {
	_, rec, ok := s.pool.Lookup(i)
	if !ok {
		return false, false
	}
	g := &s.locks[i]
	for spin := range scrubSpins {
		gen, alive := g.load()
		if !alive {
			return false, false
		}
		q := atomic.LoadUint32(&rec.Seq)
		*out = *rec
		if q&1 == 0 && seqRecheck(&rec.Seq) == q && g.w.Load() == gen {
			return true, false
		}
		backoff(spin)
	}
	return true, true
}

// recordFault checks slot i in place, if it still holds player id: call
// it holding id's lane, so that no commit to it is under way.
func (s *Store[T]) recordFault(i int, id uint64) (cause string, live bool) {
	_, rec, ok := s.pool.Lookup(i)
	if _, alive := s.locks[i].load(); !ok || !alive || atomic.LoadUint64(&rec.ID) != id {
		return "", false // deleted, or another player's since
	}
	if err := checkRecord(recordBytes(rec), false); err != nil {
		return err.Error(), true
	}
	return "", true
}

// lockLane takes the lane of player id, as Update, Ensure and Delete do:
// while it is held, no transaction, create or delete of a player of that
// lane runs. The scrub's one dependency on the lane's inside.
func (s *Store[T]) lockLane(id uint64) (unlock func()) {
	return s.lane(id).lock().mu.Unlock
}
