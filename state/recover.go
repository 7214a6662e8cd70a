package state

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// maxLostIDs bounds RecoveryReport.LostIDs.
const maxLostIDs = 100

// recover makes a segment whose owner died consistent again, before anyone
// else uses it: roll back every active journal entry, check every live
// record, rebuild the index from the records.
func (s *Store[T]) recover() RecoveryReport {
	start := time.Now()
	var rr RecoveryReport
	for i := range s.lanes {
		ln := &s.lanes[i]
		w := atomic.LoadUint64(ln.active)
		if w == 0 {
			continue
		}
		kind, slot := w>>32, int(uint32(w))
		h, rec, live := s.pool.Lookup(slot)
		switch {
		case kind == journalUpdate && live:
			*rec = *ln.undo
			rr.Repaired++
			s.log.Info("state: recovery rolled back an unfinished update", "lane", i, "slot", slot, "player", rec.ID)
		case kind == journalCreate && live:
			s.pool.Free(h)
			rr.Repaired++
			s.log.Info("state: recovery removed a half-created player", "lane", i, "slot", slot)
		case kind == journalCreate: // alloc had not happened yet
		default:
			s.log.Error("state: recovery found an impossible journal entry", "lane", i, "word", w, "slot_live", live)
		}
		atomic.StoreUint64(ln.active, 0)
	}
	for i := range s.pool.Cap() {
		h, rec, live := s.pool.Lookup(i)
		if !live {
			continue
		}
		rr.Checked++
		if rec.Seq&1 == 0 && rec.Sum == recordSum(recordBytes(rec)) {
			continue
		}
		if allZero(recordBytes(rec)) {
			// Allocated by an Ensure killed before it published its
			// journal entry: never a player, nothing lost.
			s.pool.Free(h)
			rr.Repaired++
			continue
		}
		s.lose(&rr, "record fails its check", rec.ID, slog.Int("slot", i), slog.Any("seq", rec.Seq))
		s.pool.Free(h)
	}
	s.rebuildIndex(&rr)
	rr.Duration = time.Since(start)
	s.log.Info("state: recovery done", "checked", rr.Checked, "repaired", rr.Repaired, "lost", rr.Lost, "duration", rr.Duration)
	return rr
}

func (s *Store[T]) lose(rr *RecoveryReport, why string, id uint64, attrs ...any) {
	rr.Lost++
	if len(rr.LostIDs) < maxLostIDs {
		rr.LostIDs = append(rr.LostIDs, id)
	}
	s.log.Error("state: recovery lost a player: "+why, append([]any{"player", id}, attrs...)...)
}

// rebuildIndex refills the index from the live records. Two records with
// one id can only come from corruption: the first is kept.
func (s *Store[T]) rebuildIndex(rr *RecoveryReport) {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	s.idx.reset()
	for i := range s.pool.Cap() {
		h, rec, live := s.pool.Lookup(i)
		if !live {
			continue
		}
		if _, dup := s.idx.probe(rec.ID); dup {
			s.lose(rr, "duplicate id", rec.ID, slog.Int("slot", i))
			s.pool.Free(h)
			continue
		}
		if err := s.idx.insertLocked(rec.ID, uint32(i)); err != nil {
			s.lose(rr, err.Error(), rec.ID, slog.Int("slot", i))
			s.pool.Free(h)
		}
	}
}

// allZero reports whether b is all zero bytes. No written record is: its
// Sum is the CRC-32C of the bytes after it, and that of zeros is not zero.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
