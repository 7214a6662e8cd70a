package shmpool

import (
	"math/rand/v2"
	"sort"
	"testing"
)

// The free set against a sorted list: take always yields the lowest free
// index, across word and summary boundaries, and reports empty exactly
// when nothing is free.
func TestFreeSetAgainstSortedList(t *testing.T) {
	const slots = 64*64*2 + 77 // more than one summary word, a partial last word
	f := newFreeSet(slots)
	var want []int
	for i := range slots {
		if rand.IntN(3) == 0 {
			f.put(uint32(i))
			want = append(want, i)
		}
	}
	for step := range 50_000 {
		if rand.IntN(2) == 0 && len(want) > 0 {
			got, ok := f.take()
			if !ok || int(got) != want[0] {
				t.Fatalf("step %d: take = %d %v, want %d", step, got, ok, want[0])
			}
			want = want[1:]
		} else {
			i := rand.IntN(slots)
			k := sort.SearchInts(want, i)
			if k < len(want) && want[k] == i {
				continue // already free
			}
			f.put(uint32(i))
			want = append(want[:k], append([]int{i}, want[k:]...)...)
		}
		if f.n != len(want) {
			t.Fatalf("step %d: n = %d, want %d", step, f.n, len(want))
		}
	}
	for range want {
		f.take()
	}
	if i, ok := f.take(); ok {
		t.Fatalf("take on an empty set = %d", i)
	}
}
