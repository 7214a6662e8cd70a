package loader_test

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
)

// TestSwapUnderLoad: v1 -> v2 -> v1 (by Rollback) while 8 goroutines call
// continuously. No call fails, every request runs entirely on one version
// (two messages through the table it loaded, the handler's own begin/end
// marks), each phase is observed by the callers, and nothing is left in
// flight.
func TestSwapUnderLoad(t *testing.T) {
	so := buildAll(t, spec{tmpl: "coin", name: "coin", version: "1.0.0"}, spec{tmpl: "coin", name: "coin", version: "2.0.0"})
	l := newLoader(t, loader.Options{})
	dir := l.Dir()
	install(t, dir, so[0])
	if err := poll(t, l); err != nil {
		t.Fatal(err)
	}
	if got := l.Current().Modules()["coin"]; got != "1.0.0" {
		t.Fatalf("after first poll coin is %q, want 1.0.0", got)
	}
	work, ok := l.Current().Index("work")
	if !ok {
		t.Fatal("no index for work")
	}

	var (
		stop     atomic.Bool
		perVer   sync.Map // version -> *atomic.Int64 of calls
		failures = make(chan error, 8)
		wg       sync.WaitGroup
	)
	count := func(v string) *atomic.Int64 {
		c, _ := perVer.LoadOrStore(v, new(atomic.Int64))
		return c.(*atomic.Int64)
	}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if err := request(l, work, count); err != nil {
					failures <- err
					return
				}
			}
		}()
	}
	// waitFor spins (yielding, no sleeps) until version v has served n more calls.
	waitFor := func(v string, n int64) {
		c := count(v)
		target := c.Load() + n
		for c.Load() < target {
			select {
			case err := <-failures:
				t.Fatal(err)
			default:
				runtime.Gosched()
			}
		}
	}

	waitFor("1.0.0", 1000)
	install(t, dir, so[1])
	if err := poll(t, l); err != nil {
		t.Fatal(err)
	}
	if got := l.Current().Modules()["coin"]; got != "2.0.0" {
		t.Fatalf("after v2 landed coin is %q, want 2.0.0", got)
	}
	waitFor("2.0.0", 1000)
	if err := l.Rollback("coin"); err != nil {
		t.Fatal(err)
	}
	if got := l.Current().Modules()["coin"]; got != "1.0.0" {
		t.Fatalf("after rollback coin is %q, want 1.0.0", got)
	}
	v1Before := count("1.0.0").Load()
	waitFor("1.0.0", 1000)
	stop.Store(true)
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Fatal(err)
	}
	if count("1.0.0").Load() <= v1Before {
		t.Fatal("v1 served no call after the rollback")
	}
	for _, vi := range l.Versions() {
		if vi.InFlight != 0 {
			t.Errorf("%s %s: %d calls still in flight after all callers stopped", vi.Module, vi.Version, vi.InFlight)
		}
		if vi.Panics != 0 || vi.Errors != 0 {
			t.Errorf("%s %s: %d panics, %d errors", vi.Module, vi.Version, vi.Panics, vi.Errors)
		}
		// Each request is two Entry.Calls: the per-P counters lose none.
		if want := 2 * count(vi.Version).Load(); vi.Calls != want {
			t.Errorf("%s %s: %d calls counted, the callers made %d", vi.Module, vi.Version, vi.Calls, want)
		}
	}
	v2, _ := info(l, "coin", "2.0.0")
	if v2.State != loader.StateRolledBack || v2.Calls < 1000 {
		t.Errorf("v2 history: state %q calls %d, want rolled back with >= 1000 calls", v2.State, v2.Calls)
	}
	v1, _ := info(l, "coin", "1.0.0")
	if v1.State != loader.StateActive {
		t.Errorf("v1 state %q, want active", v1.State)
	}
	t.Logf("calls: v1 %d, v2 %d", v1.Calls, v2.Calls)
}

// request is one client request: one table load, two messages through it.
// Both replies and the handler's begin/end marks must name the version the
// table said.
func request(l *loader.Loader, work int, count func(string) *atomic.Int64) error {
	t := l.Current()
	e := t.At(work)
	echo, ok := t.Lookup("echo")
	if !e.Valid() || !ok {
		return errors.New("work or echo missing from the current table")
	}
	var log []string
	c := &abi.Call{Msg: "work", State: &log}
	if err := e.Call(c); err != nil {
		return fmt.Errorf("work: %w", err)
	}
	c2 := &abi.Call{Msg: "echo"}
	if err := echo.Call(c2); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	v := e.Version()
	if c.ReplyText() != v || c2.ReplyText() != v || echo.Version() != v ||
		len(log) != 2 || log[0] != v+":begin" || log[1] != v+":end" {
		return fmt.Errorf("request mixed versions: table %s, work replied %q, echo %q (%s), log %q",
			v, c.ReplyText(), c2.ReplyText(), echo.Version(), log)
	}
	count(v).Add(1)
	return nil
}
