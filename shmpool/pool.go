package shmpool

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"iter"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Options say where a segment lives and how big a new one is.
type Options struct {
	// Dir holds the segment file; "" means DefaultDir (/dev/shm). Tests and
	// hosts with a dedicated tmpfs set it.
	Dir string
	// Capacity is the number of slots of a new segment. When attaching, 0
	// accepts the stored capacity; any other value must match it.
	Capacity int
	// AuxSize is the size of a raw byte region kept beside the slots for
	// the layer above (journals, indexes). When attaching, it must match
	// the stored size unless it is 0.
	AuxSize int
	// AttachOnly refuses to create a missing segment: Open then returns an
	// error wrapping os.ErrNotExist.
	AttachOnly bool
}

// How says how Open got its segment.
type How int

const (
	// Created: there was no segment; Open made an empty one.
	Created How = iota
	// AttachedClean: the previous owner closed the pool with Close.
	AttachedClean
	// AttachedAfterCrash: the previous owner died holding the segment
	// (kill -9, a crash, a power cut of the process). Slot states are
	// consistent; what the values mean is for the layer above to check.
	AttachedAfterCrash
)

func (h How) String() string {
	switch h {
	case Created:
		return "created"
	case AttachedClean:
		return "attached after clean shutdown"
	case AttachedAfterCrash:
		return "attached after crash"
	}
	return fmt.Sprintf("How(%d)", int(h))
}

// Info describes an open segment and how it was opened.
type Info struct {
	Path         string
	How          How
	PrevOwnerPID int    // the last owner's pid, 0 if created
	AttachCount  uint64 // opens of this segment so far, this one included
	CreatedAt    time.Time
	Capacity     int
	SlotSize     int // bytes per slot value, 8-byte aligned
	SegmentSize  int // bytes of the whole segment file
	Fingerprint  [32]byte
	OpenDuration time.Duration // open, lock, validate and rebuild
}

// Handle addresses one allocation: a slot index and the slot's generation at
// allocation time. A Handle outlives the process that made it (it can be
// stored anywhere) and is refused once its slot is freed.
type Handle uint64

// Index is the slot index the handle points at.
func (h Handle) Index() int { return int(uint32(h)) }

// Generation is the slot's generation when the handle was issued (never 0).
func (h Handle) Generation() uint32 { return uint32(h >> 32) }

func (h Handle) String() string { return fmt.Sprintf("%d@%d", h.Index(), h.Generation()) }

const (
	slotFree = 0
	slotUsed = 1
)

// core is the untyped part of a pool, shared by Pool[T] and Raw.
type core struct {
	seg    segment
	g      geometry
	info   Info
	states []uint64
	slots  unsafe.Pointer

	closed atomic.Bool
	mu     sync.Mutex // guards free and every state word write
	free   freeSet    // which slots are free, rebuilt on every attach
}

// Pool is a pool of T in one shared-memory segment. It is safe for
// concurrent use. Pointers returned by Get, Alloc and All point into the
// mapping: they stay valid until Close, and must not be used after it.
type Pool[T any] struct {
	c core
}

// Open creates or attaches the segment name in opts.Dir as a pool of T.
// Attaching validates the header in a fixed order (size, magic, checksum,
// version, layout) and returns an error wrapping ErrTooSmall, ErrMagic,
// ErrChecksum, ErrVersion, ErrLayout or ErrCorrupt on the first failure. A
// segment owned by a live process gives ErrLocked naming its pid.
func Open[T any](name string, opts Options) (*Pool[T], error) {
	start := time.Now()
	layout, err := Describe(reflect.TypeFor[T]())
	if err != nil {
		return nil, err
	}
	if layout.Type.Align > 8 {
		return nil, fmt.Errorf("shmpool: %s needs %d-byte alignment, slots give 8", layout.Type.Name, layout.Type.Align)
	}
	p := &Pool[T]{}
	if err := p.c.open(name, opts, layout); err != nil {
		return nil, err
	}
	p.c.info.OpenDuration = time.Since(start)
	return p, nil
}

