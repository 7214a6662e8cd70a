package loader_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hothost/hothost/loader"
)

// BenchmarkStart measures the loader's part of a host start, New and the
// first Poll, with the example game's three plugins (plugins/coin/v1, shop
// and profile, built by hhbuild): cold, with no history (each plugin is
// preflighted in a child process), and with the history a previous start
// left (same bytes, same host binary: no child). Rounds alternate, so both
// see the same machine; the ratio is reported.
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
	start := func(hist string) time.Duration {
		t0 := time.Now()
		l, err := loader.New(loader.Options{Dir: dir, HistoryFile: hist, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Poll(context.Background()); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		if n := len(l.Current().Modules()); n != 3 || l.HistoryError() != nil {
			b.Fatalf("%d modules active, history %v", n, l.HistoryError())
		}
		return d
	}
	cold, warm := filepath.Join(data, "cold.json"), filepath.Join(data, "warm.json")
	start(warm) // the previous start, which leaves the history
	var coldT, warmT time.Duration
	rounds := 0
	for b.Loop() {
		if err := os.Remove(cold); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
		coldT += start(cold)
		warmT += start(warm)
		rounds++
	}
	c := float64(coldT.Microseconds()) / float64(rounds) / 1000
	w := float64(warmT.Microseconds()) / float64(rounds) / 1000
	b.ReportMetric(c, "cold-ms")
	b.ReportMetric(w, "history-ms")
	b.ReportMetric(c/w, "x-faster")
	b.Logf("start with 3 plugins over %d rounds: cold %.1f ms, with history %.1f ms (%s)", rounds, c, w,
		fmt.Sprintf("%.1fx", c/w))
}
