package state

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
)

// Player is the test state: 256 bytes, with fields that let a test check
// that a whole record is from one commit (B == 2*A, Check, and an
// inventory derived from A).
type Player struct {
	A     int64
	B     int64
	Check uint64
	Coins int64
	Level int32
	HP    int32
	Name  [16]byte
	Inv   [24]Item
	Tail  uint64
}

type Item struct {
	ID    uint32
	Count uint32
}

// step makes p's next consistent value.
func (p *Player) step(id uint64) {
	p.A++
	p.B = 2 * p.A
	for i := range p.Inv {
		p.Inv[i] = Item{ID: uint32(i), Count: uint32(p.A) * uint32(i+1)}
	}
	p.Tail = uint64(p.A) ^ id
	p.Check = p.checksum(id)
}

func (p *Player) checksum(id uint64) uint64 {
	return mix(id ^ uint64(p.A)*31 ^ uint64(p.B)*17 ^ p.Tail)
}

// consistent reports what is wrong with p, or "".
func (p *Player) consistent(id uint64) string {
	if p.B != 2*p.A {
		return fmt.Sprintf("B %d != 2*A %d", p.B, p.A)
	}
	if p.A == 0 && p.Check == 0 {
		return "" // never updated
	}
	if p.Check != p.checksum(id) || p.Tail != uint64(p.A)^id {
		return fmt.Sprintf("check %x tail %x for A %d", p.Check, p.Tail, p.A)
	}
	for i := range p.Inv {
		if p.Inv[i].Count != uint32(p.A)*uint32(i+1) {
			return fmt.Sprintf("Inv[%d] = %d for A %d", i, p.Inv[i].Count, p.A)
		}
	}
	return ""
}

// shmDir is a fresh directory under /dev/shm for one test, removed after
// it, so parallel test binaries never share a segment.
func shmDir(t testing.TB) string {
	t.Helper()
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	root := "/dev/shm"
	if r := os.Getenv("HOTHOST_TEST_SHM_ROOT"); r != "" { // e.g. a tmpfs mounted with huge=within_size
		root = r
	}
	d := fmt.Sprintf("%s/hothost-test-%d-%s", root, os.Getpid(), name)
	os.RemoveAll(d)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testOptions(t testing.TB, capacity int) Options {
	return Options{Name: "players", ShmDir: shmDir(t), Capacity: capacity, Logger: quietLogger()}
}

func mustOpen[T any](t testing.TB, opts Options) (*Store[T], *OpenReport) {
	t.Helper()
	s, rep, err := Open[T](opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, rep
}
