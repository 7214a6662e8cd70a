package shmpool

import (
	"fmt"
	"time"
	"unsafe"
)

// Raw is a segment opened without knowing its T: the header, the stored
// Layout and the slots as bytes. The state package uses it to migrate a
// segment written by a build with another layout; it holds the owner lock
// like a Pool does, and never writes a slot.
type Raw struct {
	c      core
	layout *Layout
}

// OpenRaw attaches an existing segment, validating everything but the
// layout fingerprint (size, magic, checksum, version, geometry, the stored
// layout description), and holds its owner lock until Close.
func OpenRaw(name string, opts Options) (*Raw, error) {
	start := time.Now()
	opts.AttachOnly = true
	r := &Raw{}
	if err := r.c.open(name, opts, nil); err != nil {
		return nil, err
	}
	l, err := DecodeLayout(r.c.layoutBytes())
	if err == nil && l.Fingerprint() != r.c.g.fingerprint {
		err = fmt.Errorf("%w: stored layout does not match the header's fingerprint", ErrCorrupt)
	}
	if err == nil && l.Type.Size > r.c.g.slotSize {
		err = fmt.Errorf("%w: stored layout of %d bytes does not fit slots of %d", ErrCorrupt, l.Type.Size, r.c.g.slotSize)
	}
	if err != nil {
		r.c.closed.Store(true)
		r.c.seg.close()
		return nil, fmt.Errorf("%w (segment %s)", err, r.c.seg.path)
	}
	r.layout = l
	r.c.info.OpenDuration = time.Since(start)
	return r, nil
}

// Layout is the stored description of the segment's T.
func (r *Raw) Layout() *Layout { return r.layout }

// Info says where the segment is and how it was opened.
func (r *Raw) Info() Info { return r.c.info }

// Cap is the number of slots.
func (r *Raw) Cap() int { return int(r.c.g.capacity) }

// Slot returns the bytes of slot i's value (Layout().Type.Size of them) and
// whether the slot is in use.
func (r *Raw) Slot(i int) ([]byte, bool) {
	if i < 0 || uint64(i) >= r.c.g.capacity {
		return nil, false
	}
	b := unsafe.Slice((*byte)(r.c.slot(uint32(i))), r.layout.Type.Size)
	return b, r.c.states[i]&0xffffffff == slotUsed
}

// Aux is the segment's raw aux region.
func (r *Raw) Aux() []byte { return r.c.seg.mem[r.c.g.auxOff : r.c.g.auxOff+r.c.g.auxLen] }

// Close unmaps the segment and drops the lock. It marks the segment clean
// only if it was clean when opened: reading it does not vouch for it.
func (r *Raw) Close() error {
	if r.c.info.How != AttachedClean {
		r.c.closed.Store(true)
		r.c.mu.Lock()
		defer r.c.mu.Unlock()
		return r.c.seg.close()
	}
	return r.c.close()
}
