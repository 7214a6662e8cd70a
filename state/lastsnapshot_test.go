package state

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logWatch is a slog handler that keeps the store's snapshot messages and
// wakes a waiting test on each one: the test learns that a periodic
// snapshot ran from the store's own log, not from sleeping.
type logWatch struct {
	mu   sync.Mutex
	msgs []string // message and attributes, one line each
	wake chan struct{}
}

func newLogWatch() *logWatch { return &logWatch{wake: make(chan struct{}, 1)} }

func (w *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *logWatch) WithGroup(string) slog.Handler            { return w }

func (w *logWatch) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "snapshot") {
		return nil
	}
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	w.mu.Lock()
	w.msgs = append(w.msgs, b.String())
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	return nil
}

// until blocks until cond holds, re-checking it after every snapshot
// message. The store records an outcome before it logs it, so no wake-up
// is missed; a store that never gets there hangs the test until go
// test's -timeout names it.
func (w *logWatch) until(cond func() bool) {
	for !cond() {
		<-w.wake
	}
}

func (w *logWatch) last(prefix string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.msgs) - 1; i >= 0; i-- {
		if strings.HasPrefix(w.msgs[i], prefix) {
			return w.msgs[i]
		}
	}
	return ""
}

// A periodic snapshot that cannot be written is logged, reported by
// LastSnapshot, and does not stop the store; the next good one clears the
// error; a later failure keeps reporting the last good snapshot. (Tests
// run as root, which ignores directory permissions: a regular file where
// the snapshot directory should be makes the write fail for anyone.)
func TestPeriodicSnapshotFailureAndLastSnapshot(t *testing.T) {
	const n = 5
	opts := snapOptions(t, 16)
	if err := os.WriteFile(opts.SnapshotDir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The segment exists (Open attaches it and never reads the snapshot
	// directory): a directory that breaks under a running host.
	s, _ := mustOpen[Player](t, Options{Name: opts.Name, ShmDir: opts.ShmDir, Capacity: opts.Capacity, Logger: quietLogger()})
	fill(t, s, n)
	s.Close()
	w := newLogWatch()
	opts.Logger = slog.New(w)
	opts.SnapshotEvery = time.Millisecond
	s, rep := mustOpen[Player](t, opts)
	defer s.Close()
	if rep.How != Attached {
		t.Fatalf("open: %v", rep)
	}

	// 1. Failing: reported, logged clearly, and the store still serves.
	w.until(func() bool { _, _, err := s.LastSnapshot(); return err != nil })
	info, at, err := s.LastSnapshot()
	if !errors.Is(err, syscall.ENOTDIR) || !strings.Contains(err.Error(), opts.SnapshotDir) {
		t.Fatalf("LastSnapshot error %v; want ENOTDIR naming %s", err, opts.SnapshotDir)
	}
	if info.Path != "" || !at.IsZero() {
		t.Fatalf("no snapshot was written, LastSnapshot says %+v at %v", info, at)
	}
	w.until(func() bool { return w.last("state: periodic snapshot failed") != "" })
	msg := w.last("state: periodic snapshot failed")
	for _, want := range []string{"still serving", "dir=" + opts.SnapshotDir, "not a directory", "consecutive_failures=", "last_good=none"} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure log %q does not say %q", msg, want)
		}
	}
	if err := s.Update(3, func(p *Player) error { p.Coins = 1000; return nil }); err != nil {
		t.Fatalf("Update while snapshots fail: %v", err)
	}
	if p, err := s.Get(3); err != nil || p.Coins != 1000 {
		t.Fatalf("Get while snapshots fail: %+v, %v", p.Coins, err)
	}
	s.Update(3, func(p *Player) error { p.Coins = 9; return nil }) // back to what fill wrote

	// 2. Repaired: the next tick writes a snapshot and clears the error.
	if err := os.Remove(opts.SnapshotDir); err != nil {
		t.Fatal(err)
	}
	w.until(func() bool { _, at, err := s.LastSnapshot(); return err == nil && !at.IsZero() })
	good, goodAt, err := s.LastSnapshot()
	if err != nil || good.Players != n || good.Created.After(goodAt) || good.Age < 0 {
		t.Fatalf("after a good snapshot: %+v at %v, %v", good, goodAt, err)
	}
	m, _, err := LoadSnapshot[Player](good.Path, nil)
	if err != nil {
		t.Fatalf("the snapshot LastSnapshot names: %v", err)
	}
	checkFilled(t, func(id uint64) (Player, error) { return m[id], nil }, n)

	// 3. Failing again: the error is back, the last good snapshot stays.
	// The periodic snapshot may be writing into the directory while it is
	// removed ("directory not empty"): remove again until it is gone.
	err = os.RemoveAll(opts.SnapshotDir)
	for tries := 0; errors.Is(err, syscall.ENOTEMPTY) && tries < 100; tries++ {
		err = os.RemoveAll(opts.SnapshotDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(opts.SnapshotDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w.until(func() bool { _, _, err := s.LastSnapshot(); return err != nil })
	last, lastAt, err := s.LastSnapshot()
	if !errors.Is(err, syscall.ENOTDIR) || last.Path == "" || last.Players != n || lastAt.IsZero() || lastAt.Before(goodAt) {
		t.Fatalf("failing after a success: %+v at %v, %v; want the last good snapshot and ENOTDIR", last, lastAt, err)
	}
	w.until(func() bool { return strings.Contains(w.last("state: periodic snapshot failed"), "last_good_age=") })
}

// Snapshot called directly is reported the same way.
func TestLastSnapshotAfterSnapshotCall(t *testing.T) {
	opts := snapOptions(t, 16)
	s, _ := mustOpen[Player](t, opts)
	defer s.Close()
	if info, at, err := s.LastSnapshot(); info.Path != "" || !at.IsZero() || err != nil {
		t.Fatalf("before any snapshot: %+v %v %v", info, at, err)
	}
	fill(t, s, 3)
	info, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	got, at, err := s.LastSnapshot()
	if err != nil || got.Path != info.Path || got.Players != 3 || at.Before(info.Created) {
		t.Fatalf("LastSnapshot %+v at %v, %v; Snapshot returned %+v", got, at, err, info)
	}
}
