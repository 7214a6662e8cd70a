package state

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/hothost/hothost/shmpool"
)

// index maps player ids to slots: linear probing over a table of uint32
// entries (slot+1; 0 is empty) that lives in the segment's aux region, so
// it survives restarts without a rebuild. Entries hold no ids: a probe
// compares the id stored in the candidate record, which keeps the table at
// 4 bytes an entry (6 bytes a player at the 2/3 maximum load factor).
//
// Lookups take no lock. Inserts write one entry with one atomic store (a
// concurrent lookup sees the entry or not, both correct). A delete shifts
// later entries back (no tombstones: a table that lives for years must not
// fill with them) and can move an entry past a running probe, so deletes
// bump ver to odd and back, and a lookup that saw ver change retries under
// the writers' mutex.
//
// # Why the table is trusted after kill -9
//
// Only three things write it: Ensure's insert, Delete's remove and a
// rebuild. Ensure and Delete each hold a journal entry naming their slot
// (journalCreate, journalDelete) from before their first index store until
// after their last (recover.go), and index writers are serialized, so a
// crash leaves at most one insert or remove cut short, in the cluster
// (maximal run of non-empty entries) around its id's home, and its journal
// entry says which id: an insert is one store, whole or absent; a remove
// cut short holds the removed entry or a copy of an entry it was shifting
// back (never a lost one, since the hole is filled before the next is
// made). Recovery rebuilds that one cluster without the slot (repair) and
// finishes the journal entry, touching a few cache lines, not the table.
//
// A rebuild marks the header's state word rebuilding before it clears the
// table and valid after: a rebuild cut short is redone. The header (magic,
// length, hash, checksum) is checked on every attach; a header that does
// not add up means the table cannot be trusted, and it is rebuilt from the
// records (the slow path, which reads every record).
type index struct {
	tab  []uint32
	hdr  []byte        // the header, in the segment
	mu   sync.Mutex    // writers: insert, remove, repair, rebuild
	ver  atomic.Uint64 // odd while remove shifts entries
	idOf func(slot uint32) (uint64, bool)
}

// The index header, the 64 bytes before the table:
//
//	[0, 8)    magic "HHINDEX\x01"
//	[8, 16)   table length (entries)
//	[16, 20)  hash: 1 = linear probing from the high half of mix(id)*length,
//	          entries slot+1 (what a build must agree on to read the table)
//	[20, 24)  CRC-32C of [0, 20)
//	[24, 28)  state: indexValid or indexRebuilding (outside the checksum:
//	          it is changed by one atomic store)
const (
	indexHeader     = 64
	indexMagic      = "HHINDEX\x01"
	indexHash       = 1
	offIndexLen     = 8
	offIndexHash    = 16
	offIndexSum     = 20
	offIndexState   = 24
	indexValid      = 0x56414c44 // "VALD"
	indexRebuilding = 0x52424c44 // "RBLD"
)

func indexHeaderBytes(aux []byte, g auxGeom) []byte { return aux[g.index-indexHeader : g.index] }

// encodeIndexHeader writes the header of an empty (valid) table.
func encodeIndexHeader(aux []byte, g auxGeom) {
	x := index{hdr: indexHeaderBytes(aux, g), tab: indexTable(aux, g)}
	x.sealHeader()
}

// sealHeader writes the header's fixed fields for the table x has, then
// marks it valid: the end of a rebuild, whatever the header held before.
func (x *index) sealHeader() {
	b := x.hdr
	le := binary.LittleEndian
	copy(b, indexMagic)
	le.PutUint64(b[offIndexLen:], uint64(len(x.tab)))
	le.PutUint32(b[offIndexHash:], indexHash)
	le.PutUint32(b[offIndexSum:], crc32.Checksum(b[:offIndexSum], castagnoli))
	x.setState(indexValid)
}

func stateWord(hdr []byte) *uint32 { return (*uint32)(unsafe.Pointer(&hdr[offIndexState])) }

