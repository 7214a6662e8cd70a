package state

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// FuzzSnapshot feeds arbitrary bytes to the snapshot reader: it must
// return an error or a valid snapshot, never panic, hang or allocate
// what the input merely claims. The seeds are a real snapshot and cuts
// and flips of it; go test runs them, go test -fuzz explores from them.
func FuzzSnapshot(f *testing.F) {
	opts := testOptions(f, 8)
	opts.SnapshotDir = opts.ShmDir
	s, _ := mustOpen[Player](f, opts)
	for id := uint64(1); id <= 3; id++ {
		s.Ensure(id)
		s.Update(id, func(p *Player) error { p.step(id); return nil })
	}
	info, err := s.Snapshot()
	if err != nil {
		f.Fatal(err)
	}
	s.Close()
	valid, _ := os.ReadFile(info.Path)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(valid[:snapFixed])
	f.Add([]byte{})
	f.Add([]byte(snapMagic))
	flipped := bytes.Clone(valid)
	flipped[len(flipped)/2] ^= 0xff
	f.Add(flipped)
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		info, err := ReadSnapshot(bytes.NewReader(b), func(id uint64, rec Record) error {
			n++
			if _, ok := rec.Value(""); !ok {
				return errors.New("a record without a value")
			}
			rec.Int("A")
			rec.Bytes("Inv[3]")
			return nil
		})
		if err != nil {
			if !errors.Is(err, ErrSnapshotCorrupt) && !errors.Is(err, ErrIncompatible) {
				t.Fatalf("error %v wraps neither ErrSnapshotCorrupt nor ErrIncompatible", err)
			}
			return
		}
		if info.Players != n {
			t.Fatalf("valid snapshot says %d players, reader saw %d", info.Players, n)
		}
	})
}
