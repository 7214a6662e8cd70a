package loader_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
	"github.com/hothost/hothost/loader/sidecar"
)

// TestStatefulRefusedByBuild: the build tool refuses a plugin with a
// package-level counter, naming file and line, and writes no .so.
func TestStatefulRefusedByBuild(t *testing.T) {
	s := spec{tmpl: "stateful", name: "stateful", version: "1.0.0"}
	src, err := genSource(s)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res, err := exec.Command(hhbuild, "-src", src, "-name", s.name, "-version", s.version, "-out", out).CombinedOutput()
	if err == nil {
		t.Fatalf("hhbuild built a stateful plugin:\n%s", res)
	}
	want := filepath.Join(src, "main.go") + ":13:5: package-level variable calls is state kept between calls"
	if !strings.Contains(string(res), want) {
		t.Fatalf("hhbuild output does not name the file and line (%q):\n%s", want, res)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Fatalf("hhbuild left %d files in -out", len(ents))
	}
}

// TestHalfWrittenFile: a plugin copied slowly, its sidecar already in
// place, is not opened while it grows; a writer that stalls across two
// polls gets a checksum rejection (nothing opened) and the finished file is
// then loaded. A complete file without its sidecar waits for the sidecar.
func TestHalfWrittenFile(t *testing.T) {
	so := buildAll(t, spec{tmpl: "coin", name: "coin", version: "5.0.0"}, spec{tmpl: "shop", name: "shop", version: "1.0.0"})
	l := newLoader(t, loader.Options{})
	dir := l.Dir()
	data, err := os.ReadFile(so[0])
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(so[0]))
	copyFile(t, so[0]+sidecar.SumSuffix, dst+sidecar.SumSuffix)
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	piece := len(data)/4 + 1
	for off := 0; off < len(data); off += piece {
		if off > 0 {
			if err := poll(t, l); err != nil {
				t.Fatalf("poll at %d of %d bytes: %v", off, len(data), err)
			}
			if n := len(l.Versions()); n != 0 {
				t.Fatalf("at %d of %d bytes the loader already has %d history lines: %+v", off, len(data), n, l.Versions())
			}
			if _, ok := l.Current().Lookup("work"); ok {
				t.Fatalf("a partial file is serving at %d of %d bytes", off, len(data))
			}
		}
		if _, err := f.Write(data[off:min(off+piece, len(data)-1)]); err != nil {
			t.Fatal(err)
		}
	}
	// The writer stalls one byte short: two polls see the same size and mtime.
	for i := 0; i < 2; i++ {
		poll(t, l)
	}
	vi, ok := info(l, "coin", "5.0.0")
	if !ok || vi.State != loader.StateRejected || !errors.Is(vi.Err, loader.ErrChecksum) {
		t.Fatalf("stalled partial file: %+v, want a checksum rejection", vi)
	}
	if _, ok := l.Current().Lookup("work"); ok {
		t.Fatal("a partial file is serving")
	}
	if _, err := f.Write(data[len(data)-1:]); err != nil {
		t.Fatal(err)
	}
	if err := poll(t, l); err != nil {
		t.Fatal(err)
	}
	if got := l.Current().Modules()["coin"]; got != "5.0.0" {
		t.Fatalf("finished file not active: coin %q; history %+v", got, l.Versions())
	}

	// A complete .so without its sidecar is not considered, however long.
	shop := filepath.Join(dir, filepath.Base(so[1]))
	copyFile(t, so[1], shop)
	for i := 0; i < 3; i++ {
		if err := poll(t, l); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := info(l, "shop", "1.0.0"); ok {
		t.Fatal("shop considered before its sidecar arrived")
	}
	copyFile(t, so[1]+sidecar.SumSuffix, shop+sidecar.SumSuffix)
	if err := poll(t, l); err != nil {
		t.Fatal(err)
	}
	mods := l.Current().Modules()
	if mods["shop"] != "1.0.0" || mods["coin"] != "5.0.0" {
		t.Fatalf("modules %v, want coin 5.0.0 and shop 1.0.0", mods)
	}
}

