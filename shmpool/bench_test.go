package shmpool_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hothost/hothost/shmpool"
)

// rec256 is the benchmarks' 256-byte player record.
type rec256 struct {
	ID   uint64
	Coin int64
	Data [240]byte
}

const benchSlots = 4096

// BenchmarkGet compares reading a field through Get(handle) with indexing a
// Go slice of the same records (the baseline): goal at most 2x.
func BenchmarkGet(b *testing.B) {
	b.Run("slice", func(b *testing.B) {
		s := make([]rec256, benchSlots)
		var sum int64
		for i := 0; b.Loop(); i++ {
			sum += s[i&(benchSlots-1)].Coin
		}
		_ = sum
	})
	b.Run("pool", func(b *testing.B) {
		p, err := shmpool.Open[rec256]("bench", shmpool.Options{Dir: shmDir(b), Capacity: benchSlots})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		hs := make([]shmpool.Handle, benchSlots)
		for i := range hs {
			hs[i], _, _ = p.Alloc()
		}
		var sum int64
		for i := 0; b.Loop(); i++ {
			v, err := p.Get(hs[i&(benchSlots-1)])
			if err != nil {
				b.Fatal(err)
			}
			sum += v.Coin
		}
		_ = sum
	})
}

// BenchmarkAllocFree is one Alloc (which zeroes the slot) plus one Free:
// goal under 50 ns.
func BenchmarkAllocFree(b *testing.B) {
	p, err := shmpool.Open[rec256]("bench", shmpool.Options{Dir: shmDir(b), Capacity: benchSlots})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for b.Loop() {
		h, _, err := p.Alloc()
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Free(h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAttach1M compares attaching an existing 1,000,000 x 256-byte pool
// (open, lock, validate header, rebuild the free structure) with the
// baseline of reading a snapshot of the same bytes with os.ReadFile from a
// warm page cache: goal at least 10x faster.
func BenchmarkAttach1M(b *testing.B) {
	const n = 1_000_000
	dir := shmDir(b)
	p, err := shmpool.Open[rec256]("big", shmpool.Options{Dir: dir, Capacity: n})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n / 2 { // half full: the free stack has work to do
		_, v, err := p.Alloc()
		if err != nil {
			b.Fatal(err)
		}
		v.ID = uint64(i)
	}
	p.Close()

	b.Run("attach", func(b *testing.B) {
		for b.Loop() {
			p, err := shmpool.Open[rec256]("big", shmpool.Options{Dir: dir})
			if err != nil {
				b.Fatal(err)
			}
			p.Close()
		}
	})
	b.Run("readfile", func(b *testing.B) {
		snap := filepath.Join(b.TempDir(), "snapshot")
		if err := os.WriteFile(snap, make([]byte, n*256), 0o600); err != nil {
			b.Fatal(err)
		}
		if _, err := os.ReadFile(snap); err != nil { // warm the page cache
			b.Fatal(err)
		}
		for b.Loop() {
			data, err := os.ReadFile(snap)
			if err != nil || len(data) != n*256 {
				b.Fatal(err)
			}
		}
	})
}
