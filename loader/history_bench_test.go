package loader_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hothost/hothost/loader"
)

// BenchmarkStart measures the loader's part of a host start, New and the
// first Poll, with the example game's three plugins (plugins/coin/v1, shop
// and profile, built by hhbuild): cold, with no history (each plugin is
// preflighted in a child process), and with the history a previous start
// left (same bytes, same host binary: no child). Rounds alternate, so both
// see the same machine; the ratio is reported. CPU time (this process and
// its children) is reported too: on a shared machine it says more than the
// wall clock.
func BenchmarkStart(b *testing.B) {
	dir := b.TempDir()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range []struct{ src, name string }{{"coin/v1", "coin"}, {"shop", "shop"}, {"profile", "profile"}} {
		out, err := exec.Command(hhbuild, "-src", filepath.Join("..", "plugins", p.src), "-name", p.name,
			"-version", "1.0.0", "-out", dir, "-like", exe).CombinedOutput()
		if err != nil {
			b.Fatalf("hhbuild %s: %v\n%s", p.src, err, out)
		}
	}
	data := b.TempDir()
	start := func(hist string) (wall, cpu time.Duration) {
		c0, t0 := cpuTime(b), time.Now()
		l, err := loader.New(loader.Options{Dir: dir, HistoryFile: hist, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Poll(context.Background()); err != nil {
			b.Fatal(err)
		}
		wall, cpu = time.Since(t0), cpuTime(b)-c0
		if n := len(l.Current().Modules()); n != 3 || l.HistoryError() != nil {
			b.Fatalf("%d modules active, history %v", n, l.HistoryError())
		}
		return wall, cpu
	}
	cold, warm := filepath.Join(data, "cold.json"), filepath.Join(data, "warm.json")
	start(warm) // the previous start, which leaves the history
	var coldT, warmT, coldCPU, warmCPU time.Duration
	rounds := 0
	for b.Loop() {
		if err := os.Remove(cold); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
		wall, cpu := start(cold)
		coldT, coldCPU = coldT+wall, coldCPU+cpu
		wall, cpu = start(warm)
		warmT, warmCPU = warmT+wall, warmCPU+cpu
		rounds++
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(rounds) / 1000 }
	b.ReportMetric(ms(coldT), "cold-ms")
	b.ReportMetric(ms(warmT), "history-ms")
	b.ReportMetric(ms(coldT)/ms(warmT), "x-faster")
	b.ReportMetric(ms(coldCPU), "cold-cpu-ms")
	b.ReportMetric(ms(warmCPU), "history-cpu-ms")
	b.Logf("start with 3 plugins over %d rounds: cold %.1f ms (cpu %.1f), with history %.1f ms (cpu %.1f): %.1fx",
		rounds, ms(coldT), ms(coldCPU), ms(warmT), ms(warmCPU), ms(coldT)/ms(warmT))
}

// cpuTime is the user and system time of this process and its waited-for
// children (the preflight children) so far.
func cpuTime(b *testing.B) time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			b.Fatal(err)
		}
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return total
}