// TestPinActivateRollback: several modules versioned independently; pins
// hold a version against newer files; Activate and Rollback move between
// loaded versions; message indices are stable across tables; a table
// loaded before swaps still calls the version it had; a path already opened
// is never opened again even when its content changes; a module may not
// take another module's message.
func TestPinActivateRollback(t *testing.T) {
	so := buildAll(t,
		spec{tmpl: "coin", name: "coin", version: "6.0.0"},
		spec{tmpl: "coin", name: "coin", version: "6.1.0"},
		spec{tmpl: "coin", name: "coin", version: "6.2.0"},
		spec{tmpl: "shop", name: "shop", version: "6.0.0"},
		spec{tmpl: "thief", name: "thief", version: "6.0.0"},
	)
	var events []loader.Event
	l := newLoader(t, loader.Options{OnEvent: func(e loader.Event) { events = append(events, e) }})
	dir := l.Dir()
	install(t, dir, so[0])
	install(t, dir, so[3])
	if err := poll(t, l); err != nil {
		t.Fatal(err)
	}
	t0 := l.Current()
	work := mustIndex(t, l, "work")
	buy := mustIndex(t, l, "buy")
	expect := func(coin string) {
		t.Helper()
		cur := l.Current()
		if m := cur.Modules(); m["coin"] != coin || m["shop"] != "6.0.0" {
			t.Fatalf("modules %v, want coin %s and shop 6.0.0", m, coin)
		}
		if i, _ := cur.Index("work"); i != work {
			t.Fatalf("index of work moved from %d to %d", work, i)
		}
		var log []string
		c := &abi.Call{State: &log}
		if err := cur.At(work).Call(c); err != nil || c.ReplyText() != coin {
			t.Fatalf("work: %v, reply %q, want %s", err, c.ReplyText(), coin)
		}
		c = &abi.Call{}
		if err := cur.At(buy).Call(c); err != nil || c.ReplyText() != "shop 6.0.0" {
			t.Fatalf("buy: %v, reply %q", err, c.ReplyText())
		}
	}
	expect("6.0.0")

	if err := l.Pin("coin", "6.0.0"); err != nil {
		t.Fatal(err)
	}
	install(t, dir, so[1])
	if err := poll(t, l); err != nil {
		t.Fatal(err)
	}
	expect("6.0.0")
	if vi, _ := info(l, "coin", "6.1.0"); vi.State != loader.StateStandby || !strings.Contains(vi.Reason, "pinned") {
		t.Fatalf("6.1.0 while pinned: %+v", vi)
	}
	if err := l.Activate("coin", "6.1.0"); !errors.Is(err, loader.ErrPinned) {
		t.Fatalf("Activate while pinned: %v, want ErrPinned", err)
	}
	if err := l.Rollback("coin"); !errors.Is(err, loader.ErrPinned) {
		t.Fatalf("Rollback while pinned: %v, want ErrPinned", err)
	}
	if err := l.Unpin("coin"); err != nil {
		t.Fatal(err)
	}
	expect("6.0.0") // Unpin alone changes nothing

	install(t, dir, so[2])
	if err := poll(t, l); err != nil {
		t.Fatal(err)
	}
	expect("6.2.0")
	if err := l.Activate("coin", "6.1.0"); err != nil {
		t.Fatal(err)
	}
	expect("6.1.0")
	if err := l.Rollback("coin"); err != nil {
		t.Fatal(err)
	}
	expect("6.2.0")
	if vi, _ := info(l, "coin", "6.1.0"); vi.State != loader.StateRolledBack {
		t.Fatalf("6.1.0 after rollback: %q", vi.State)
	}
	if err := l.Activate("coin", "7.0.0"); !errors.Is(err, loader.ErrNotLoaded) {
		t.Fatalf("Activate of an unknown version: %v", err)
	}

	// The first table still runs what it had: in-flight requests finish on it.
	var log []string
	c := &abi.Call{State: &log}
	if err := t0.At(work).Call(c); err != nil || c.ReplyText() != "6.0.0" {
		t.Fatalf("old table: %v, reply %q", err, c.ReplyText())
	}

	// Overwriting an opened path: never opened again (Go would hand back the
	// old plugin silently).
	n := len(l.Versions())
	over := filepath.Join(dir, "coin-6.1.0.so")
	for _, suffix := range []string{"", sidecar.SumSuffix} {
		b, err := os.ReadFile(so[2] + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := sidecar.WriteFileAtomic(over+suffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := poll(t, l); err != nil {
		t.Fatal(err)
	}
	if m := len(l.Versions()); m != n {
		t.Fatalf("an overwritten, already opened path was considered again (%d new history lines)", m-n)
	}

	// A message belongs to one module.
	install(t, dir, so[4])
	if err := poll(t, l); !errors.Is(err, loader.ErrConflict) {
		t.Fatalf("thief taking coin's message: %v, want ErrConflict", err)
	}
	expect("6.2.0")

	// Unknown messages.
	if _, ok := l.Current().Lookup("nope"); ok {
		t.Fatal("Lookup of an unknown message succeeded")
	}
	if err := l.Current().At(1 << 20).Call(&abi.Call{}); !errors.Is(err, loader.ErrUnknownMessage) {
		t.Fatalf("At out of range: %v", err)
	}
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, string(e.Kind))
	}
	for _, k := range []loader.EventKind{loader.EventActivated, loader.EventLoaded, loader.EventPinned,
		loader.EventUnpinned, loader.EventRolledBack, loader.EventRejected} {
		if !strings.Contains(strings.Join(kinds, ","), string(k)) {
			t.Errorf("no %q event among %v", k, kinds)
		}
	}
}

// TestNewerVersionDroppingAMessageWaits: a newer version that no longer
// handles a message of the active one is loaded on standby, with the reason
// naming the message, and becomes active only by an explicit Activate.
func TestNewerVersionDroppingAMessageWaits(t *testing.T) {
	so := buildAll(t, spec{tmpl: "coin", name: "coin", version: "7.0.0"}, spec{tmpl: "coinlite", name: "coin", version: "7.1.0"})
	l := newLoader(t, loader.Options{})
	install(t, l.Dir(), so[0])
	if err := poll(t, l); err != nil {
		t.Fatal(err)
	}
	install(t, l.Dir(), so[1])
	if err := poll(t, l); err != nil {
		t.Fatal(err)
	}
	if got := l.Current().Modules()["coin"]; got != "7.0.0" {
		t.Fatalf("coin is %q: a version dropping echo took over by itself", got)
	}
	vi, _ := info(l, "coin", "7.1.0")
	if vi.State != loader.StateStandby || !strings.Contains(vi.Reason, "drops echo") {
		t.Fatalf("7.1.0: %+v, want standby naming echo", vi)
	}
	if err := l.Activate("coin", "7.1.0"); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Current().Lookup("echo"); ok {
		t.Fatal("echo still handled after activating the version that dropped it")
	}
}
