package shmpool_test

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hothost/hothost/shmpool"
)

// newSegment makes a closed, valid segment with one player and returns the
// path of its file.
func newSegment(t *testing.T, dir string) string {
	t.Helper()
	p, err := shmpool.Open[player]("pool", shmpool.Options{Dir: dir, Capacity: 8, AuxSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	_, v, _ := p.Alloc()
	v.Coin = 5
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "pool")
}

// poke rewrites bytes of the segment file; with fix it then recomputes the
// header checksum so that the check after the checksum is reached.
func poke(t *testing.T, path string, off int, b []byte, fix bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
	if fix {
		h := make([]byte, shmpool.HeaderSize)
		if _, err := f.ReadAt(h, 0); err != nil {
			t.Fatal(err)
		}
		var sum [4]byte
		binary.LittleEndian.PutUint32(sum[:], shmpool.HeaderChecksum(h))
		if _, err := f.WriteAt(sum[:], shmpool.OffChecksum); err != nil {
			t.Fatal(err)
		}
	}
}

func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func TestCorruptHeaderFields(t *testing.T) {
	cases := []struct {
		name string
		off  int
		b    []byte
		fix  bool
		want error
	}{
		{"magic", shmpool.OffMagic, []byte("NOTAPOOL"), false, shmpool.ErrMagic},
		{"checksum", shmpool.OffChecksum, u32(0xdeadbeef), false, shmpool.ErrChecksum},
		{"header size", shmpool.OffHeaderSize, u32(3), false, shmpool.ErrChecksum},
		{"any field without checksum", shmpool.OffCapacity, u64(9), false, shmpool.ErrChecksum},
		{"version", shmpool.OffVersion, u32(2), true, shmpool.ErrVersion},
		{"slot size", shmpool.OffSlotSize, u32(8), true, shmpool.ErrCorrupt},
		{"segment size", shmpool.OffSegmentSize, u64(1 << 40), true, shmpool.ErrCorrupt},
		{"capacity", shmpool.OffCapacity, u64(1 << 40), true, shmpool.ErrCorrupt},
		{"layout offset", shmpool.OffLayoutOff, u64(12), true, shmpool.ErrCorrupt},
		{"layout length", shmpool.OffLayoutLen, u64(1 << 30), true, shmpool.ErrCorrupt},
		{"aux offset", shmpool.OffAuxOff, u64(0), true, shmpool.ErrCorrupt},
		{"aux length", shmpool.OffAuxLen, u64(1 << 50), true, shmpool.ErrCorrupt},
		{"states offset", shmpool.OffStatesOff, u64(4096), true, shmpool.ErrCorrupt},
		{"slots offset", shmpool.OffSlotsOff, u64(4096), true, shmpool.ErrCorrupt},
		{"fingerprint", shmpool.OffFingerprint, []byte{1, 2, 3, 4}, true, shmpool.ErrLayout},
		{"layout checksum", shmpool.OffLayoutSum, u32(1), true, shmpool.ErrChecksum},
		{"stored layout bytes", shmpool.HeaderRegion, []byte("XX"), false, shmpool.ErrChecksum},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := newSegment(t, shmDir(t))
			poke(t, path, c.off, c.b, c.fix)
			_, err := shmpool.Open[player]("pool", shmpool.Options{Dir: filepath.Dir(path)})
			if !errors.Is(err, c.want) {
				t.Fatalf("Open after poking %s: %v, want %v", c.name, err, c.want)
			}
		})
	}
}

func TestCorruptSlotState(t *testing.T) {
	dir := shmDir(t)
	path := newSegment(t, dir)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	h := make([]byte, shmpool.HeaderSize)
	f.ReadAt(h, 0)
	f.Close()
	states := binary.LittleEndian.Uint64(h[shmpool.OffStatesOff:])
	poke(t, path, int(states)+8*3, u64(7), false)
	_, err = shmpool.Open[player]("pool", shmpool.Options{Dir: dir})
	if !errors.Is(err, shmpool.ErrCorrupt) {
		t.Fatalf("Open with a bad slot state: %v, want ErrCorrupt", err)
	}
}

func TestTruncatedSegment(t *testing.T) {
	for _, size := range []int64{0, 100, shmpool.HeaderRegion, shmpool.HeaderRegion + 4096} {
		dir := shmDir(t)
		os.Remove(filepath.Join(dir, "pool"))
		path := newSegment(t, dir)
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		_, err := shmpool.Open[player]("pool", shmpool.Options{Dir: dir})
		if !errors.Is(err, shmpool.ErrTooSmall) {
			t.Fatalf("Open of a segment truncated to %d bytes: %v, want ErrTooSmall", size, err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("a refused segment must be left in place for the operator: %v", err)
		}
	}
}

func TestNoSpace(t *testing.T) {
	// A tmpfs far smaller than the pool: the error comes at Open, by name.
	dir := shmDir(t)
	_, err := shmpool.Open[player]("huge", shmpool.Options{Dir: dir, Capacity: 1 << 31})
	if err == nil {
		t.Fatal("Open of a pool larger than the tmpfs succeeded")
	}
	if !errors.Is(err, shmpool.ErrNoSpace) {
		t.Fatalf("Open of a pool larger than the tmpfs: %v, want ErrNoSpace", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "huge")); !os.IsNotExist(err) {
		t.Fatalf("a failed create left its file behind: %v", err)
	}
}
