package state

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// PlayerV1 is the state as an old build stored it.
type PlayerV1 struct {
	Coins int32
	Name  [8]byte
	Level uint16
	Pos   PosV1
	Old   uint32
	Inv   [4]ItemV1
}

type PosV1 struct{ X, Y int32 }

type ItemV1 struct {
	ID    uint16
	Count uint16
}

// PlayerV2 changes V1 in every compatible way at once: a field added at
// the front, Coins widened, Name lengthened, Level moved after Pos, a
// field added inside Pos, Old removed, Inv lengthened with its element's
// fields reordered and Count widened.
type PlayerV2 struct {
	Gems  int64
	Coins int64
	Name  [16]byte
	Pos   PosV2
	Level uint32
	Inv   [8]ItemV2
}

type PosV2 struct{ X, Y, Z int32 }

type ItemV2 struct {
	Count uint32
	ID    uint16
}

// PlayerBad narrows Coins: not automatic.
type PlayerBad struct {
	Coins int16
	Name  [8]byte
	Level uint16
	Pos   PosV1
	Inv   [4]ItemV1
}

// PlayerFloat turns an integer into a float: not automatic either.
type PlayerFloat struct {
	Coins float64
	Name  [8]byte
}

func v1Value(id uint64) PlayerV1 {
	p := PlayerV1{Coins: int32(id) * -3, Level: uint16(id % 90), Pos: PosV1{int32(id), -int32(id)}, Old: 7}
	copy(p.Name[:], "p"+string(rune('a'+id%26)))
	for i := range p.Inv {
		p.Inv[i] = ItemV1{ID: uint16(id) + uint16(i), Count: uint16(i * 10)}
	}
	return p
}

