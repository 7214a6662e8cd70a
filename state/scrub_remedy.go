package state

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"
)

// remedy deals with a batch of suspects (scrub.go says how): the damaged
// records the index names are looked up in the snapshots together, newest
// snapshot first, so a batch costs one read of each snapshot at most.
func (s *Store[T]) remedy(bad []suspect) {
	if len(bad) == 0 {
		return
	}
	want := map[uint64]bool{}
	for _, b := range bad {
		if b.cause != "" && s.named(b) {
			want[b.id] = true
		}
	}
	hits := s.snapshotValues(want)
	for _, b := range bad {
		if b.cause != "" && s.named(b) {
			s.restore(b, hits[b.id])
		} else {
			s.unnamed(b)
		}
	}
}

// named reports whether the index leads from b's id to b's slot: then the
// id field can be believed even when the record fails its check.
func (s *Store[T]) named(b suspect) bool {
	slot, _, _, ok := s.find(b.id)
	return ok && slot == uint32(b.slot)
}

// errMoved stops a restore whose player was deleted (or moved) since the
// scrub found it.
var errMoved = errors.New("state: scrub: record changed hands")

// restore replaces a damaged record the index names with its newest
// snapshot value (hit), or re-seals it as it is when there is none. It is
// an Update that seals the record afresh (an Update carries the old Sum
// over, which would keep the damage): the player's lane, the journal and
// the commit make it crash-atomic like any other.
func (s *Store[T]) restore(b suspect, hit *snapHit[T]) {
	err := s.updateSealed(b.id, func(v *T) error {
		_, rec, live := s.pool.Lookup(b.slot)
		if !live || !s.named(b) {
			return errMoved
		}
		// An odd Seq would stay odd through the commit, and readers would
		// wait on it for ever; it is damage, so make it even first.
		if q := atomic.LoadUint32(&rec.Seq); q&1 != 0 {
			atomic.StoreUint32(&rec.Seq, q+1)
		}
		if hit != nil {
			*v = hit.val
		}
		return nil
	})
	if errors.Is(err, errMoved) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrClosed) {
		return
	}
	p := ScrubProblem{At: time.Now(), Slot: b.slot, ID: b.id, Cause: b.cause, Action: ScrubKept}
	if err != nil {
		s.log.Error("state: scrub could not repair a damaged record", "player", b.id, "slot", b.slot, "cause", b.cause, "error", err)
		return
	}
	if hit == nil {
		s.scrub.report(p)
		s.log.Error("state: scrub found a damaged record that no snapshot holds; kept its value as it is and re-sealed it: check this player",
			"player", b.id, "slot", b.slot, "cause", b.cause)
		return
	}
	p.Action, p.Snapshot, p.LossBound = ScrubRestored, hit.path, time.Since(hit.created)
	s.scrub.report(p)
	s.log.Warn("state: scrub restored a damaged record from a snapshot", "player", b.id, "slot", b.slot,
		"cause", b.cause, "snapshot", hit.path, "loss_bound", p.LossBound)
}

// unnamed deals with a record its id does not lead to, under that id's
// lane (the only lane that could reach it): a whole record the index lost
// goes back in; anything else (a damaged id field, a second record of an
// id the index gives another slot) can be named by no lookup, and is
// taken out of the index and freed.
func (s *Store[T]) unnamed(b suspect) {
	unlock := s.lockLane(b.id)
	defer unlock()
	_, rec, live := s.pool.Lookup(b.slot)
	if _, alive := s.locks[b.slot].load(); !live || !alive || atomic.LoadUint64(&rec.ID) != b.id {
		return // deleted, or reused, since
	}
	slot, _, _, found := s.find(b.id)
	p := ScrubProblem{At: time.Now(), Slot: b.slot, ID: b.id, Cause: b.cause, Action: ScrubRemoved}
	switch {
	case found && slot == uint32(b.slot):
		return
	case b.cause == "" && !found:
		s.idx.removeSlot(uint32(b.slot))
		if err := s.idx.insert(b.id, uint32(b.slot)); err != nil {
			s.log.Error("state: scrub could not put a record back into the index", "player", b.id, "slot", b.slot, "error", err)
			return
		}
		p.Action, p.Cause = ScrubReindexed, "the index did not lead to it"
		s.scrub.report(p)
		s.log.Warn("state: scrub put a record back into the index", "player", b.id, "slot", b.slot)
		return
	case b.cause == "":
		p.Cause = fmt.Sprintf("a second record of player %d, whose index entry leads to slot %d", b.id, slot)
	default:
		p.Cause += "; its id field does not lead to it"
	}
	h, _, _ := s.pool.Lookup(b.slot)
	s.locks[b.slot].kill()
	s.idx.removeSlot(uint32(b.slot))
	if err := s.pool.Free(h); err != nil {
		s.log.Error("state: scrub could not free a record no id leads to", "slot", b.slot, "error", err)
		return
	}
	s.scrub.report(p)
	s.log.Error("state: scrub removed a record that no id leads to", "slot", b.slot, "id_field", b.id, "cause", p.Cause)
}

// snapHit is a player's value as a snapshot holds it.
type snapHit[T any] struct {
	val     T
	path    string
	created time.Time
}

// errAllFound stops a snapshot scan early.
var errAllFound = errors.New("state: every player found")

// snapshotValues finds the players of want in the snapshots, each in the
// newest snapshot that holds it whole. A record is taken from a snapshot
// only once its own checksum proved it (readSnapRecords checks each one
// before handing it out), even if a later record of that file is damaged.
func (s *Store[T]) snapshotValues(want map[uint64]bool) map[uint64]*snapHit[T] {
	hits := map[uint64]*snapHit[T]{}
	if len(want) == 0 || s.opts.SnapshotDir == "" {
		return hits
	}
	paths, err := listSnapshots(s.opts.SnapshotDir, s.opts.Name)
	if err != nil {
		s.log.Error("state: scrub cannot list snapshots", "dir", s.opts.SnapshotDir, "error", err)
	}
	for _, path := range paths {
		if len(hits) == len(want) || s.scrub.stopped() {
			break
		}
		if err := s.scanSnapshot(path, want, hits); err != nil {
			s.log.Warn("state: scrub could not read all of a snapshot", "path", path, "error", err)
		}
	}
	return hits
}

func (s *Store[T]) scanSnapshot(path string, want map[uint64]bool, hits map[uint64]*snapHit[T]) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	h, err := readSnapHeader(r)
	if err != nil {
		return err
	}
	p, err := planFor[T](h.layout, s.opts)
	if err != nil {
		return err
	}
	err = readSnapRecords(r, h, func(rec []byte) error {
		id := ne.Uint64(rec[8:])
		if !want[id] || hits[id] != nil {
			return nil
		}
		hit := &snapHit[T]{path: path, created: h.created}
		val := unsafe.Slice((*byte)(unsafe.Pointer(&hit.val)), unsafe.Sizeof(hit.val))
		if p.same {
			copy(val, rec[recHeader:])
		} else if err := p.convert(rec, val, &hit.val); err != nil {
			return err
		}
		hits[id] = hit
		if len(hits) == len(want) {
			return errAllFound
		}
		return nil
	})
	if errors.Is(err, errAllFound) {
		return nil
	}
	return err
}
