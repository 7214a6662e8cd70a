package shmpool

import "math/bits"

// freeSet is the in-process free structure: one bit per slot (1 = free)
// and a summary bit per 64-slot word (1 = that word has a free slot). It is
// rebuilt from the slot states on every attach and never stored.
//
// It replaces a stack of free indices because attach time is dominated by
// page faults on this kind of machine: a 4-byte-per-slot stack is 1,000
// fresh heap pages for a million slots, the bitmap 32. Take returns the
// lowest free index, so allocation stays dense at the front of the segment.
type freeSet struct {
	words   []uint64
	summary []uint64
	hint    int // no summary word below hint has a set bit
	n       int // free slots
}

func newFreeSet(slots int) freeSet {
	w := (slots + 63) / 64
	return freeSet{words: make([]uint64, w), summary: make([]uint64, (w+63)/64)}
}

func (f *freeSet) put(i uint32) {
	w := int(i / 64)
	f.words[w] |= 1 << (i % 64)
	f.summary[w/64] |= 1 << (w % 64)
	f.hint = min(f.hint, w/64)
	f.n++
}

// take removes and returns the lowest free index.
func (f *freeSet) take() (uint32, bool) {
	for s := f.hint; s < len(f.summary); s++ {
		if f.summary[s] == 0 {
			continue
		}
		f.hint = s
		w := s*64 + bits.TrailingZeros64(f.summary[s])
		b := bits.TrailingZeros64(f.words[w])
		f.words[w] &^= 1 << b
		if f.words[w] == 0 {
			f.summary[s] &^= 1 << (w % 64)
		}
		f.n--
		return uint32(w*64 + b), true
	}
	f.hint = len(f.summary)
	return 0, false
}
