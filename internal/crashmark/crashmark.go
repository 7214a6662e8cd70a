// Package crashmark records, in a small shared-memory file beside the
// state segment, which plugin version and message each lane is running at
// this instant, so that the next process can name what was running when
// this one died. kill -9, os.Exit and Go's fatal errors run no deferred
// code: only what was written before the call survives them.
//
// A Board has one fixed-size mark per lane. Set publishes a mark with its
// active word written last, and Clear retires it; a process that dies
// leaves a prefix of its stores in the mapping (x86-64 keeps plain stores
// in order, as the state package relies on too), so a mark whose active
// word is set is whole. Marks are advice for crash attribution, never
// state: a file that does not validate is replaced, and Open says why.
//
// crashmark must never block or fail a request: Set and Clear are plain
// stores into the mapping, with no lock and no system call.
package crashmark

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	magic      = "HHMARK\x00\x01"
	headerSize = 64
	slotSize   = 128
	fieldLen   = 32 // each name: a length byte and up to 31 bytes
)

// ErrInvalid means a marks file left by an earlier process does not
// validate (size, magic or lane count); Open replaced it and returns no marks.
var ErrInvalid = errors.New("crashmark: marks file invalid")

// Mark is what one lane was running.
type Mark struct {
	Lane                 int
	Player               uint64
	Started              time.Time
	Module, Version, Msg string
}

func (m Mark) String() string {
	return fmt.Sprintf("%s %s %s for player %d (lane %d, started %s)", m.Module, m.Version, m.Msg, m.Player, m.Lane,
		m.Started.Format(time.RFC3339Nano))
}

// slot is one lane's mark in the mapping.
type slot struct {
	active  uint64
	player  uint64
	started int64
	module  [fieldLen]byte
	version [fieldLen]byte
	msg     [fieldLen]byte
	_       [slotSize - 24 - 3*fieldLen]byte
}

// Board is the marks of one process's lanes.
type Board struct {
	path  string
	mem   []byte
	slots []slot
}

// Open maps the marks file at path for lanes lanes, creating it (mode 0600)
// if needed, and returns the marks an earlier process left active: what it
// was running when it died. A file that does not validate is replaced;
// the returned error then wraps ErrInvalid and the Board is still usable.
func Open(path string, lanes int) (*Board, []Mark, error) {
	if lanes <= 0 {
		return nil, nil, fmt.Errorf("crashmark: %d lanes", lanes)
	}
	size := headerSize + lanes*slotSize
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("crashmark: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("crashmark: %w", err)
	}
	fresh := st.Size() == 0
	var invalid error
	if !fresh && st.Size() != int64(size) {
		invalid = fmt.Errorf("%w: %s has %d bytes, want %d for %d lanes", ErrInvalid, filepath.Base(path), st.Size(), size, lanes)
		fresh = true
	}
	if fresh {
		if err := f.Truncate(0); err != nil {
			return nil, nil, fmt.Errorf("crashmark: %w", err)
		}
		if err := f.Truncate(int64(size)); err != nil {
			return nil, nil, fmt.Errorf("crashmark: %w", err)
		}
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("crashmark: map %s: %w", path, err)
	}
	b := &Board{path: path, mem: mem, slots: unsafe.Slice((*slot)(unsafe.Pointer(&mem[headerSize])), lanes)}
	le := binary.LittleEndian
	if !fresh && (string(mem[:8]) != magic || le.Uint32(mem[8:]) != uint32(lanes) || le.Uint32(mem[12:]) != slotSize) {
		invalid = fmt.Errorf("%w: %s has magic %q, %d lanes, %d-byte marks (want %q, %d, %d)", ErrInvalid, filepath.Base(path),
			mem[:8], le.Uint32(mem[8:]), le.Uint32(mem[12:]), magic, lanes, slotSize)
		fresh = true
		clear(mem)
	}
	var left []Mark
	if !fresh {
		for i := range b.slots {
			if m, ok := b.read(i); ok {
				left = append(left, m)
			}
			b.Clear(i)
		}
	}
	copy(mem, magic)
	le.PutUint32(mem[8:], uint32(lanes))
	le.PutUint32(mem[12:], slotSize)
	return b, left, invalid
}

func (b *Board) read(i int) (Mark, bool) {
	s := &b.slots[i]
	if atomic.LoadUint64(&s.active) != 1 {
		return Mark{}, false
	}
	return Mark{Lane: i, Player: s.player, Started: time.Unix(0, s.started), Module: field(&s.module),
		Version: field(&s.version), Msg: field(&s.msg)}, true
}

// Set marks lane as running msg of module version for player since
// started (Unix nanoseconds). The caller owns the lane.
func (b *Board) Set(lane int, player uint64, started int64, module, version, msg string) {
	s := &b.slots[lane]
	s.player, s.started = player, started
	put(&s.module, module)
	put(&s.version, version)
	put(&s.msg, msg)
	atomic.StoreUint64(&s.active, 1) // last, and a compiler barrier: a mark with active set is whole
}

// Clear retires lane's mark.
func (b *Board) Clear(lane int) { atomic.StoreUint64(&b.slots[lane].active, 0) }

// Active returns the marks set now, for status pages. A mark may change
// while it is read; it is advice, not state.
func (b *Board) Active() []Mark {
	var out []Mark
	for i := range b.slots {
		if m, ok := b.read(i); ok {
			out = append(out, m)
		}
	}
	return out
}

// Close clears every mark (a clean exit leaves none), unmaps the file and
// removes it.
func (b *Board) Close() error {
	clear(b.mem[headerSize:])
	err := unix.Munmap(b.mem)
	if rerr := os.Remove(b.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

func put(dst *[fieldLen]byte, s string) {
	n := copy(dst[1:], s)
	dst[0] = byte(n)
}

func field(src *[fieldLen]byte) string {
	n := min(int(src[0]), fieldLen-1)
	return string(src[1 : 1+n])
}
