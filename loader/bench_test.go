package loader_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
	"github.com/hothost/hothost/loader/sidecar"
)

// inc is the bench plugin's handler (testdata/plugins/bench), compiled into
// the test binary for the direct-call baseline.
//
//go:noinline
func inc(c *abi.Call) error {
	*c.State.(*int64) += int64(len(c.Args)) + 1
	return nil
}

var benchLoader = sync.OnceValues(func() (*loader.Loader, error) {
	p, err := buildOne(spec{tmpl: "bench", name: "bench", version: "1.0.0"})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hothost-bench-")
	if err != nil {
		return nil, err
	}
	l, err := loader.New(loader.Options{Dir: dir})
	if err != nil {
		return nil, err
	}
	for _, s := range []string{"", sidecar.SumSuffix} {
		b, err := os.ReadFile(p + s)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)+s), b, 0o644); err != nil {
			return nil, err
		}
	}
	if err := l.Poll(context.Background()); err != nil {
		return nil, err
	}
	return l, nil
})

func benchDirect(b *testing.B) {
	var n int64
	c := &abi.Call{State: &n}
	for b.Loop() {
		if err := inc(c); err != nil {
			b.Fatal(err)
		}
	}
}

// benchInc is the bench loader and the table index of its plugin's inc.
func benchInc(b *testing.B) (*loader.Loader, int) {
	l, err := benchLoader()
	if err != nil {
		b.Fatal(err)
	}
	i, ok := l.Current().Index("inc")
	if !ok {
		b.Fatal("bench plugin not loaded")
	}
	return l, i
}

func benchTable(b *testing.B) {
	l, i := benchInc(b)
	var n int64
	c := &abi.Call{State: &n}
	for b.Loop() {
		// What the host does per request: one atomic load, one index.
		if err := l.Current().At(i).Call(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCall compares a call through the versioned table into a plugin
// handler with a direct call of the same handler linked into the binary,
// and reports the ratio measured in the same run.
func BenchmarkCall(b *testing.B) {
	b.Run("direct", benchDirect)
	b.Run("table-plugin", benchTable)
	b.Run("ratio", func(b *testing.B) {
		// testing.Benchmark cannot run inside a benchmark (it would wait for
		// the lock this one holds), so time blocks of both ways in turn.
		l, err := benchLoader()
		if err != nil {
			b.Fatal(err)
		}
		i, _ := l.Current().Index("inc")
		var n int64
		c := &abi.Call{State: &n}
		const block = 10000
		var direct, table time.Duration
		for b.Loop() {
			t0 := time.Now()
			for range block {
				inc(c)
			}
			t1 := time.Now()
			for range block {
				l.Current().At(i).Call(c)
			}
			t2 := time.Now()
			direct += t1.Sub(t0)
			table += t2.Sub(t1)
		}
		dn := float64(direct.Nanoseconds()) / float64(b.N*block)
		tn := float64(table.Nanoseconds()) / float64(b.N*block)
		b.ReportMetric(dn, "direct-ns/call")
		b.ReportMetric(tn, "table-ns/call")
		b.ReportMetric(tn/dn, "x-direct")
	})
}

// BenchmarkCallParallel is BenchmarkCall's table-plugin calls from every
// P, each goroutine with its own state, against the same number of calls
// on one goroutine in this run: parallel-x is parallel time per call over
// serial (goal on 2 cores <= 0.6x: Entry.Call's counters are per P, so no
// cache line is written by every core on every call).
func BenchmarkCallParallel(b *testing.B) {
	l, i := benchInc(b)
	var n int64
	c := &abi.Call{State: &n}
	start := time.Now()
	for range b.N {
		l.Current().At(i).Call(c)
	}
	serial := time.Since(start)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var n int64
		c := &abi.Call{State: &n}
		for pb.Next() {
			l.Current().At(i).Call(c)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed())/float64(serial), "parallel-x")
}

// BenchmarkActivate measures from a complete file landing in the directory
// (the .so and then its sidecar renamed into place) to the new version
// serving: checks, preflight child, plugin.Open, table store, driven by one
// Poll. Each sample needs its own plugin, so it runs a fixed number of
// versions once and reports p50 and p99 (the max, with this few).
func BenchmarkActivate(b *testing.B) {
	const n = 12
	samples, err := activationSamples(b, n)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
	}
	sorted := append([]time.Duration(nil), samples...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	p50 := sorted[len(sorted)/2]
	p99 := sorted[(len(sorted)*99+99)/100-1]
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.Logf("%d activations: p50 %v p99 %v (plus the poll interval in production)", n, p50, p99)
}

var (
	actOnce    sync.Once
	actSamples []time.Duration
	actErr     error
)

func activationSamples(b *testing.B, n int) ([]time.Duration, error) {
	actOnce.Do(func() {
		specs := make([]spec, n)
		for i := range specs {
			specs[i] = spec{tmpl: "coin", name: "coin", version: fmt.Sprintf("100.0.%d", i)}
		}
		so := buildAll(b, specs...)
		l := newLoader(b, loader.Options{})
		dir := l.Dir()
		for i, p := range so {
			data, err := os.ReadFile(p)
			if err != nil {
				actErr = err
				return
			}
			sum, err := os.ReadFile(p + sidecar.SumSuffix)
			if err != nil {
				actErr = err
				return
			}
			dst := filepath.Join(dir, filepath.Base(p))
			if err := sidecar.WriteFileAtomic(dst, data, 0o644); err != nil {
				actErr = err
				return
			}
			if err := sidecar.WriteFileAtomic(dst+sidecar.SumSuffix, sum, 0o644); err != nil {
				actErr = err
				return
			}
			start := time.Now() // the file is complete from here
			if err := poll(b, l); err != nil {
				actErr = err
				return
			}
			d := time.Since(start)
			if got := l.Current().Modules()["coin"]; got != specs[i].version {
				actErr = fmt.Errorf("after one poll coin is %q, want %s", got, specs[i].version)
				return
			}
			actSamples = append(actSamples, d)
		}
	})
	return actSamples, actErr
}
