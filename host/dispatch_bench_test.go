package host

import (
	"log/slog"
	"testing"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
)

type benchPlayer struct{ Coins, XP int64 }

func benchWork(c *abi.Call) error {
	p := c.State.(*benchPlayer)
	p.Coins++
	p.XP += 2
	return nil
}

// BenchmarkDispatch is a handler call as the host makes it (one atomic
// load of the table, the entry by index, the raw handler, the per-lane
// count with its latency bucket), against a direct call of the same
// function. dispatch-x is the ratio (goal <= 1.7x). The message lookup
// by name and the transaction around the call are not part of dispatch.
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
	direct := abi.Handler(benchWork) // a func value: not inlined, like the table's
	start := time.Now()
	for range b.N {
		direct(c)
	}
	directTime := time.Since(start)
	var ln lane
	b.ResetTimer()
	for range b.N {
		e := l.Current().At(idx)
		err := e.Handler()(c)
		ln.count(e.Serial(), err, 0)
	}
	b.StopTimer()
	b.ReportMetric(float64(directTime.Nanoseconds())/float64(b.N), "direct-ns/op")
	b.ReportMetric(float64(b.Elapsed())/float64(directTime), "dispatch-x")
}