func (c *core) open(name string, opts Options, layout *Layout) (err error) {
	path, err := segmentPath(opts.Dir, name)
	if err != nil {
		return err
	}
	if opts.Capacity < 0 || opts.AuxSize < 0 {
		return fmt.Errorf("shmpool: negative capacity %d or aux size %d", opts.Capacity, opts.AuxSize)
	}
	f, created, err := openFile(path, !opts.AttachOnly && layout != nil)
	if err != nil {
		return err
	}
	c.seg = segment{path: path, file: f}
	defer func() {
		if err != nil {
			c.seg.close()
			if created { // never leave a half-made segment behind
				os.Remove(path)
			}
		}
	}()
	if created {
		err = c.create(opts, layout)
	} else {
		err = c.attach(opts, layout)
	}
	if err != nil {
		return fmt.Errorf("%w (segment %s)", err, path)
	}
	c.info.Path = path
	c.info.Capacity = int(c.g.capacity)
	c.info.SlotSize = int(c.g.slotSize)
	c.info.SegmentSize = int(c.g.segmentSize)
	c.info.CreatedAt = time.Unix(0, c.g.created)
	c.info.Fingerprint = c.g.fingerprint
	c.claim()
	return nil
}

func (c *core) create(opts Options, layout *Layout) error {
	if opts.Capacity == 0 {
		return errors.New("shmpool: creating a segment needs Options.Capacity")
	}
	desc, err := jsonLayout(layout)
	if err != nil {
		return err
	}
	g, err := plan(layout.Type.Size, uint64(opts.Capacity), uint64(len(desc)), uint64(opts.AuxSize))
	if err != nil {
		return err
	}
	g.created = time.Now().UnixNano()
	g.fingerprint = layout.Fingerprint()
	g.layoutSum = crc32.Checksum(desc, castagnoli)
	if err := allocate(c.seg.file, g.segmentSize); err != nil {
		return err
	}
	if c.seg.mem, err = mapFile(c.seg.file, g.segmentSize); err != nil {
		return err
	}
	copy(c.seg.mem[g.layoutOff:], desc)
	// The header goes last: a creator killed before this line leaves a
	// file without magic, which the next Open refuses by name.
	encodeHeader(c.seg.mem, g)
	c.g = g
	c.info.How = Created
	c.bind()
	return c.rebuild()
}

func (c *core) attach(opts Options, layout *Layout) error {
	size, err := fileSize(c.seg.file)
	if err != nil {
		return err
	}
	var head [headerRegion]byte
	n, _ := c.seg.file.ReadAt(head[:], 0)
	g, err := decodeHeader(head[:n], size)
	if err != nil {
		return err
	}
	if layout != nil && g.fingerprint != layout.Fingerprint() {
		return fmt.Errorf("%w: segment fingerprint %x, %s has %x", ErrLayout, g.fingerprint[:6], layout.Type.Name, layout.Fingerprint())
	}
	if layout != nil && g.slotSize != alignUp(max(layout.Type.Size, 1), 8) {
		return fmt.Errorf("%w: slot size %d does not hold %s (%d bytes)", ErrCorrupt, g.slotSize, layout.Type.Name, layout.Type.Size)
	}
	if opts.Capacity != 0 && uint64(opts.Capacity) != g.capacity {
		return fmt.Errorf("%w: segment has %d slots, %d wanted", ErrLayout, g.capacity, opts.Capacity)
	}
	if opts.AuxSize != 0 && uint64(opts.AuxSize) != g.auxLen {
		return fmt.Errorf("%w: segment has %d aux bytes, %d wanted", ErrLayout, g.auxLen, opts.AuxSize)
	}
	if c.seg.mem, err = mapFile(c.seg.file, g.segmentSize); err != nil {
		return err
	}
	c.g = g
	if sum := crc32.Checksum(c.layoutBytes(), castagnoli); sum != g.layoutSum {
		return fmt.Errorf("%w: stored layout checksum %#08x, computed %#08x", ErrChecksum, g.layoutSum, sum)
	}
	c.info.How = AttachedAfterCrash
	if atomic.LoadUint64(c.word(offClean)) == 1 {
		c.info.How = AttachedClean
	}
	c.info.PrevOwnerPID = int(atomic.LoadUint64(c.word(offOwnerPID)))
	c.bind()
	// Fault the slot states in with one call rather than a page fault per
	// 4 KiB while rebuild reads them; on kernels without it, reading them
	// faults them in anyway.
	_ = unix.Madvise(c.seg.mem[g.statesOff:g.slotsOff], unix.MADV_POPULATE_READ)
	return c.rebuild()
}

