package state

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hothost/hothost/shmpool"
)

// Options say where a store lives and how it is kept.
type Options struct {
	// Name is the segment's file name under ShmDir.
	Name string
	// ShmDir holds the segment; "" means /dev/shm.
	ShmDir string
	// Capacity is the most players a new segment holds. An existing
	// segment with fewer slots is grown (by migration) to Capacity; 0
	// accepts the existing segment's capacity.
	Capacity int
	// Timers is the most timers pending at once in a new segment (at
	// most 16M; each slot is 136 bytes of shared memory, pending or not);
	// 0 means 4*Capacity, at most 65536 (8.5 MiB). An existing segment
	// with fewer is grown (by migration); 0 accepts the existing
	// segment's.
	Timers int
	// Lanes is the number of transaction lanes of a new segment (a power
	// of two, default 256): players hash onto lanes, and a lane runs one
	// transaction at a time.
	Lanes int
	// SnapshotDir holds snapshots; "" means none are written or restored.
	// A snapshot holds the players, not their pending timers.
	SnapshotDir string
	// KeepSnapshots is how many of the newest snapshots are kept (default 3).
	KeepSnapshots int
	// SnapshotEvery, if positive (and SnapshotDir set), makes the store
	// write a snapshot at this interval: the most state a reboot can lose.
	// A failed one is logged and retried at the next tick, and the store
	// keeps serving; Store.LastSnapshot reports the last success and the
	// latest error.
	SnapshotEvery time.Duration
	// Migrations converts records of layouts that automatic migration
	// refuses. The key is the fingerprint of the OLD value type T (not of
	// the record around it): Fingerprint[OldT]() computes it, and the
	// ErrIncompatible message prints it.
	Migrations map[[32]byte]MigrateFunc
	// Logger receives what Open, recovery and snapshots did; nil means
	// slog.Default().
	Logger *slog.Logger
	// ScrubRate is how many records a second the background scrub checks
	// (scrub.go): 0 means DefaultScrubRate, a negative value turns the
	// scrub off.
	ScrubRate int
	// ScrubEvery, if positive, starts another scrub pass this long after
	// each one ends; 0 means one pass after Open.
	ScrubEvery time.Duration
}

// MigrateFunc converts one stored record into the current T. old is the
// record read by field name through its stored layout; new is a *T that
// already holds every field automatic migration could carry over (same
// name, compatible kind) and zero elsewhere. An error stops the migration
// and leaves the old segment as it was.
type MigrateFunc func(old Record, new any) error

const (
	defaultLanes = 256
	maxLanes     = 1 << 16
	defaultKeep  = 3
)

