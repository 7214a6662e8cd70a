package resume

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sizes of the table. An entry is two pages: header, reply records, the
// output slot and the input ring.
const (
	magic      = "HHSESS\x00\x02"
	headerSize = 4096
	entrySize  = 8192
	recordSize = 256
	records    = 4
	outSize    = 3072
	ringSize   = entrySize - entryHdrSize - records*recordSize - outSize
	// MaxFrame is the longest request line a session's ring holds twice
	// over (one being answered, the next arriving).
	MaxFrame = ringSize/2 - 2
	// MaxReply is the longest reply line a record keeps. A committed
	// request whose reply is longer is answered `err retry` when it has to
	// be answered from the record.
	MaxReply = recordSize - recordHdrSize
	// MaxTag is the longest request tag.
	MaxTag = 32
)

// Errors Open reports; the table is recreated empty after either, so that
// the host serves, and the connections of the process before are served as
// new ones.
var (
	// ErrInvalid: the table file is not a session table of this build
	// (magic, version, sizes or header checksum).
	ErrInvalid = errors.New("resume: table file invalid")
)

// entry states
const (
	stateFree   = 0
	stateLive   = 1 // a connection of this or a previous worker
	stateClosed = 2 // its connection ended; its records still answer retried tags
)

// entryHdr is an entry's first entryHdrSize bytes. Every field is written
// by the one goroutine serving the connection (the output fields under its
// write lock); a worker that attaches reads them after the previous one died.
type entryHdr struct {
	ConnID  uint64
	Player  uint64
	_       uint32 // the entry's state word lives in the dense array before the entries (Table.state)
	NextRec uint32 // the record the next commit writes, mod records
	LastUse int64  // unix nanoseconds: closed entries are reused oldest first
	// InDone is the stream offset before which every request is answered.
	InDone uint64
	// TryOff is the end of the request being run, Tries how many
	// workers started it.
	TryOff uint64
	Tries  uint32
	// OutN bytes of the output slot, written at stream offset OutStart.
	// OutReq is the end of the request they answer (0: a push).
	OutN     uint32
	OutStart uint64
	OutReq   uint64
}

const entryHdrSize = 128

var _ = [entryHdrSize - unsafe.Sizeof(entryHdr{})]byte{} // entryHdr fits its bytes (a compile error otherwise)

// record is one committed request's reply.
type record struct {
	Kind   uint32 // recNone, recTagged, recUntagged, recTooLong|...
	Seq    uint32 // the player's commit count once the request committed
	Player uint64
	ReqEnd uint64 // untagged: the request's end offset on this connection
	Sum    uint32 // CRC-32C of the record with Kind and Sum zero
	TagLen uint8
	_      [1]byte
	Len    uint16
	Tag    [MaxTag]byte
	Reply  [recordSize - recordHdrSize]byte
}

const recordHdrSize = 4 + 4 + 8 + 8 + 4 + 1 + 1 + 2 + MaxTag

var _ = [1]struct{}{}[recordSize-unsafe.Sizeof(record{})]