func jsonLayout(l *Layout) ([]byte, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("shmpool: encode layout: %w", err)
	}
	return b, nil
}

func (c *core) word(off uint64) *uint64 { return (*uint64)(unsafe.Pointer(&c.seg.mem[off])) }

func (c *core) layoutBytes() []byte { return c.seg.mem[c.g.layoutOff : c.g.layoutOff+c.g.layoutLen] }

func (c *core) bind() {
	c.states = unsafe.Slice((*uint64)(unsafe.Pointer(&c.seg.mem[c.g.statesOff])), c.g.capacity)
	c.slots = unsafe.Pointer(&c.seg.mem[c.g.slotsOff])
}

// claim marks the segment as owned by this process. Each word is one
// atomic store: a kill -9 between them leaves each word valid on its own.
func (c *core) claim() {
	atomic.StoreUint64(c.word(offClean), 0)
	atomic.StoreUint64(c.word(offOwnerPID), uint64(os.Getpid()))
	c.info.AttachCount = atomic.AddUint64(c.word(offAttachCount), 1)
}

// rebuild derives the free set from the slot states. It runs before the
// pool is shared with any goroutine and under the owner lock, so it reads
// the states without atomics.
func (c *core) rebuild() error {
	c.free = newFreeSet(len(c.states))
	for i, w := range c.states {
		if w == slotFree|w&^0xffffffff {
			c.free.put(uint32(i))
		} else if w&0xffffffff != slotUsed {
			return fmt.Errorf("%w: slot %d has state word %#x", ErrCorrupt, i, w)
		}
	}
	return nil
}

func (c *core) slot(i uint32) unsafe.Pointer {
	return unsafe.Add(c.slots, uintptr(i)*uintptr(c.g.slotSize))
}

