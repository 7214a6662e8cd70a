package state

import (
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
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
// the writers' mutex. After a crash the table is rebuilt from the records,
// because a delete cut short can leave it in any state.
type index struct {
	tab  []uint32
	mu   sync.Mutex    // writers: insert, remove, rebuild
	ver  atomic.Uint64 // odd while remove shifts entries
	idOf func(slot uint32) (uint64, bool)
}

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
func (x *index) home(id uint64) int {
	hi, _ := bits.Mul64(mix(id), uint64(len(x.tab)))
	return int(hi)
}

// indexLen is the table size for a capacity: load factor at most 2/3.
func indexLen(capacity int) int { return capacity + capacity/2 + 1 }

func (x *index) find(id uint64) (uint32, bool) {
	for range 2 {
		v := x.ver.Load()
		if v&1 != 0 {
			continue
		}
		s, ok := x.probe(id)
		if x.ver.Load() == v {
			return s, ok
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.probe(id)
}

func (x *index) probe(id uint64) (uint32, bool) {
	n := len(x.tab)
	i := x.home(id)
	for range n {
		e := atomic.LoadUint32(&x.tab[i])
		if e == 0 {
			return 0, false
		}
		if rid, ok := x.idOf(e - 1); ok && rid == id {
			return e - 1, true
		}
		if i++; i == n {
			i = 0
		}
	}
	return 0, false
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
	x.ver.Add(1)
	defer x.ver.Add(1)
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
		}
	}
	atomic.StoreUint32(&x.tab[i], 0)
	return true
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
