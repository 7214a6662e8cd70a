package state

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hothost/hothost/shmpool"
)

func snapOptions(t *testing.T, capacity int) Options {
	o := testOptions(t, capacity)
	o.SnapshotDir = filepath.Join(o.ShmDir, "snapshots")
	return o
}

func fill(t testing.TB, s *Store[Player], n int) {
	t.Helper()
	for id := uint64(1); id <= uint64(n); id++ {
		if _, err := s.Ensure(id); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(id, func(p *Player) error {
			for range id % 5 {
				p.step(id)
			}
			p.Coins = int64(id) * 3
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func checkFilled(t testing.TB, get func(uint64) (Player, error), n int) {
	t.Helper()
	for id := uint64(1); id <= uint64(n); id++ {
		p, err := get(id)
		if err != nil {
			t.Fatalf("player %d: %v", id, err)
		}
		if p.Coins != int64(id)*3 || p.A != int64(id%5) || p.consistent(id) != "" {
			t.Fatalf("player %d = A %d Coins %d (%s)", id, p.A, p.Coins, p.consistent(id))
		}
	}
}

func TestSnapshotRoundTrip100k(t *testing.T) {
	const n = 100_000
	opts := snapOptions(t, n)
	s, _ := mustOpen[Player](t, opts)
	fill(t, s, n)
	info, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if info.Players != n || info.Bytes < n*256 {
		t.Fatalf("snapshot info %+v", info)
	}
	m, _, err := LoadSnapshot[Player](info.Path, nil)
	if err != nil || len(m) != n {
		t.Fatalf("LoadSnapshot: %d players, %v", len(m), err)
	}
	checkFilled(t, func(id uint64) (Player, error) { return m[id], nil }, n)
	s.Close()

	// A reboot: the segment is gone, the snapshot is not.
	if err := shmpool.Remove(opts.ShmDir, opts.Name); err != nil {
		t.Fatal(err)
	}
	s, rep := mustOpen[Player](t, opts)
	defer s.Close()
	if rep.How != Restored || rep.Snapshot != info.Path || rep.Players != n {
		t.Fatalf("open after removing the segment: %v", rep)
	}
	checkFilled(t, s.Get, n)
}

func TestSnapshotCorruptByteDetected(t *testing.T) {
	opts := snapOptions(t, 100)
	s, _ := mustOpen[Player](t, opts)
	fill(t, s, 50)
	good, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	orig, _ := os.ReadFile(good.Path)
	h, err := readSnapHeader(bytes.NewReader(orig))
	if err != nil {
		t.Fatal(err)
	}
	rec := int(h.size) // first record
	cases := map[string]int{
		"magic":         0,
		"count":         24,
		"schema":        snapFixed + 10,
		"header sum":    int(h.size) - 1,
		"record seq":    rec + 1,
		"record sum":    rec + 5,
		"record id":     rec + 9,
		"record value":  rec + 100,
		"last record":   len(orig) - snapTrailer - 3,
		"trailer magic": len(orig) - snapTrailer,
		"trailer count": len(orig) - 14,
		"trailer sum":   len(orig) - 1,
	}
	for name, off := range cases {
		b := bytes.Clone(orig)
		b[off] ^= 0x40
		if _, err := ReadSnapshot(bytes.NewReader(b), nil); !errors.Is(err, ErrSnapshotCorrupt) {
			t.Errorf("%s (byte %d) flipped: ReadSnapshot returned %v, want ErrSnapshotCorrupt", name, off, err)
		}
	}
	for _, cut := range []int{0, 10, int(h.size), len(orig) - 1} {
		if _, err := ReadSnapshot(bytes.NewReader(orig[:cut]), nil); !errors.Is(err, ErrSnapshotCorrupt) {
			t.Errorf("cut at %d: %v", cut, err)
		}
	}
	if _, err := ReadSnapshot(bytes.NewReader(append(bytes.Clone(orig), 0)), nil); !errors.Is(err, ErrSnapshotCorrupt) {
		t.Errorf("a byte appended: %v", err)
	}
	if _, err := ReadSnapshot(bytes.NewReader(orig), nil); err != nil {
		t.Fatalf("the unmodified snapshot: %v", err)
	}
}

// Restore skips a corrupt newest snapshot, naming why, and loads the one
// before; it never loads part of the corrupt one.
func TestRestoreSkipsCorruptSnapshot(t *testing.T) {
	opts := snapOptions(t, 100)
	s, _ := mustOpen[Player](t, opts)
	fill(t, s, 40)
	older, _ := s.Snapshot()
	s.Ensure(99) // only in the newer snapshot
	newer, err := s.Snapshot()
	if err != nil || newer.Path == older.Path {
		t.Fatal(newer, err)
	}
	s.Close()
	b, _ := os.ReadFile(newer.Path)
	b[len(b)-snapTrailer-300] ^= 1 // in the last record
	os.WriteFile(newer.Path, b, 0o600)
	shmpool.Remove(opts.ShmDir, opts.Name)

	s, rep := mustOpen[Player](t, opts)
	defer s.Close()
	if rep.How != Restored || rep.Snapshot != older.Path || len(rep.Skipped) != 1 ||
		!strings.Contains(rep.Skipped[0], "checksum") || !strings.Contains(rep.Skipped[0], newer.Path) {
		t.Fatalf("restore: %v (skipped %q)", rep, rep.Skipped)
	}
	if _, err := s.Get(99); !errors.Is(err, ErrNotFound) {
		t.Fatalf("player 99 from the corrupt snapshot was loaded: %v", err)
	}
	checkFilled(t, s.Get, 40)
}

func TestSnapshotWhileUpdating(t *testing.T) {
	opts := snapOptions(t, 64)
	s, _ := mustOpen[Player](t, opts)
	defer s.Close()
	for id := uint64(1); id <= 32; id++ {
		s.Ensure(id)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := uint64(1 + (n*4+w)%32)
				s.Update(id, func(p *Player) error { p.step(id); return nil })
			}
		}()
	}
	var paths []string
	for range 5 {
		info, err := s.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, info.Path)
	}
	close(stop)
	wg.Wait()
	for _, p := range paths[len(paths)-3:] { // KeepSnapshots defaults to 3
		m, _, err := LoadSnapshot[Player](p, nil)
		if err != nil || len(m) != 32 {
			t.Fatalf("%s: %d players, %v", p, len(m), err)
		}
		for id, v := range m {
			if msg := v.consistent(id); msg != "" {
				t.Fatalf("snapshot has half an update of player %d: %s", id, msg)
			}
		}
	}
	left, _ := listSnapshots(opts.SnapshotDir, opts.Name)
	if len(left) != 3 || left[0] != paths[4] {
		t.Fatalf("kept %v, want the newest 3 of %v", left, paths)
	}
}

func TestRestoreMigratesOldSnapshot(t *testing.T) {
	opts := snapOptions(t, 100)
	seedV1(t, opts, 30)
	s, _ := mustOpen[PlayerV1](t, opts)
	if _, err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	shmpool.Remove(opts.ShmDir, opts.Name)
	s2, rep := mustOpen[PlayerV2](t, opts)
	defer s2.Close()
	if rep.How != Restored || !strings.Contains(rep.Diff, "+ Gems") {
		t.Fatalf("restore of a V1 snapshot as V2: %v\n%s", rep, rep.Diff)
	}
	checkV2(t, s2, 30)
}

func TestOpenWithoutAnything(t *testing.T) {
	opts := snapOptions(t, 10)
	s, rep := mustOpen[Player](t, opts)
	defer s.Close()
	if rep.How != Created || !strings.Contains(rep.Reason, "no valid snapshot") || !strings.Contains(rep.String(), "created") {
		t.Fatalf("%v", rep)
	}
	if _, _, err := Open[Player](Options{Name: "other", ShmDir: opts.ShmDir}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no segment, no capacity: %v", err)
	}
}