// checkIndexHeader says why the table cannot be trusted, or nil: the first
// failing check, in a fixed order (magic, checksum, length, hash, state).
func checkIndexHeader(aux []byte, g auxGeom) error {
	b := indexHeaderBytes(aux, g)
	le := binary.LittleEndian
	switch st := atomic.LoadUint32(stateWord(b)); {
	case string(b[:8]) != indexMagic:
		return fmt.Errorf("%w: index header magic %q, want %q", ErrCorrupt, b[:8], indexMagic)
	case le.Uint32(b[offIndexSum:]) != crc32.Checksum(b[:offIndexSum], castagnoli):
		return fmt.Errorf("%w: index header checksum %#08x, computed %#08x", ErrCorrupt,
			le.Uint32(b[offIndexSum:]), crc32.Checksum(b[:offIndexSum], castagnoli))
	case le.Uint64(b[offIndexLen:]) != uint64(g.indexLen):
		return fmt.Errorf("%w: index header says %d entries, the segment has %d", ErrCorrupt, le.Uint64(b[offIndexLen:]), g.indexLen)
	case le.Uint32(b[offIndexHash:]) != indexHash:
		return fmt.Errorf("%w: index hash %d, this build reads %d", ErrCorrupt, le.Uint32(b[offIndexHash:]), indexHash)
	case st == indexRebuilding:
		return fmt.Errorf("%w: an index rebuild was cut short", ErrCorrupt)
	case st != indexValid:
		return fmt.Errorf("%w: index state word %#08x", ErrCorrupt, st)
	}
	return nil
}

// setState persists the header's state word. A store of one aligned word:
// a crash leaves the old value or the new.
func (x *index) setState(v uint32) { atomic.StoreUint32(stateWord(x.hdr), v) }

// mix is splitmix64's finalizer: ids are often sequential, which linear
// probing with an identity hash would turn into long runs.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// home is id's first probe position: the high half of mix(id)*n maps the
// hash onto [0, n) without a division or a power-of-two table size.
func (x *index) home(id uint64) int { return x.homeMixed(mix(id)) }

// homeMixed is home for an id whose mix the caller has already.
func (x *index) homeMixed(m uint64) int {
	hi, _ := bits.Mul64(m, uint64(len(x.tab)))
	return int(hi)
}

// indexLen is the table size for a capacity: load factor at most 2/3.
func indexLen(capacity int) int { return capacity + capacity/2 + 1 }

// findMixed looks id, whose mix is m, up: its slot, and the slot's handle
// and record (Store.find for callers without the mix; a transaction
// picked its lane with it). Each candidate's id is read from its record
// through the pool, which the compiler inlines for the store's T (no call
// through idOf per probe). Lock-free: a lookup that saw a remove shift
// entries (ver moved) retries, and the third try takes the writers' mutex.
func findMixed[T any](x *index, p *shmpool.Pool[record[T]], id, m uint64) (uint32, shmpool.Handle, *record[T], bool) {
	for range 2 {
		v := x.ver.Load()
		if v&1 != 0 {
			continue
		}
		slot, h, rec, ok := probe(x, p, id, m)
		if x.ver.Load() == v {
			return slot, h, rec, ok
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return probe(x, p, id, m)
}

func probe[T any](x *index, p *shmpool.Pool[record[T]], id, m uint64) (uint32, shmpool.Handle, *record[T], bool) {
	n := len(x.tab)
	i := x.homeMixed(m)
	for range n {
		e := atomic.LoadUint32(&x.tab[i])
		if e == 0 {
			return 0, 0, nil, false
		}
		if h, rec, ok := p.Lookup(int(e - 1)); ok && atomic.LoadUint64(&rec.ID) == id {
			return e - 1, h, rec, true
		}
		if i++; i == n {
			i = 0
		}
	}
	return 0, 0, nil, false
}

// insert adds id -> slot. The caller guarantees id is absent (it holds the
// id's lane lock and looked); a full table is a bug in the sizing.
func (x *index) insert(id uint64, slot uint32) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.insertLocked(id, slot)
}

func (x *index) insertLocked(id uint64, slot uint32) error {
	n := len(x.tab)
	i := x.home(id)
	for range n {
		if atomic.LoadUint32(&x.tab[i]) == 0 {
			atomic.StoreUint32(&x.tab[i], slot+1)
			return nil
		}
		if i++; i == n {
			i = 0
		}
	}
	return fmt.Errorf("%w: index of %d entries is full", ErrCorrupt, n)
}

// remove deletes the entry for slot (found by id's probe sequence) and
// shifts the rest of the cluster back so every entry stays reachable from
// its home.
func (x *index) remove(id uint64, slot uint32) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := len(x.tab)
	i := x.home(id)
	for range n {
		e := atomic.LoadUint32(&x.tab[i])
		if e == 0 {
			return false
		}
		if e == slot+1 {
			break
		}
		if i++; i == n {
			i = 0
		}
	}
	if atomic.LoadUint32(&x.tab[i]) != slot+1 {
		return false
	}
	x.removeAtLocked(i)
	return true
}