// seedV1 makes a segment of n PlayerV1 players and closes it, as the old
// build would have left it.
func seedV1(t *testing.T, opts Options, n int) {
	t.Helper()
	s, _ := mustOpen[PlayerV1](t, opts)
	for id := uint64(1); id <= uint64(n); id++ {
		s.Ensure(id)
		if err := s.Update(id, func(p *PlayerV1) error { *p = v1Value(id); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func checkV2(t *testing.T, s *Store[PlayerV2], n int) {
	t.Helper()
	if s.Len() != n {
		t.Fatalf("%d players after migration, want %d", s.Len(), n)
	}
	for id := uint64(1); id <= uint64(n); id++ {
		old := v1Value(id)
		p, err := s.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if p.Gems != 0 || p.Coins != int64(old.Coins) || p.Level != uint32(old.Level) ||
			p.Pos != (PosV2{old.Pos.X, old.Pos.Y, 0}) || string(p.Name[:8]) != string(old.Name[:]) || p.Name[8] != 0 {
			t.Fatalf("player %d: %+v from %+v", id, p, old)
		}
		for i := range p.Inv {
			want := ItemV2{}
			if i < len(old.Inv) {
				want = ItemV2{Count: uint32(old.Inv[i].Count), ID: old.Inv[i].ID}
			}
			if p.Inv[i] != want {
				t.Fatalf("player %d Inv[%d] = %+v, want %+v", id, i, p.Inv[i], want)
			}
		}
	}
}

func TestMigrateCompatible(t *testing.T) {
	opts := testOptions(t, 500)
	seedV1(t, opts, 300)
	s, rep := mustOpen[PlayerV2](t, opts)
	defer s.Close()
	if rep.How != Migrated {
		t.Fatalf("open as V2: %v", rep)
	}
	for _, want := range []string{"+ Gems", "Coins", "int32 -> int64 widened", "Name", "lengthened", "~ Level", "moved",
		"+ Pos.Z", "- Old", "Inv[].Count", "uint16 -> uint32"} {
		if !strings.Contains(rep.Diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, rep.Diff)
		}
	}
	checkV2(t, s, 300)
	// The migrated segment is the segment now: a restart attaches it.
	s.Close()
	s, rep = mustOpen[PlayerV2](t, opts)
	if rep.How != Attached {
		t.Fatalf("reopen: %v", rep)
	}
	checkV2(t, s, 300)
	if _, err := os.Stat(filepath.Join(opts.ShmDir, ".players.building")); !os.IsNotExist(err) {
		t.Fatalf("temporary segment left behind: %v", err)
	}
}

func TestMigrateIncompatibleRefused(t *testing.T) {
	opts := testOptions(t, 50)
	seedV1(t, opts, 10)
	_, _, err := Open[PlayerBad](opts)
	if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "Coins") || !strings.Contains(err.Error(), "int32 -> int16") {
		t.Fatalf("narrowing Coins: %v; want ErrIncompatible naming Coins", err)
	}
	_, _, err = Open[PlayerFloat](opts)
	if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "Coins") || !strings.Contains(err.Error(), "int32 -> float64") {
		t.Fatalf("int -> float: %v", err)
	}
	// Refusing touched nothing: the old build still attaches its data.
	s, rep := mustOpen[PlayerV1](t, opts)
	defer s.Close()
	if p, _ := s.Get(4); p != v1Value(4) || rep.Players != 10 {
		t.Fatalf("after refusals: %+v, %v", p, rep)
	}
}

func TestMigrateFuncApplied(t *testing.T) {
	opts := testOptions(t, 50)
	seedV1(t, opts, 20)
	fp, err := Fingerprint[PlayerV1]()
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	opts.Migrations = map[[32]byte]MigrateFunc{fp: func(old Record, new any) error {
		calls++
		p := new.(*PlayerBad)
		coins, ok := old.Int("Coins")
		if !ok {
			return errors.New("no Coins")
		}
		p.Coins = int16(coins / 10) // the game decides how to narrow
		if x, ok := old.Int("Pos.X"); !ok || int32(x) != p.Pos.X {
			return errors.New("Pos.X was not carried over automatically")
		}
		if c, ok := old.Uint("Inv[2].Count"); !ok || c != 20 {
			return errors.New("Inv[2].Count not readable by path")
		}
		return nil
	}}
	s, rep := mustOpen[PlayerBad](t, opts)
	defer s.Close()
	if rep.How != Migrated || calls != 20 || !strings.Contains(rep.Reason, "MigrateFunc") {
		t.Fatalf("%v after %d calls", rep, calls)
	}
	for id := uint64(1); id <= 20; id++ {
		old := v1Value(id)
		p, _ := s.Get(id)
		if p.Coins != int16(old.Coins/10) || p.Level != old.Level || p.Inv != old.Inv || p.Name != old.Name {
			t.Fatalf("player %d = %+v from %+v", id, p, old)
		}
	}
}

func TestMigrateFuncErrorKeepsOldSegment(t *testing.T) {
	opts := testOptions(t, 50)
	seedV1(t, opts, 20)
	fp, _ := Fingerprint[PlayerV1]()
	opts.Migrations = map[[32]byte]MigrateFunc{fp: func(old Record, new any) error {
		if old.ID() == 17 {
			panic("bad data")
		}
		return nil
	}}
	if _, _, err := Open[PlayerBad](opts); !errors.Is(err, ErrPanic) || !strings.Contains(err.Error(), "17") {
		t.Fatalf("panicking MigrateFunc: %v", err)
	}
	opts.Migrations = nil
	s, _ := mustOpen[PlayerV1](t, opts)
	defer s.Close()
	if s.Len() != 20 {
		t.Fatalf("old segment has %d players", s.Len())
	}
}

// TestKillDuringMigration kills a child half way through migrating and
// checks that the old build still finds all its data, and that the next
// migration completes.
func TestKillDuringMigration(t *testing.T) {
	opts := testOptions(t, 500)
	seedV1(t, opts, 200)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=migrate-stop", dirEnv+"="+opts.ShmDir)
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "migrating\n" {
		cmd.Process.Kill()
		t.Fatalf("child said %q, %v", line, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	var ee *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("migrating child ended with %v, want killed by SIGKILL", err)
	}
	if _, err := os.Stat(filepath.Join(opts.ShmDir, ".players.building")); err != nil {
		t.Fatalf("the child was not killed half way through a build: %v", err)
	}

	s, rep := mustOpen[PlayerV1](t, opts)
	if rep.Players != 200 || (rep.Recovery != nil && rep.Recovery.Lost != 0) {
		t.Fatalf("old segment after killed migration: %v", rep)
	}
	for id := uint64(1); id <= 200; id++ {
		if p, err := s.Get(id); err != nil || p != v1Value(id) {
			t.Fatalf("player %d = %+v, %v", id, p, err)
		}
	}
	s.Close()
	s2, rep := mustOpen[PlayerV2](t, opts)
	defer s2.Close()
	if rep.How != Migrated {
		t.Fatalf("second migration: %v", rep)
	}
	checkV2(t, s2, 200)
}

func TestCapacityGrowth(t *testing.T) {
	opts := testOptions(t, 10)
	seedV1(t, opts, 10)
	opts.Capacity = 1000
	s, rep := mustOpen[PlayerV1](t, opts)
	defer s.Close()
	if rep.How != Migrated || rep.Capacity != 1000 || rep.Players != 10 {
		t.Fatalf("grow: %v", rep)
	}
	if _, err := s.Ensure(11); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Get(3); p != v1Value(3) {
		t.Fatalf("player 3 = %+v", p)
	}
}

// A migration from a segment whose owner died applies its journal on the
// fly: the torn update is rolled back in the new segment, the old one is
// never written.
func TestMigrateAfterCrash(t *testing.T) {
	dir := shmDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=torn-update", dirEnv+"="+dir)
	cmd.Run()
	s, rep := mustOpen[PlayerWide](t, Options{Name: "players", ShmDir: dir, Logger: quietLogger()})
	defer s.Close()
	if rep.How != Migrated || rep.Recovery == nil || rep.Recovery.Repaired != 1 || rep.Recovery.Lost != 0 {
		t.Fatalf("migrate after crash: %v", rep)
	}
	p, _ := s.Get(1)
	if p.A != 3 || p.B != 6 || p.Coins != 0 || p.Extra != 0 {
		t.Fatalf("player 1 = %+v; want the third commit", p)
	}
}

// PlayerWide is Player with one more field. (Embedding Player would not
// do: the embedded struct is one field named Player, so by field name
// every old field would be removed and a new one added.)
type PlayerWide struct {
	A     int64
	B     int64
	Check uint64
	Coins int64
	Level int32
	HP    int32
	Name  [16]byte
	Inv   [24]Item
	Tail  uint64
	Extra int64
}
