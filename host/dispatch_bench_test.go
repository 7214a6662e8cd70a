package host

import (
	"log/slog"
	"testing"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
)

type benchPlayer struct{ Coins, XP int64 }

// benchWork is the handler both ways call. Not inlined: a handler in the
// table is called through a func value, which the compiler cannot inline,
// so the direct baseline is a real call too (inlined, it would time two
// adds, not a call).
//
//go:noinline
func benchWork(c *abi.Call) error {
	p := c.State.(*benchPlayer)
	p.Coins++
	p.XP += 2
	return nil
}

// BenchmarkDispatch is a handler call as the host makes it (one atomic
// load of the table, the entry by index, the raw handler, the per-lane
// count with its latency bucket), against a direct call of the same
// function, in alternating blocks so that a loaded machine weighs on both
// alike. dispatch-x is the ratio (goal <= 1.7x). The message lookup by
// name and the transaction around the call are not part of dispatch.
func BenchmarkDispatch(b *testing.B) {
	l, err := loader.New(loader.Options{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler), Static: []*abi.Module{{
		Name: "bench", Version: "1.0.0", ABI: ">= 1.0", Handlers: map[string]abi.Handler{"work": benchWork}}}})
	if err != nil {
		b.Fatal(err)
	}
	idx, ok := l.Current().Index("work")
	if !ok {
		b.Fatal("no work handler")
	}
	c, p := &abi.Call{}, &benchPlayer{}
	c.State = p
	var ln lane
	const block = 1000
	var direct, table time.Duration
	for lo := 0; lo < b.N; lo += block {
		n := min(block, b.N-lo)
		t0 := time.Now()
		for range n {
			benchWork(c)
		}
		t1 := time.Now()
		for range n {
			e := l.Current().At(idx)
			err := e.Handler()(c)
			ln.count(e.Serial(), err, 0)
		}
		direct, table = direct+t1.Sub(t0), table+time.Since(t1)
	}
	// ns/op is the table path alone (the default would add the direct
	// blocks): what make bench reports against direct-ns/op.
	b.ReportMetric(float64(table.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(direct.Nanoseconds())/float64(b.N), "direct-ns/op")
	b.ReportMetric(float64(table)/float64(direct), "dispatch-x")
}