const (
	recNone     = 0
	recTagged   = 1
	recUntagged = 2
	recTooLong  = 4 // flag: the reply did not fit; answer `err retry`
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Table is the session table of one state segment.
type Table struct {
	path    string
	mem     []byte
	n       int
	epoch   uint64
	counter atomic.Uint64

	mu     sync.Mutex     // byConn, owned, free; taken before a shard's
	byConn map[uint64]int // live entries by connection id
	owned  []bool         // entries a session of this process holds
	free   []int
	// players shards the entries (live or closed) by player, for FindTag,
	// which runs on every tagged request: one lock for all would be a
	// cache line every core writes on every request.
	players [playerShards]playerShard
	// tags holds a fingerprint of each record's tag (0: no tagged record),
	// entry i's at [i*records, (i+1)*records): FindTag, which runs on every
	// tagged request and almost never finds its tag, reads these 16 bytes
	// an entry in the heap instead of a cache line of each record in the
	// file, and reads a record only when its fingerprint matches.
	tags []atomic.Uint32
	seed maphash.Seed
}

const playerShards = 64

type playerShard struct {
	mu sync.Mutex
	m  map[uint64][]int
	_  [64 - 16]byte
}

func (t *Table) shard(p uint64) *playerShard {
	return &t.players[(p*0x9e3779b97f4a7c15)>>58] // Fibonacci hashing: ids are often sequential
}

// Report says what Open found.
type Report struct {
	Fresh    bool  // the table was made (or remade) empty
	Invalid  error // why the old one was replaced, if it was (wraps ErrInvalid)
	Live     int   // sessions of a previous worker, waiting for their connections
	Closed   int   // ended sessions whose records still answer retried tags
	Dropped  int   // reply records Validate dropped: their transaction never committed
	Restored int   // output writes cut short by a crash and finished since (counted by Resume)
}

// Open opens the session table at path, making it with n entries if it
// does not exist or is not one (then Report.Invalid says why). commits is
// the state store's commit counter (state.Store.Commits): reply records
// whose transaction never committed are dropped before Open returns, so
// call it after the store recovered and before anything runs.
func Open(path string, n int, commits func(player uint64) (uint32, bool)) (*Table, *Report, error) {
	if n <= 0 {
		return nil, nil, fmt.Errorf("resume: %d entries", n)
	}
	size := entriesAt(n) + n*entrySize
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("resume: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("resume: %w", err)
	}
	rep := &Report{Fresh: st.Size() == 0}
	if !rep.Fresh && st.Size() != int64(size) {
		rep.Invalid = fmt.Errorf("%w: %s has %d bytes, want %d for %d sessions", ErrInvalid, filepath.Base(path), st.Size(), size, n)
	}
	if !rep.Fresh && rep.Invalid == nil {
		hdr := make([]byte, headerSize)
		if _, err := f.ReadAt(hdr, 0); err != nil {
			return nil, nil, fmt.Errorf("resume: read %s: %w", path, err)
		}
		rep.Invalid = checkHeader(hdr, n)
	}
	// A new or replaced table is made by truncating, never by clearing the
	// mapping: the file is sparse, and clearing would commit every page.
	if rep.Fresh || rep.Invalid != nil {
		if err := f.Truncate(0); err != nil {
			return nil, nil, fmt.Errorf("resume: %w", err)
		}
		if err := f.Truncate(int64(size)); err != nil {
			return nil, nil, fmt.Errorf("resume: %w", err)
		}
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("resume: map %s: %w", path, err)
	}
	t := &Table{path: path, mem: mem, n: n, epoch: rand.Uint64() << 32, byConn: map[uint64]int{}, owned: make([]bool, n),
		tags: make([]atomic.Uint32, n*records), seed: maphash.MakeSeed()}
	for i := range t.players {
		t.players[i].m = map[uint64][]int{}
	}
	if rep.Invalid != nil || rep.Fresh {
		writeHeader(mem[:headerSize], n)
		rep.Fresh = true
	}
	for i := n - 1; i >= 0; i-- {
		if rep.Fresh {
			t.free = append(t.free, i)
			continue
		}
		st := t.state(i)
		if *st != stateLive && *st != stateClosed {
			*st = stateFree // a state this build does not write is forgotten
			t.free = append(t.free, i)
			continue
		}
		h := t.hdr(i)
		if *st == stateLive {
			t.byConn[h.ConnID] = i
			rep.Live++
		} else {
			rep.Closed++
		}
		if h.Player != 0 {
			sh := t.shard(h.Player)
			sh.m[h.Player] = append(sh.m[h.Player], i)
		}
		rep.Dropped += t.validate(i, commits)
	}
	return t, rep, nil
}

func writeHeader(b []byte, n int) {
	le := binary.LittleEndian
	copy(b, magic)
	le.PutUint32(b[8:], uint32(n))
	le.PutUint32(b[12:], entrySize)
	le.PutUint32(b[16:], recordSize)
	le.PutUint32(b[20:], outSize)
	le.PutUint32(b[24:], crc32.Checksum(b[:24], castagnoli))
}

// checkHeader validates in order: magic (and with it the format version),
// sizes, checksum.
func checkHeader(b []byte, n int) error {
	le := binary.LittleEndian
	if string(b[:8]) != magic {
		return fmt.Errorf("%w: magic %q, want %q", ErrInvalid, b[:8], magic)
	}
	if got := [4]uint32{le.Uint32(b[8:]), le.Uint32(b[12:]), le.Uint32(b[16:]), le.Uint32(b[20:])}; got != [4]uint32{uint32(n), entrySize, recordSize, outSize} {
		return fmt.Errorf("%w: %d sessions of %d bytes (records %d, output %d), want %d of %d (%d, %d)",
			ErrInvalid, got[0], got[1], got[2], got[3], n, entrySize, recordSize, outSize)
	}
	if sum := crc32.Checksum(b[:24], castagnoli); le.Uint32(b[24:]) != sum {
		return fmt.Errorf("%w: header checksum %#x, computed %#x", ErrInvalid, le.Uint32(b[24:]), sum)
	}
	return nil
}

// Close unmaps the table. The file stays for the next worker.
func (t *Table) Close() error {
	if t.mem == nil {
		return nil
	}
	err := unix.Munmap(t.mem)
	t.mem = nil
	return err
}

// entriesAt is where the entries start: after the header and the dense
// array of their state words, which Open reads without touching an entry
// that is free (the file is sparse: a free entry costs no memory).
func entriesAt(n int) int { return headerSize + (4*n+headerSize-1)/headerSize*headerSize }

func (t *Table) entry(i int) []byte { return t.mem[entriesAt(t.n)+i*entrySize:][:entrySize] }
func (t *Table) hdr(i int) *entryHdr {
	return (*entryHdr)(unsafe.Pointer(&t.mem[entriesAt(t.n)+i*entrySize]))
}

// state is entry i's state word.
func (t *Table) state(i int) *uint32 { return (*uint32)(unsafe.Pointer(&t.mem[headerSize+4*i])) }
func (t *Table) rec(i, k int) *record {
	return (*record)(unsafe.Pointer(&t.entry(i)[entryHdrSize+k*recordSize]))
}
func (t *Table) out(i int) []byte {
	return t.entry(i)[entryHdrSize+records*recordSize:][:outSize]
}
func (t *Table) ring(i int) []byte { return t.entry(i)[entrySize-ringSize:] }

// validate drops entry i's records that are torn or whose transaction never
// committed, and reports how many it dropped.
func (t *Table) validate(i int, commits func(uint64) (uint32, bool)) (dropped int) {
	for k := range records {
		r := t.rec(i, k)
		if atomic.LoadUint32(&r.Kind) == recNone {
			continue
		}
		if !r.whole() {
			atomic.StoreUint32(&r.Kind, recNone)
			dropped++
			continue
		}
		c, ok := commits(r.Player)
		if !ok || int32(r.Seq-c) > 0 {
			atomic.StoreUint32(&r.Kind, recNone)
			dropped++
			continue
		}
		if r.Kind&recTagged != 0 {
			t.tags[i*records+k].Store(t.tagPrint(string(r.Tag[:r.TagLen])))
		}
	}
	return dropped
}

// tagPrint is tag's fingerprint: never 0, which stands for no tag.
func (t *Table) tagPrint(tag string) uint32 {
	h := maphash.String(t.seed, tag)
	return uint32(h) | uint32(h>>32) | 1
}

func (r *record) sum() uint32 {
	kind := r.Kind
	r.Kind, r.Sum = 0, 0
	s := crc32.Checksum(unsafe.Slice((*byte)(unsafe.Pointer(r)), recordSize), castagnoli)
	r.Kind = kind
	return s
}

func (r *record) whole() bool {
	want := r.Sum
	ok := r.sum() == want && int(r.TagLen) <= MaxTag && int(r.Len) <= len(r.Reply)
	r.Sum = want
	return ok
}

// newID is a connection id for a connection that did not come with one
// (no supervisor): unique to this table's process.
func (t *Table) newID() uint64 { return t.epoch | t.counter.Add(1)&(1<<32-1) }

// claim returns the entry of connection id: the one a previous worker
// left for it (resumed), or a new one.
func (t *Table) claim(id uint64) (i int, resumed bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.byConn[id]; ok && !t.owned[i] {
		t.owned[i] = true
		return i, true, nil
	}
	if len(t.free) > 0 {
		i = t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
	} else if i = t.oldestClosed(); i < 0 {
		return 0, false, fmt.Errorf("resume: all %d sessions in use", t.n)
	}
	t.forget(i)
	h := t.hdr(i)
	clear(t.entry(i))
	for k := range records {
		t.tags[i*records+k].Store(0)
	}
	h.ConnID, h.LastUse = id, time.Now().UnixNano()
	atomic.StoreUint32(t.state(i), stateLive)
	t.byConn[id] = i
	t.owned[i] = true
	return i, false, nil
}

// oldestClosed is the closed entry used longest ago, or a live one of a
// previous worker whose connection never came back, or -1.
func (t *Table) oldestClosed() int {
	best, bestUse := -1, int64(0)
	for i := range t.n {
		if t.owned[i] || *t.state(i) == stateFree {
			continue
		}
		h := t.hdr(i)
		if best < 0 || h.LastUse < bestUse {
			best, bestUse = i, h.LastUse
		}
	}
	return best
}

// forget drops entry i from the indexes (the caller holds t.mu).
func (t *Table) forget(i int) {
	h := t.hdr(i)
	if j, ok := t.byConn[h.ConnID]; ok && j == i {
		delete(t.byConn, h.ConnID)
	}
	if h.Player != 0 {
		t.unlinkPlayer(h.Player, i)
	}
}

func (t *Table) unlinkPlayer(p uint64, i int) {
	sh := t.shard(p)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	list := sh.m[p]
	for k, j := range list {
		if j == i {
			list = append(list[:k], list[k+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(sh.m, p)
	} else {
		sh.m[p] = list
	}
}

// setPlayer records that entry i's connection logged in as p. Only the
// connection's goroutine writes its entry's player.
func (t *Table) setPlayer(i int, p uint64) {
	h := t.hdr(i)
	if h.Player == p {
		return
	}
	if h.Player != 0 {
		t.unlinkPlayer(h.Player, i)
	}
	sh := t.shard(p)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	h.Player = p
	sh.m[p] = append(sh.m[p], i)
}

// release ends entry i's connection: the entry is kept, closed, for its
// tag records, until its room is needed.
func (t *Table) release(i int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.hdr(i)
	delete(t.byConn, h.ConnID)
	h.LastUse = time.Now().UnixNano()
	atomic.StoreUint32(t.state(i), stateClosed)
	t.owned[i] = false
	if h.Player != 0 {
		t.trimClosed(h.Player)
	}
}

// KeepClosed is how many ended sessions of one player keep their records
// for retried tags. A client retries on its next connection, so a few are
// enough; every one more is scanned by each tagged request of the player
// (FindTag), and a player who reconnected a thousand times made each of
// its requests read four thousand records.
const KeepClosed = 2

// trimClosed frees player p's ended sessions beyond the KeepClosed used
// last. The caller holds t.mu.
func (t *Table) trimClosed(p uint64) {
	sh := t.shard(p)
	sh.mu.Lock()
	var closed []int
	for _, i := range sh.m[p] {
		if !t.owned[i] && atomic.LoadUint32(t.state(i)) == stateClosed {
			closed = append(closed, i)
		}
	}
	sh.mu.Unlock()
	if len(closed) <= KeepClosed {
		return
	}
	slices.SortStableFunc(closed, func(a, b int) int { return cmp.Compare(t.hdr(a).LastUse, t.hdr(b).LastUse) })
	for _, i := range closed[:len(closed)-KeepClosed] {
		t.forget(i)
		atomic.StoreUint32(t.state(i), stateFree)
		t.free = append(t.free, i)
	}
}

// FindTag returns the reply kept for player's request tagged tag, from any
// of the player's sessions, live or ended. Call it holding the player's
// lane, so that no transaction of the player runs meanwhile: then every
// record there is a committed one.
func (t *Table) FindTag(player uint64, tag string) (reply []byte, ok bool) {
	fp := t.tagPrint(tag)
	sh := t.shard(player)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, i := range sh.m[player] {
		for k := range records {
			if t.tags[i*records+k].Load() != fp {
				continue
			}
			r := t.rec(i, k)
			if atomic.LoadUint32(&r.Kind)&recTagged != 0 && r.Player == player && string(r.Tag[:r.TagLen]) == tag {
				return r.reply(), true
			}
		}
	}
	return nil, false
}

// reply is the record's reply line, or nil if it was too long to keep.
func (r *record) reply() []byte {
	if r.Kind&recTooLong != 0 {
		return nil
	}
	return append([]byte(nil), r.Reply[:r.Len]...)
}