func (o Options) withDefaults() (Options, error) {
	if o.Name == "" {
		return o, errors.New("state: Options.Name is empty")
	}
	if o.Capacity < 0 {
		return o, fmt.Errorf("state: negative capacity %d", o.Capacity)
	}
	if o.Timers < 0 || o.Timers > maxTimers {
		return o, fmt.Errorf("state: %d timers: want 0 to %d", o.Timers, maxTimers)
	}
	if o.Lanes == 0 {
		o.Lanes = defaultLanes
	}
	if o.Lanes < 0 || o.Lanes > maxLanes || o.Lanes&(o.Lanes-1) != 0 {
		return o, fmt.Errorf("state: %d lanes: want a power of two up to %d", o.Lanes, maxLanes)
	}
	if o.KeepSnapshots <= 0 {
		o.KeepSnapshots = defaultKeep
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// Store is the players' state: one record per player in a shared-memory
// segment. All methods are safe for concurrent use.
type Store[T any] struct {
	opts   Options
	log    *slog.Logger
	pool   *shmpool.Pool[record[T]]
	layout *shmpool.Layout // of T, as stored
	aux    []byte
	geom   auxGeom
	lanes  []lane[T]
	txj    *txJournal[T] // in the segment: see txjournal.go
	txMu   sync.Mutex    // the transaction journal's writer
	txPool sync.Pool     // of *Tx[T]
	timers *timerSet     // timers.go

	timersDropped int       // by initTimers
	locks         []slotGen // per slot: see lock.go
	idx           index
	recSize       uintptr

	closed atomic.Bool
	snapMu sync.Mutex // one snapshot at a time
	stop   chan struct{}
	done   chan struct{}

	scrub *scrubber // the background scrub (scrub.go)

	// last is what LastSnapshot reports: its own mutex, so that a status
	// page never waits for a snapshot in progress (snapMu).
	last struct {
		mu       sync.Mutex
		info     SnapshotInfo // the last snapshot written
		at       time.Time    // when it was in place (renamed, fsynced)
		err      error        // the last attempt's error; nil after a success
		failures int          // attempts failed since the last success
	}
}

// Fingerprint is the layout fingerprint of T: the key of
// Options.Migrations for records stored as T.
func Fingerprint[T any]() ([32]byte, error) {
	l, err := shmpool.Describe(reflect.TypeFor[T]())
	if err != nil {
		return [32]byte{}, err
	}
	return l.Fingerprint(), nil
}

// Open makes the store a host starts with, and says how:
//
//   - the segment exists with T's layout: attach it (recovering first if
//     the previous owner died);
//   - it exists with another layout: migrate it by field name into a new
//     segment (or refuse with ErrIncompatible and the diff);
//   - it is missing: restore the newest valid snapshot from SnapshotDir;
//   - there is none: create an empty segment of Options.Capacity.
//
// A segment that cannot be validated (bad magic, checksum, geometry) is an
// error, never silently replaced: the operator removes it to restore.
func Open[T any](opts Options) (*Store[T], *OpenReport, error) {
	start := time.Now()
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	if _, err := shmpool.Describe(reflect.TypeFor[record[T]]()); err != nil {
		return nil, nil, fmt.Errorf("state: %w", err)
	}
	rep := &OpenReport{SnapshotEvery: opts.SnapshotEvery}
	s, err := attach[T](opts, rep)
	switch {
	case err == nil && (opts.Capacity > s.pool.Cap() || opts.Timers > s.geom.timers):
		// Growing is a migration to the same layout: close (clean) and
		// rebuild at the new size.
		reason := fmt.Sprintf("grown from %d players and %d timers to %d and %d", s.pool.Cap(), s.geom.timers,
			max(s.pool.Cap(), opts.Capacity), max(s.geom.timers, opts.Timers))
		if err = s.closeSegment(); err == nil {
			err = migrate[T](opts, rep)
		}
		if err == nil {
			rep.How, rep.Reason = Migrated, reason
			s, err = attach[T](opts, nil)
		}
	case err == nil:
	case errors.Is(err, shmpool.ErrLayout):
		old := errors.Is(err, errOldAux)
		if err = migrate[T](opts, rep); err == nil {
			rep.How = Migrated
			if old && rep.Diff == "" {
				rep.Reason = errOldAux.Error()
			}
			s, err = attach[T](opts, nil)
		}
	case errors.Is(err, os.ErrNotExist):
		var snap bool
		if snap, err = restore[T](opts, rep); err == nil && !snap {
			err = create[T](opts, rep)
		}
		if err == nil {
			s, err = attach[T](opts, nil)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	rep.Timers, rep.TimerSlots = s.PendingTimers()
	rep.TimersDropped += s.timersDropped
	rep.Path = s.pool.Info().Path
	rep.Players = s.Len()
	rep.Capacity = s.pool.Cap()
	rep.SegmentBytes = s.pool.Info().SegmentSize
	rep.Duration = time.Since(start)
	s.log.Info("state: open", "how", rep.How.String(), "reason", rep.Reason, "path", rep.Path,
		"players", rep.Players, "capacity", rep.Capacity, "timers", rep.Timers, "timers_dropped", rep.TimersDropped,
		"duration", rep.Duration, "snapshot_every", opts.SnapshotEvery)
	s.startSnapshots()
	s.startScrub()
	return s, rep, nil
}

// attach opens an existing segment of T and makes a Store of it, running
// recovery when the previous owner did not close it. rep (if not nil)
// gets How, Reason and Recovery.
func attach[T any](opts Options, rep *OpenReport) (*Store[T], error) {
	p, err := shmpool.Open[record[T]](opts.Name, shmpool.Options{Dir: opts.ShmDir, AttachOnly: true})
	if err != nil {
		return nil, err
	}
	s, err := bind(p, opts)
	if err != nil {
		p.Close()
		return nil, err
	}
	info := p.Info()
	busy := s.activeJournals()
	crashed := info.How == shmpool.AttachedAfterCrash || busy > 0
	// The index header is checked on every attach; the table itself and the
	// records are checked by the background scrub once serving has started.
	untrusted := checkIndexHeader(s.aux, s.geom)
	if rep != nil {
		rep.How, rep.Reason = Attached, fmt.Sprintf("segment closed cleanly (attach #%d)", info.AttachCount)
	}
	if crashed || untrusted != nil {
		rr := s.recover(untrusted)
		if rep != nil {
			rep.How, rep.Recovery = Recovered, &rr
			switch {
			case info.How == shmpool.AttachedAfterCrash:
				rep.Reason = fmt.Sprintf("previous owner pid %d did not close the segment", info.PrevOwnerPID)
			case busy > 0:
				rep.Reason = fmt.Sprintf("segment marked clean but %d journal entries were active", busy)
			default:
				rep.Reason = "segment closed cleanly, but its index cannot be trusted"
			}
		}
	}
	s.initLocks()
	s.initTimers()
	return s, nil
}

// bind makes a Store around an open pool whose aux region holds a state
// aux header.
func bind[T any](p *shmpool.Pool[record[T]], opts Options) (*Store[T], error) {
	var zero record[T]
	s := &Store[T]{opts: opts, log: opts.Logger, pool: p, aux: p.Aux(), recSize: unsafe.Sizeof(zero)}
	g, err := decodeAux(s.aux, int(s.recSize), p.Cap())
	if err != nil {
		return nil, fmt.Errorf("%w (segment %s)", err, p.Info().Path)
	}
	if g.version != auxVersion { // readable, so migrate converts it
		return nil, fmt.Errorf("%w: %w (segment %s)", shmpool.ErrLayout, errOldAux, p.Info().Path)
	}
	s.geom = g
	if s.txj, err = bindTxJournal[T](s.aux, g); err != nil {
		return nil, err
	}
	s.txPool.New = func() any { return new(Tx[T]) }
	s.timers = bindTimers(s.aux, g)
	vl, err := shmpool.Describe(reflect.TypeFor[T]())
	if err != nil {
		return nil, err
	}
	s.layout = vl
	s.lanes = make([]lane[T], g.lanes)
	for i := range s.lanes {
		s.lanes[i].active, s.lanes[i].undo = laneEntry[T](s.aux, g, i)
		s.lanes[i].cur.Store(&laneHold[T]{})
	}
	s.locks = make([]slotGen, p.Cap())
	s.idx.tab = indexTable(s.aux, g)
	s.idx.hdr = indexHeaderBytes(s.aux, g)
	s.idx.idOf = s.idOf
	return s, nil
}

// initLocks marks free slots dead so readers never copy them.
func (s *Store[T]) initLocks() {
	for i := range s.locks {
		if _, _, live := s.pool.Lookup(i); !live {
			s.locks[i].kill()
		}
	}
}

func (s *Store[T]) idOf(slot uint32) (uint64, bool) {
	_, r, ok := s.pool.Lookup(int(slot))
	if !ok {
		return 0, false
	}
	return atomic.LoadUint64(&r.ID), true
}

func (s *Store[T]) lane(id uint64) *lane[T] {
	// The low bits of the mixed id pick the lane; the index uses the high
	// bits, so players of one lane still spread over the table.
	return &s.lanes[mix(id)&uint64(len(s.lanes)-1)]
}

// Ensure creates player id (all fields zero) unless it exists: the
// create-on-first-login step. created says which. A created player
// survives kill -9 once Ensure returns.
func (s *Store[T]) Ensure(id uint64) (created bool, err error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	ln := s.lane(id)
	hold := ln.lock()
	defer hold.mu.Unlock()
	if _, _, _, ok := s.find(id); ok {
		return false, nil
	}
	if err := s.createLocked(ln, id, nil); err != nil {
		return false, err
	}
	return true, nil
}

// createLocked makes player id with value v (nil: all fields zero); the
// caller holds id's lane and knows id is missing. The journal says "this
// slot is being created" from before the slot is in use: a crash before
// the journal goes idle frees it again, so a half-made player never
// appears. The slot is dead until the index points at it.
func (s *Store[T]) createLocked(ln *lane[T], id uint64, v *T) error {
	h, rec, err := s.allocCreating(ln.active)
	if err != nil {
		return fmt.Errorf("state: create player %d: %w", id, err)
	}
	slot := uint32(h.Index())
	atomic.StoreUint64(&rec.ID, id)
	rec.Seq = 0
	if v != nil {
		rec.Val = *v
	}
	rec.Sum = recordSum(recordBytes(rec))
	if err := s.idx.insert(id, slot); err != nil {
		s.freeJournaled(ln.active, h)
		return err
	}
	s.locks[slot].revive()
	atomic.StoreUint64(ln.active, 0)
	return nil
}

// Update runs fn on a private copy of player id's committed value and, if
// fn returns nil, commits the copy crash-atomically before returning: once
// Update returns nil the change survives kill -9. If fn returns an error
// the player is unchanged and that error is returned; if fn panics the
// player is unchanged and the error is a *PanicError (wrapping ErrPanic).
// A missing player gives ErrNotFound.
//
// fn must not keep v after it returns, and must not call the Store (it
// runs holding the player's lane).
func (s *Store[T]) Update(id uint64, fn func(v *T) error) error {
	return s.runOne(id, nil, fn, true)
}

// commit writes scratch's value into rec, with rec's Sum carried over to
// the new value (carriedSum): a record damaged in shared memory stays
// detectably damaged through the commit. On amd64 with AVX-512,
// commitRecord makes commitWith's stores in commitWith's order in one
// pass (recsum_amd64.s); elsewhere commitWith does.
func (s *Store[T]) commit(ln *lane[T], scratch *record[T], slot uint32, rec *record[T]) {
	scratch.ID = rec.ID // the same id (the caller found rec by it); carriedSum's condition
	if !commitRecord(recordBytes(rec), recordBytes(scratch), recordBytes(ln.undo), ln.active, journalUpdate<<32|uint64(slot)) {
		s.commitWith(ln, scratch, slot, rec, false)
	}
}

// commitSealed is commit with a Sum computed afresh from scratch, for the
// writes meant to make a record whole whatever it held (a repair), which
// carrying would keep damaged.
func (s *Store[T]) commitSealed(ln *lane[T], scratch *record[T], slot uint32, rec *record[T]) {
	s.commitWith(ln, scratch, slot, rec, true)
}

// updateSealed is Update committing with commitSealed, without Update's
// recover (fn must not panic): for the scrub, whose repair of a record it
// found damaged must leave the record whole, which a carried Sum would not.
func (s *Store[T]) updateSealed(id uint64, fn func(v *T) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	ln := s.lane(id)
	h := ln.lock()
	defer h.mu.Unlock()
	slot, _, rec, err := s.lookupLocked(id)
	if err != nil {
		return err
	}
	h.scratch.ID = id
	h.scratch.Val = rec.Val
	if err := fn(&h.scratch.Val); err != nil {
		return err
	}
	s.commitSealed(ln, &h.scratch, slot, rec)
	return nil
}

// commitWith makes scratch (every byte after the header) rec's, with a
// Sum carried over from rec, or sealed afresh from scratch. The order is
// the whole crash-safety argument: (1) save the old record in the lane's
// undo slot, (2) publish the journal entry, (3) write the record, (4)
// retire the entry. A crash before (2) leaves the old record untouched;
// between (2) and (4) recovery copies the saved record back; after (4) the
// new record is whole. Inside (3), Seq is odd while the bytes change, so
// readers retry instead of copying half a commit (lock.go). A killed
// process leaves a prefix of its stores in shared memory, never a
// reordering of them; order_amd64.go says why plain stores keep that
// order, and why they are not atomics.
//
// The Sum is computed after (1): computing it stores nothing, so the order
// is the same, and the undo copy's stores retire without waiting for it.
//
// The lane mutex is the only lock a commit takes: each slot has one
// writer (its player's lane), and readers take nothing.
func (s *Store[T]) commitWith(ln *lane[T], scratch *record[T], slot uint32, rec *record[T], seal bool) {
	*ln.undo = *rec
	var sum uint32
	if seal {
		sum = recordSum(recordBytes(scratch))
	} else {
		sum = carriedSum(rec, scratch)
	}
	journalStore(ln.active, journalUpdate<<32|uint64(slot))
	q := seqBegin(&rec.Seq)
	// Bytes, not rec.Val = scratch.Val: the compiler may copy a small T
	// field by field and skip its padding, and sum covers every byte.
	copy(recordBytes(rec)[recHeader:], recordBytes(scratch)[recHeader:])
	rec.Sum = sum
	seqEnd(&rec.Seq, q)
	journalStore(ln.active, 0)
}

// Get returns a copy of player id's committed value: never half of an
// update. It waits only for a writer of the same player, and only while
// that writer copies bytes.
func (s *Store[T]) Get(id uint64) (T, error) {
	if s.closed.Load() {
		var v T
		return v, ErrClosed
	}
	var r record[T]
	if !s.readID(id, &r) {
		return r.Val, fmt.Errorf("%w: player %d", ErrNotFound, id)
	}
	return r.Val, nil
}

// readID copies id's committed record into out. It fails if the player
// does not exist, or stopped existing between the index lookup and the
// copy (then the slot is dead, or already holds another id).
func (s *Store[T]) readID(id uint64, out *record[T]) bool {
	slot, _, _, ok := s.find(id)
	return ok && s.read(int(slot), out) && out.ID == id
}

// read copies the committed record in slot into out, if the slot holds a
// player: a sequence-lock read (lock.go). The copy may race with a commit
// or with shmpool reusing the slot; it is kept only if neither the record's
// Seq nor the slot's generation moved while it was taken. (The race
// detector does not see the segment's bytes, which are outside Go's heap;
// the words that order them are checked above.)
func (s *Store[T]) read(slot int, out *record[T]) bool {
	_, rec, ok := s.pool.Lookup(slot)
	if !ok {
		return false
	}
	g := &s.locks[slot]
	for spin := 0; ; spin++ {
		gen, live := g.load()
		if !live {
			return false
		}
		if q := atomic.LoadUint32(&rec.Seq); q&1 == 0 {
			*out = *rec
			if seqRecheck(&rec.Seq) == q && g.w.Load() == gen {
				return true
			}
		}
		backoff(spin)
	}
}

// find looks player id up in the index: its slot, handle and record.
func (s *Store[T]) find(id uint64) (uint32, shmpool.Handle, *record[T], bool) {
	return findMixed(&s.idx, s.pool, id, mix(id))
}

// lookupLocked finds player id's slot; the caller holds id's lane.
func (s *Store[T]) lookupLocked(id uint64) (uint32, shmpool.Handle, *record[T], error) {
	slot, h, rec, ok := s.find(id)
	if !ok {
		return 0, 0, nil, fmt.Errorf("%w: player %d", ErrNotFound, id)
	}
	return slot, h, rec, nil
}

// Delete removes player id and its pending timers. A Delete cut short by
// a crash either happened or did not; it never leaves half a player.
func (s *Store[T]) Delete(id uint64) error {
	if s.closed.Load() {
		return ErrClosed
	}
	ln := s.lane(id)
	hold := ln.lock()
	defer hold.mu.Unlock()
	slot, h, _, err := s.lookupLocked(id)
	if err != nil {
		return err
	}
	// Dead first, so that a reader copying the slot while shmpool clears
	// or reuses it throws its copy away; then out of the index; then free.
	// The journal names the delete from before the index changes until the
	// slot is free: a crash in between makes recovery finish it.
	s.locks[slot].kill()
	beginDelete(ln.active, slot)
	s.idx.remove(id, slot)
	if err := s.freeJournaled(ln.active, h); err != nil {
		return fmt.Errorf("state: delete player %d: %w", id, err)
	}
	s.timers.dropPlayer(id) // after the player: a crash between leaves timers Open drops
	return nil
}

// Len is the number of players.
func (s *Store[T]) Len() int {
	if s.closed.Load() {
		return 0
	}
	return s.pool.Len()
}

// Cap is the most players the segment holds.
func (s *Store[T]) Cap() int { return s.pool.Cap() }

// Each calls fn with a consistent copy of every player's value, in slot
// order, until fn returns false. v is reused: fn must not keep it. Players
// created or deleted while Each runs may or may not be seen.
func (s *Store[T]) Each(fn func(id uint64, v *T) bool) {
	if s.closed.Load() {
		return
	}
	var r record[T]
	for i := range s.locks {
		if !s.read(i, &r) {
			continue
		}
		if !fn(r.ID, &r.Val) {
			return
		}
	}
}

// Describe returns player id's value decoded through the stored layout:
// field names to values (structs as maps, arrays as slices), for the
// admin API. A [N]byte (or [N]uint8) field that holds printable UTF-8
// text, NUL-padded, is a string ("Ada", not 24 numbers); other byte
// arrays stay numbers. It never sees half an update.
func (s *Store[T]) Describe(id uint64) (map[string]any, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	var r record[T]
	if !s.readID(id, &r) {
		return nil, fmt.Errorf("%w: player %d", ErrNotFound, id)
	}
	b := recordBytes(&r)[recHeader : recHeader+unsafe.Sizeof(r.Val)]
	v := decodeValue(&s.layout.Type, b, 0, true)
	m, ok := v.(map[string]any)
	if !ok { // T is not a struct: still give the admin API a map
		m = map[string]any{"value": v}
	}
	return m, nil
}

// Layout is the stored layout of T; its Fingerprint is the key a later
// build registers a MigrateFunc under.
func (s *Store[T]) Layout() *shmpool.Layout { return s.layout }

// Path is the segment file.
func (s *Store[T]) Path() string { return s.pool.Info().Path }

// Close stops periodic snapshots, waits for running transactions, marks
// the segment cleanly shut down and releases it. Call it only once no
// goroutine reads from the store any more.
func (s *Store[T]) Close() error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.stopScrub()
	if s.stop != nil {
		close(s.stop)
		<-s.done
	}
	return s.closeSegment()
}

// closeSegment takes every lane (so no commit is half done), then closes
// the pool, which marks the segment clean.
func (s *Store[T]) closeSegment() error {
	if s.closed.Swap(true) {
		return ErrClosed
	}
	for i := range s.lanes {
		s.lanes[i].lock() // held for good: the segment is going away
	}
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	if err := s.pool.Close(); err != nil {
		return fmt.Errorf("state: close: %w", err)
	}
	return nil
}

// activeJournals counts the journal entries (lanes' and the transaction
// journal's) that are not idle.
func (s *Store[T]) activeJournals() int {
	n := 0
	for i := range s.lanes {
		if atomic.LoadUint64(s.lanes[i].active) != 0 {
			n++
		}
	}
	if atomic.LoadUint64(&s.txj.word) != 0 {
		n++
	}
	return n
}
