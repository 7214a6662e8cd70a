package state

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap at most one of these
// (or a shmpool sentinel) with the detail in the message, so callers branch
// with errors.Is and operators read the cause.
var (
	// ErrNotFound means no player with that id exists in the store.
	ErrNotFound = errors.New("state: player not found")

	// ErrPanic means an Update callback panicked; the player is unchanged.
	// The returned error is a *PanicError carrying the value and stack.
	ErrPanic = errors.New("state: update callback panicked")

	// ErrIncompatible means the stored layout cannot be converted to the
	// current T by field name (a narrowed integer, an int that became a
	// float, a shortened array, a changed kind) and no MigrateFunc is
	// registered for the stored fingerprint. The message holds the diff.
	ErrIncompatible = errors.New("state: incompatible layout change")

	// ErrSnapshotCorrupt means a snapshot file is truncated, has a bad
	// magic, version, checksum or record, or describes an impossible
	// layout. Such a snapshot is never loaded, not even in part.
	ErrSnapshotCorrupt = errors.New("state: snapshot corrupt")

	// ErrNoSnapshot means a snapshot was asked for but none is valid.
	ErrNoSnapshot = errors.New("state: no valid snapshot")

	// ErrFenced means Store.Fence gave up on the transaction while its
	// callback ran: nothing was committed and the player is unchanged.
	ErrFenced = errors.New("state: transaction fenced by a watchdog")

	// ErrBadPlayers means a transaction was asked for no players, more
	// than MaxTxPlayers, or one player twice; nothing ran.
	ErrBadPlayers = errors.New("state: bad players for a transaction")

	// ErrTimerGone means a timer is not pending (any more): it fired, was
	// cancelled, or its player was deleted. Nothing ran.
	ErrTimerGone = errors.New("state: timer not pending")

	// ErrBadTimer means a timer's message is empty or too long
	// (MaxTimerMsg), or its args are (MaxTimerArgs).
	ErrBadTimer = errors.New("state: bad timer")

	// ErrTimersFull means no timer can be scheduled: the transaction
	// changes MaxTxTimers timers already, the player has MaxPlayerTimers
	// pending, or every timer slot of the segment is taken.
	ErrTimersFull = errors.New("state: too many timers")

	// ErrClosed means the store was closed.
	ErrClosed = errors.New("state: store closed")

	// ErrCorrupt means the segment's state structures (aux header,
	// journal, index) hold values no valid store writes.
	ErrCorrupt = errors.New("state: segment corrupt")
)

// PanicError is returned by Update when the callback panicked. It wraps
// ErrPanic; the player's committed value is unchanged.
type PanicError struct {
	ID    uint64 // the player whose update panicked
	Value any    // what the callback panicked with
	Stack []byte // the callback's goroutine stack at the panic
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("state: update of player %d panicked: %v", e.ID, e.Value)
}

// Unwrap makes errors.Is(err, ErrPanic) true, and exposes a panic value
// that is itself an error (panic(err)) to errors.Is/As.
func (e *PanicError) Unwrap() []error {
	if err, ok := e.Value.(error); ok {
		return []error{ErrPanic, err}
	}
	return []error{ErrPanic}
}
