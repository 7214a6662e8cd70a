package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/hothost/hothost/shmpool"
)

// build makes a complete segment for opts.Name under a temporary name,
// lets fill put the players in, verifies the result, closes it cleanly and
// only then renames it over opts.Name. Creating, migrating and restoring
// all go through here, so kill -9 at any instant leaves either the old
// state of opts.Name (missing, or the old segment) or the finished new
// one, never a half-built segment under the real name.
func build[T any](opts Options, capacity, timers int, fill func(b *Store[T]) error) (err error) {
	tmp := "." + opts.Name + ".building"
	if err := shmpool.Remove(opts.ShmDir, tmp); err != nil { // left by a killed build
		return err
	}
	var zero record[T]
	g := planAux(auxVersion, opts.Lanes, int(unsafe.Sizeof(zero)), capacity, timers)
	p, err := shmpool.Open[record[T]](tmp, shmpool.Options{Dir: opts.ShmDir, Capacity: capacity, AuxSize: g.size})
	if err != nil {
		return err
	}
	tmpPath := p.Info().Path
	defer func() {
		if err != nil {
			p.Close()
			os.Remove(tmpPath)
		}
	}()
	encodeAux(p.Aux(), g)
	b, err := bind(p, opts)
	if err != nil {
		return err
	}
	b.initLocks()
	if err := fill(b); err != nil {
		return err
	}
	if err := b.verify(); err != nil {
		return err
	}
	if err := p.Close(); err != nil {
		return err
	}
	final := filepath.Join(filepath.Dir(tmpPath), opts.Name)
	if err := os.Rename(tmpPath, final); err != nil {
		return fmt.Errorf("state: switch to the new segment: %w", err)
	}
	return nil
}

// verify checks a built segment before it replaces anything: every live
// record passes its check and the index finds it, and the index holds
// nothing else.
func (s *Store[T]) verify() error {
	n := 0
	for i := range s.pool.Cap() {
		_, rec, live := s.pool.Lookup(i)
		if !live {
			continue
		}
		n++
		if err := checkRecord(recordBytes(rec), false); err != nil {
			return fmt.Errorf("%w: built record in slot %d: %v", ErrCorrupt, i, err)
		}
		if slot, _, _, ok := s.find(rec.ID); !ok || slot != uint32(i) {
			return fmt.Errorf("%w: built index does not find player %d in slot %d", ErrCorrupt, rec.ID, i)
		}
	}
	if c := s.idx.count(); c != n {
		return fmt.Errorf("%w: built index has %d entries for %d players", ErrCorrupt, c, n)
	}
	return nil
}

// putConverted adds one stored record (checked by the caller), converted
// by p, to a segment being built.
func (s *Store[T]) putConverted(stored []byte, p *plan) error {
	id := ne.Uint64(stored[8:])
	if _, _, _, dup := s.find(id); dup {
		return fmt.Errorf("%w: player %d appears twice", ErrCorrupt, id)
	}
	h, rec, err := s.pool.Alloc()
	if err != nil {
		return err
	}
	rec.ID = id
	val := recordBytes(rec)[recHeader : recHeader+unsafe.Sizeof(rec.Val)]
	if p.same {
		copy(val, stored[recHeader:])
	} else if err := p.convert(stored, val, &rec.Val); err != nil {
		return fmt.Errorf("state: convert player %d: %w", id, err)
	}
	rec.Sum = recordSum(recordBytes(rec))
	if err := s.idx.insert(id, uint32(h.Index())); err != nil {
		return err
	}
	s.locks[h.Index()].revive()
	return nil
}

// create builds an empty segment.
func create[T any](opts Options, rep *OpenReport) error {
	if opts.Capacity == 0 {
		return fmt.Errorf("state: no segment %s and Options.Capacity is 0: %w", opts.Name, os.ErrNotExist)
	}
	rep.How = Created
	if rep.Reason == "" {
		rep.Reason = "no segment and no snapshot directory configured"
	}
	return build[T](opts, opts.Capacity, timerSlots(opts, opts.Capacity, 0), func(*Store[T]) error { return nil })
}

// restore loads the newest valid snapshot into a new segment. It reports
// false (and no error) when there is none; corrupt snapshots are skipped
// and named in rep.Skipped. A snapshot of an incompatible layout stops
// Open: starting empty beside it would let pruning delete the only copy.
func restore[T any](opts Options, rep *OpenReport) (bool, error) {
	if opts.SnapshotDir == "" {
		return false, nil
	}
	paths, err := listSnapshots(opts.SnapshotDir, opts.Name)
	if err != nil {
		return false, err
	}
	for _, path := range paths {
		info, err := restoreFile[T](opts, path)
		if errors.Is(err, ErrIncompatible) {
			return false, err
		}
		if err != nil {
			opts.Logger.Warn("state: skipping snapshot", "path", path, "cause", err)
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s: %v", path, err))
			continue
		}
		rep.How, rep.Snapshot, rep.SnapshotAge = Restored, path, info.Age
		rep.Reason = "no segment (reboot, or removed); restored the newest valid snapshot"
		rep.Diff = info.diff
		return true, nil
	}
	rep.Reason = fmt.Sprintf("no segment and no valid snapshot in %s (%d skipped)", opts.SnapshotDir, len(rep.Skipped))
	return false, nil
}
