package shmpool

import "errors"

// Sentinel errors. Every error returned by Open wraps at most one of these,
// with the detail (file name, expected and found values) in its message, so
// callers can branch with errors.Is and operators can read the cause.
var (
	// ErrTooSmall means the segment file is shorter than its header says
	// (or than a header at all): it was truncated or never fully created.
	ErrTooSmall = errors.New("shmpool: segment too small")

	// ErrMagic means the file does not start with the shmpool magic: it is
	// not a pool segment, or its first bytes were overwritten.
	ErrMagic = errors.New("shmpool: bad magic")

	// ErrChecksum means the header's checksum does not match its contents.
	ErrChecksum = errors.New("shmpool: header checksum mismatch")

	// ErrVersion means the segment was written by an unknown header version.
	ErrVersion = errors.New("shmpool: unsupported header version")

	// ErrLayout means the segment holds a different layout of T (fields
	// added, removed, reordered or retyped, or another architecture). The
	// state package migrates such segments; shmpool only refuses them.
	ErrLayout = errors.New("shmpool: layout mismatch")

	// ErrCorrupt means a header field or slot state holds a value that no
	// valid segment can hold (sizes that do not add up, a bad state word).
	ErrCorrupt = errors.New("shmpool: segment corrupt")

	// ErrLocked means another process (or another Pool in this process)
	// owns the segment. The message names the owner's pid when known.
	ErrLocked = errors.New("shmpool: segment owned by another process")

	// ErrPointer means T holds a Go pointer, string, slice, map, interface,
	// chan or func somewhere inside: such values dangle once stored in
	// memory the garbage collector does not scan.
	ErrPointer = errors.New("shmpool: type holds pointers")

	// ErrFull means every slot is in use.
	ErrFull = errors.New("shmpool: pool full")

	// ErrStaleHandle means the handle's slot was freed (and maybe reused)
	// since the handle was issued, or the handle was never valid.
	ErrStaleHandle = errors.New("shmpool: stale handle")

	// ErrClosed means the pool was closed.
	ErrClosed = errors.New("shmpool: pool closed")

	// ErrNoSpace means the file system holding the segment cannot hold it
	// (a full or too small tmpfs). It is reported at Open, never as a
	// SIGBUS later.
	ErrNoSpace = errors.New("shmpool: no space for segment")
)