// removeAtLocked empties position i and shifts the rest of its cluster
// back. Every store moves an entry into the current hole before the next
// hole is made, so a crash inside leaves each entry at least once (one
// possibly twice): what repair expects.
func (x *index) removeAtLocked(i int) {
	n := len(x.tab)
	x.ver.Add(1)
	defer x.ver.Add(1)
	stores := 0
	if testHookIndexStore != nil {
		testHookIndexStore(stores)
	}
	for j := i; ; {
		if j++; j == n {
			j = 0
		}
		e := atomic.LoadUint32(&x.tab[j])
		if e == 0 {
			break
		}
		rid, ok := x.idOf(e - 1)
		if !ok { // cannot happen while the index is consistent; keep the entry
			continue
		}
		// e may fill the hole at i unless its home lies cyclically in (i, j].
		if h := x.home(rid); (j > i && (h <= i || h > j)) || (j < i && h <= i && h > j) {
			atomic.StoreUint32(&x.tab[i], e)
			i = j
			if stores++; testHookIndexStore != nil {
				testHookIndexStore(stores)
			}
		}
	}
	atomic.StoreUint32(&x.tab[i], 0)
	if testHookIndexStore != nil {
		testHookIndexStore(stores + 1)
	}
}

// testHookIndexStore, when set (tests only), is called before a remove's
// first store to the table and after each (with the count so far): the
// crash tests kill the process there.
var testHookIndexStore func(stores int)

// removeSlot deletes every entry holding slot, wherever it is: for a slot
// whose record no longer leads to its entry (its id field is corrupt), so
// that no probe path can be used to find it. It reads the whole table.
func (x *index) removeSlot(slot uint32) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	removed := 0
	for i := 0; i < len(x.tab); {
		if atomic.LoadUint32(&x.tab[i]) == slot+1 {
			x.removeAtLocked(i) // may shift another copy into i: look again
			removed++
			continue
		}
		i++
	}
	return removed
}

// repair rebuilds the cluster around id's home position without slot
// drop, without entries for slots that are no longer live, and with each
// slot once: what an insert or remove of id's slot cut short by a crash
// needs (see the type's comment). Every entry of a cluster has its home
// inside it, and linear probing fills the same positions whatever the
// order of inserts, so the entries go back inside the same span.
func (x *index) repair(id uint64, drop uint32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := len(x.tab)
	h := x.home(id)
	if n == 0 || atomic.LoadUint32(&x.tab[h]) == 0 {
		return // no cluster there: nothing of id's was ever in one, or its remove finished
	}
	start := h
	for range n {
		p := (start + n - 1) % n
		if atomic.LoadUint32(&x.tab[p]) == 0 {
			break
		}
		start = p
	}
	var entries []uint32
	for i := start; len(entries) < n; i = (i + 1) % n {
		e := atomic.LoadUint32(&x.tab[i])
		if e == 0 {
			break
		}
		entries = append(entries, e)
	}
	x.ver.Add(1)
	defer x.ver.Add(1)
	for k := range entries {
		atomic.StoreUint32(&x.tab[(start+k)%n], 0)
	}
	seen := make(map[uint32]bool, len(entries))
	for _, e := range entries {
		if e == drop+1 || seen[e] {
			continue
		}
		seen[e] = true
		if rid, live := x.idOf(e - 1); live {
			x.insertLocked(rid, e-1) // cannot fail: the span just emptied holds it
		}
	}
}

// count is the number of entries: a cheap structural check on attach.
func (x *index) count() int {
	c := 0
	for i := range x.tab {
		if atomic.LoadUint32(&x.tab[i]) != 0 {
			c++
		}
	}
	return c
}
