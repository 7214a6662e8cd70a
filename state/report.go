package state

import (
	"fmt"
	"strings"
	"time"
)

// How says what Open did to get a usable store.
type How int

const (
	// Attached: the segment was closed cleanly and is used as it is.
	Attached How = iota
	// Recovered: the previous owner died (kill -9, crash); its journal
	// was applied before use (the index and the records are then checked
	// by the background scrub), or the index could not be trusted and was
	// rebuilt from every record (RecoveryReport.IndexRebuilt says why).
	Recovered
	// Migrated: the segment held another layout of T (or was too small);
	// its records were converted by field name into a new segment.
	Migrated
	// Restored: there was no segment (a reboot); the newest valid
	// snapshot was loaded.
	Restored
	// Created: neither a segment nor a valid snapshot; the store is empty.
	Created
)

func (h How) String() string {
	switch h {
	case Attached:
		return "attached"
	case Recovered:
		return "recovered"
	case Migrated:
		return "migrated"
	case Restored:
		return "restored"
	case Created:
		return "created"
	}
	return fmt.Sprintf("How(%d)", int(h))
}

// OpenReport says what Open did and why, with the figures an operator
// needs to trust it.
type OpenReport struct {
	How    How
	Reason string // why, in words: "previous owner pid 812 died without closing"
	Path   string // the segment file

	Players    int
	Capacity   int
	Timers     int // pending
	TimerSlots int // the most that can be pending (Options.Timers)
	// TimersDropped counts pending timers found unable to fire and
	// removed (each logged): a body failing its check, or a player that
	// no longer exists (a Delete cut short between the player and its
	// timers).
	TimersDropped int
	SegmentBytes  int           // size of the segment file
	Duration      time.Duration // the whole Open

	// Recovery is set when Open recovered the segment (How == Recovered),
	// and when it migrated a segment whose owner had died.
	Recovery *RecoveryReport
	// Diff is the layout diff when the stored layout differed from T.
	Diff string
	// Snapshot is the file restored from (Restored only).
	Snapshot string
	// SnapshotAge is how old that snapshot was: what the reboot lost.
	SnapshotAge time.Duration
	// Skipped lists snapshots that were not used, each with its cause.
	Skipped []string
	// SnapshotEvery is Options.SnapshotEvery: the most a reboot can lose
	// (0: no periodic snapshots).
	SnapshotEvery time.Duration
}

// String is a one-line summary for the log.
func (r *OpenReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "state %s %s: %s; %d players (capacity %d) in %v", r.How, r.Path, r.Reason, r.Players, r.Capacity, r.Duration.Round(time.Microsecond))
	if r.Recovery != nil {
		fmt.Fprintf(&b, "; %s", r.Recovery)
	}
	fmt.Fprintf(&b, "; %d timers pending (of %d)", r.Timers, r.TimerSlots)
	if r.TimersDropped > 0 {
		fmt.Fprintf(&b, ", %d dropped", r.TimersDropped)
	}
	if r.Snapshot != "" {
		fmt.Fprintf(&b, "; from snapshot %s (%v old)", r.Snapshot, r.SnapshotAge.Round(time.Second))
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, "; %d snapshots skipped", len(r.Skipped))
	}
	if r.SnapshotEvery > 0 {
		fmt.Fprintf(&b, "; snapshots every %v (the most a reboot can lose)", r.SnapshotEvery)
	} else {
		b.WriteString("; no periodic snapshots (a reboot loses everything since the last Snapshot call)")
	}
	return b.String()
}

// RecoveryReport counts what recovery did after an unclean shutdown.
//
// The fast path applies the lanes' journals and repairs the index where
// they point, and checks no record (Checked is 0): the background scrub
// does that once serving has started (Store.Scrub). The slow path, taken
// when the index cannot be trusted (IndexRebuilt says why), checks every
// record and rebuilds the index from them, as a migration would.
type RecoveryReport struct {
	Repaired int // journal entries applied: updates rolled back, creates removed, deletes finished
	// IndexRebuilt is why the index was rebuilt from the records ("" when
	// it was trusted): its header failed its check, a rebuild was cut
	// short, or a journal entry held what no store writes.
	IndexRebuilt string
	Checked      int      // live records whose checksum was verified (slow path only)
	Lost         int      // records that failed their check with nothing to restore (goal: 0)
	LostIDs      []uint64 // the first ids lost, for the operator
	Duration     time.Duration
}

// String keeps the form "recovery checked C, repaired R, lost L in D"
// that log scrapers (the chaos run) read, then says which path it took.
func (r *RecoveryReport) String() string {
	s := fmt.Sprintf("recovery checked %d, repaired %d, lost %d in %v", r.Checked, r.Repaired, r.Lost, r.Duration.Round(time.Microsecond))
	if r.IndexRebuilt == "" {
		return s + " (journal applied, index trusted; records are checked by the background scrub)"
	}
	return s + " (index rebuilt from every record: " + r.IndexRebuilt + ")"
}
