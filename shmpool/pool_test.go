package shmpool_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/hothost/hothost/shmpool"
)

type player struct {
	ID        uint64
	Coin      int64
	X, Y      float32
	Level     uint16
	Inventory [8]item
	Name      [16]byte
}

type item struct {
	Kind  uint32
	Count int32
}

func TestCreateCloseAttach(t *testing.T) {
	dir := shmDir(t)
	p, err := shmpool.Open[player]("pool", shmpool.Options{Dir: dir, Capacity: 16})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Info().How; got != shmpool.Created {
		t.Fatalf("How = %v, want created", got)
	}
	st, err := os.Stat(filepath.Join(dir, "pool"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("segment mode %v, want 0600", st.Mode().Perm())
	}
	h, v, err := p.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	v.ID, v.Coin, v.Inventory[3].Count = 42, 1000, 7
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	p, err = shmpool.Open[player]("pool", shmpool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	info := p.Info()
	if info.How != shmpool.AttachedClean || info.AttachCount != 2 || info.PrevOwnerPID != os.Getpid() {
		t.Fatalf("info = %+v, want clean attach #2 by pid %d", info, os.Getpid())
	}
	got, err := p.Get(h)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != 42 || got.Coin != 1000 || got.Inventory[3].Count != 7 {
		t.Fatalf("value after reattach = %+v", got)
	}
	if p.Len() != 1 || p.Cap() != 16 {
		t.Fatalf("Len %d Cap %d, want 1 and 16", p.Len(), p.Cap())
	}
}

func TestStaleHandleFullPoolReuse(t *testing.T) {
	p, err := shmpool.Open[player]("pool", shmpool.Options{Dir: shmDir(t), Capacity: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var hs []shmpool.Handle
	for range 3 {
		h, _, err := p.Alloc()
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if _, _, err := p.Alloc(); !errors.Is(err, shmpool.ErrFull) {
		t.Fatalf("Alloc on a full pool: %v, want ErrFull", err)
	}
	v, _ := p.Get(hs[1])
	v.Coin = 99
	if err := p.Free(hs[1]); err != nil {
		t.Fatal(err)
	}
	if err := p.Free(hs[1]); !errors.Is(err, shmpool.ErrStaleHandle) {
		t.Fatalf("double free: %v, want ErrStaleHandle", err)
	}
	h, v, err := p.Alloc()
	if err != nil {
		t.Fatal(err)
	}
	if h.Index() != hs[1].Index() || h.Generation() == hs[1].Generation() {
		t.Fatalf("reused slot %v after freeing %v: want same index, new generation", h, hs[1])
	}
	if v.Coin != 0 {
		t.Fatalf("reused slot not zeroed: coin %d", v.Coin)
	}
	if _, err := p.Get(hs[1]); !errors.Is(err, shmpool.ErrStaleHandle) {
		t.Fatalf("Get(stale) = %v, want ErrStaleHandle", err)
	}
	if _, err := p.Get(shmpool.Handle(0)); !errors.Is(err, shmpool.ErrStaleHandle) {
		t.Fatalf("Get(0) = %v, want ErrStaleHandle", err)
	}
	if _, err := p.Get(shmpool.Handle(1<<32 | 1000)); !errors.Is(err, shmpool.ErrStaleHandle) {
		t.Fatalf("Get(out of range) = %v, want ErrStaleHandle", err)
	}
	n := 0
	for h, v := range p.All() {
		if _, err := p.Get(h); err != nil || v == nil {
			t.Fatalf("All yielded dead handle %v: %v", h, err)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("All yielded %d slots, want 3", n)
	}
}

func TestSecondOwnerRefused(t *testing.T) {
	dir := shmDir(t)
	p, err := shmpool.Open[player]("pool", shmpool.Options{Dir: dir, Capacity: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = shmpool.Open[player]("pool", shmpool.Options{Dir: dir, Capacity: 4})
	if !errors.Is(err, shmpool.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if want := "pid " + strconv.Itoa(os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name the owner (%s)", err, want)
	}
	if err := shmpool.Remove(dir, "pool"); !errors.Is(err, shmpool.ErrLocked) {
		t.Fatalf("Remove of an owned segment: %v, want ErrLocked", err)
	}
}

func TestPointerTypesRefused(t *testing.T) {
	type named struct{ Name string }
	type bag struct {
		Coins     int64
		Inventory [4]named
	}
	cases := []struct {
		open func() error
		want string
	}{
		{func() error {
			_, err := shmpool.Open[bag]("x", shmpool.Options{Dir: t.TempDir(), Capacity: 1})
			return err
		}, "bag.Inventory[].Name: string"},
		{func() error {
			_, err := shmpool.Open[struct{ P *int64 }]("x", shmpool.Options{Dir: t.TempDir(), Capacity: 1})
			return err
		}, ".P: *int64"},
		{func() error {
			_, err := shmpool.Open[struct{ S []byte }]("x", shmpool.Options{Dir: t.TempDir(), Capacity: 1})
			return err
		}, ".S: []uint8"},
		{func() error {
			_, err := shmpool.Open[struct{ M map[int32]int32 }]("x", shmpool.Options{Dir: t.TempDir(), Capacity: 1})
			return err
		}, ".M: map[int32]int32"},
		{func() error {
			_, err := shmpool.Open[struct{ I any }]("x", shmpool.Options{Dir: t.TempDir(), Capacity: 1})
			return err
		}, ".I: interface {}"},
		{func() error {
			_, err := shmpool.Open[struct{ C chan int32 }]("x", shmpool.Options{Dir: t.TempDir(), Capacity: 1})
			return err
		}, ".C: chan int32"},
		{func() error {
			_, err := shmpool.Open[struct{ F func() }]("x", shmpool.Options{Dir: t.TempDir(), Capacity: 1})
			return err
		}, ".F: func()"},
		{func() error {
			_, err := shmpool.Open[struct{ N int }]("x", shmpool.Options{Dir: t.TempDir(), Capacity: 1})
			return err
		}, ".N: int has a platform-dependent size"},
	}
	for _, c := range cases {
		err := c.open()
		if !errors.Is(err, shmpool.ErrPointer) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open: %v, want ErrPointer naming %q", err, c.want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	type a struct {
		Coin int64
		X    int64
	}
	type swapped struct {
		X    int64
		Coin int64
	}
	type added struct {
		Coin int64
		X    int64
		Y    int64
	}
	type arr struct{ Inv [4]int32 }
	type arrLonger struct{ Inv [5]int32 }
	fp := func(v any) [32]byte {
		t.Helper()
		l, err := shmpool.Describe(reflect.TypeOf(v))
		if err != nil {
			t.Fatal(err)
		}
		return l.Fingerprint()
	}
	type renamedType struct {
		Coin int64
		X    int64
	}
	if fp(a{}) == fp(swapped{}) || fp(a{}) == fp(added{}) || fp(arr{}) == fp(arrLonger{}) {
		t.Fatal("reordered, added or lengthened layouts share a fingerprint")
	}
	if fp(a{}) != fp(renamedType{}) {
		t.Fatal("renaming the Go type changed the fingerprint; no byte moved")
	}
}

func TestLayoutMismatchRefused(t *testing.T) {
	type v1 struct {
		Coin int64
		X    int64
	}
	type v2 struct { // the classic: two fields swapped
		X    int64
		Coin int64
	}
	type v3 struct {
		Coin int64
		X    int64
		Y    int64
	}
	dir := shmDir(t)
	p, err := shmpool.Open[v1]("pool", shmpool.Options{Dir: dir, Capacity: 4})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if _, err := shmpool.Open[v2]("pool", shmpool.Options{Dir: dir}); !errors.Is(err, shmpool.ErrLayout) {
		t.Fatalf("reordered fields: %v, want ErrLayout", err)
	}
	if _, err := shmpool.Open[v3]("pool", shmpool.Options{Dir: dir}); !errors.Is(err, shmpool.ErrLayout) {
		t.Fatalf("added field: %v, want ErrLayout", err)
	}
	if _, err := shmpool.Open[v1]("pool", shmpool.Options{Dir: dir, Capacity: 5}); !errors.Is(err, shmpool.ErrLayout) {
		t.Fatalf("other capacity: %v, want ErrLayout", err)
	}
	// The raw view still reads the old segment, for migration.
	r, err := shmpool.OpenRaw("pool", shmpool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if f := r.Layout().Type.Fields; len(f) != 2 || f[0].Name != "Coin" || f[1].Name != "X" {
		t.Fatalf("stored layout fields = %+v", f)
	}
}

func TestAttachOnlyMissing(t *testing.T) {
	_, err := shmpool.Open[player]("none", shmpool.Options{Dir: shmDir(t), AttachOnly: true})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("AttachOnly on a missing segment: %v, want os.ErrNotExist", err)
	}
}

func TestBadNames(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "../x"} {
		if _, err := shmpool.Open[player](name, shmpool.Options{Dir: t.TempDir(), Capacity: 1}); err == nil {
			t.Errorf("Open(%q) succeeded", name)
		}
	}
}

func TestSymlinkRefused(t *testing.T) {
	dir := shmDir(t)
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := shmpool.Open[player]("link", shmpool.Options{Dir: dir, Capacity: 1}); err == nil || !strings.Contains(err.Error(), "too many levels of symbolic links") {
		t.Fatalf("Open through a symlink: %v, want ELOOP (O_NOFOLLOW)", err)
	}
}

// AllocNoted names the slot before it is in use, and FreeNoted's note runs
// once it is free again: the two instants a journal above must cover.
func TestAllocFreeNoted(t *testing.T) {
	p, err := shmpool.Open[player]("pool", shmpool.Options{Dir: shmDir(t), Capacity: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	noted, liveInNote := -1, true
	h, v, err := p.AllocNoted(func(slot int) {
		noted = slot
		_, _, liveInNote = p.Lookup(slot)
	})
	if err != nil {
		t.Fatal(err)
	}
	if noted != h.Index() || liveInNote {
		t.Fatalf("note saw slot %d (live %v); Alloc returned %v: want the same slot, not yet in use", noted, liveInNote, h)
	}
	v.Coin = 5
	freed, liveInNote := false, true
	if err := p.FreeNoted(h, func() { freed = true; _, _, liveInNote = p.Lookup(h.Index()) }); err != nil {
		t.Fatal(err)
	}
	if !freed || liveInNote {
		t.Fatalf("FreeNoted: note called %v, slot live in note %v; want called on a free slot", freed, liveInNote)
	}
	if err := p.FreeNoted(h, func() { t.Fatal("note called for a stale handle") }); !errors.Is(err, shmpool.ErrStaleHandle) {
		t.Fatalf("FreeNoted(stale) = %v, want ErrStaleHandle", err)
	}
}