func (c *core) alloc(note func(slot int)) (Handle, error) {
	if c.closed.Load() {
		return 0, ErrClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.free.take()
	if !ok {
		return 0, fmt.Errorf("%w: all %d slots in use", ErrFull, c.g.capacity)
	}
	if note != nil {
		note(int(i))
	}
	gen := uint32(atomic.LoadUint64(&c.states[i])>>32) + 1
	if gen == 0 {
		gen = 1
	}
	clear(unsafe.Slice((*byte)(c.slot(i)), c.g.slotSize))
	atomic.StoreUint64(&c.states[i], uint64(gen)<<32|slotUsed)
	return Handle(uint64(gen)<<32 | uint64(i)), nil
}

func (c *core) live(h Handle) bool {
	i := uint32(h)
	return uint64(i) < c.g.capacity && atomic.LoadUint64(&c.states[i]) == uint64(h)&^0xffffffff|slotUsed
}

func (c *core) release(h Handle, note func()) error {
	if c.closed.Load() {
		return ErrClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live(h) {
		return fmt.Errorf("%w: %v", ErrStaleHandle, h)
	}
	i := uint32(h)
	atomic.StoreUint64(&c.states[i], uint64(h.Generation())<<32|slotFree)
	c.free.put(i)
	if note != nil {
		note()
	}
	return nil
}

func (c *core) close() error {
	if c.closed.Swap(true) {
		return ErrClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	atomic.StoreUint64(c.word(offClean), 1)
	return c.seg.close()
}

// Alloc takes a free slot, zeroes it and returns its handle and value.
func (p *Pool[T]) Alloc() (Handle, *T, error) { return p.AllocNoted(nil) }

// AllocNoted is Alloc that first tells note which slot it took: note runs
// under the pool's lock, before the slot is zeroed and marked in use. A
// layer above that journals its allocations records the slot there, so a
// process killed at any instant never leaves a slot in use that its
// journal does not name. note must be short and must not call the pool.
func (p *Pool[T]) AllocNoted(note func(slot int)) (Handle, *T, error) {
	h, err := p.c.alloc(note)
	if err != nil {
		return 0, nil, err
	}
	return h, (*T)(p.c.slot(uint32(h))), nil
}

// Get returns the value h points at, or ErrStaleHandle when h's slot was
// freed since h was issued. It takes no lock.
func (p *Pool[T]) Get(h Handle) (*T, error) {
	c := &p.c
	if i := uint32(h); int(i) < len(c.states) && atomic.LoadUint64(&c.states[i]) == uint64(h)&^0xffffffff|slotUsed && !c.closed.Load() {
		return (*T)(c.slot(i)), nil
	}
	return nil, c.getErr(h)
}

// getErr is out of line so that Get stays small enough to inline.
func (c *core) getErr(h Handle) error {
	if c.closed.Load() {
		return ErrClosed
	}
	return fmt.Errorf("%w: %v", ErrStaleHandle, h)
}

// Lookup returns the live handle and value at slot index i, if the slot is
// in use. Layers above that store bare slot indices use it.
func (p *Pool[T]) Lookup(i int) (Handle, *T, bool) {
	if p.c.closed.Load() || i < 0 || uint64(i) >= p.c.g.capacity {
		return 0, nil, false
	}
	w := atomic.LoadUint64(&p.c.states[i])
	if w&0xffffffff != slotUsed {
		return 0, nil, false
	}
	return Handle(w&^0xffffffff | uint64(i)), (*T)(p.c.slot(uint32(i))), true
}

// Free returns h's slot to the pool. Freeing a stale handle is an error
// wrapping ErrStaleHandle and changes nothing.
func (p *Pool[T]) Free(h Handle) error { return p.c.release(h, nil) }

// FreeNoted is Free that calls note under the pool's lock right after the
// slot is marked free, before any Alloc can take it again: a layer above
// retires the journal entry of a removal there, so an entry that survives
// a crash never names a slot that already belongs to someone else. note
// is not called when Free fails; it must be short and must not call the
// pool.
func (p *Pool[T]) FreeNoted(h Handle, note func()) error { return p.c.release(h, note) }

// All yields every live slot in index order. Slots allocated or freed while
// it runs may or may not be seen.
func (p *Pool[T]) All() iter.Seq2[Handle, *T] {
	return func(yield func(Handle, *T) bool) {
		for i := range p.c.states {
			if h, v, ok := p.Lookup(i); ok && !yield(h, v) {
				return
			}
		}
	}
}

// Len is the number of live slots.
func (p *Pool[T]) Len() int {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	return int(p.c.g.capacity) - p.c.free.n
}

// Cap is the number of slots.
func (p *Pool[T]) Cap() int { return int(p.c.g.capacity) }

// Aux is the raw region reserved with Options.AuxSize, inside the segment.
func (p *Pool[T]) Aux() []byte {
	return p.c.seg.mem[p.c.g.auxOff : p.c.g.auxOff+p.c.g.auxLen : p.c.g.auxOff+p.c.g.auxLen]
}

// Info says where the segment is and how it was opened.
func (p *Pool[T]) Info() Info { return p.c.info }

// Close marks a clean shutdown, unmaps the segment and drops the owner
// lock. Every pointer obtained from the pool is invalid afterwards: call it
// only once every goroutine using the pool has stopped.
func (p *Pool[T]) Close() error { return p.c.close() }
