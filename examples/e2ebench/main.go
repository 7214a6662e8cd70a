// Command e2ebench measures hothost end to end and writes BENCHMARKS.md
// (scripts/bench runs it after `go test -bench` over every package). Against
// real host processes and real TCP clients (internal/loadgen) it measures,
// each next to a baseline taken in the same run:
//
//   - throughput and latency of the hot-swappable host vs the same handlers
//     linked statically (go build -tags hothost_static, scripts/gen-static)
//     and vs examples/handwritten, the game as a user would write it
//     without hothost;
//   - p99 while coin v1/v2 are swapped every 100 ms vs steady;
//   - swap to serving: admin activate -> first reply of the new version,
//     and a new .so dropped in -> active;
//   - RSS per loaded plugin version vs the host's own RSS, and where that
//     memory is (examples/versionmem: per ELF section, Go runtime, C heap;
//     plain vs MADV_DONTNEED of the read-only mappings);
//   - shared-memory bytes per player vs the record's size;
//   - restart: attach (after SIGTERM), recovery (after kill -9) and restore
//     from a snapshot (segment deleted) with the same players;
//   - a cross-player give vs a single-player work, and push delivery (a
//     give's or tell's push at the other client vs the sender's reply);
//     -only push runs this phase alone and prints its rows.
//
// With -gotest it also reads `go test -bench` output and reports the ratios
// the package benchmarks measure (dispatch vs direct call, transaction vs
// in place, attach and recovery vs snapshot reload) and every raw figure.
// The part of an existing BENCHMARKS.md after handMarker is written by hand
// and kept as it is.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/hothost/hothost/client"
	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/internal/hostproc"
	"github.com/hothost/hothost/internal/loadgen"
	"github.com/hothost/hothost/plugins/game"
)

type ratio struct {
	what, measured, baseline, ratio, note string
}

type bench struct {
	ctx    context.Context
	dir    string
	bins   *hostproc.Bins
	so     map[string]string
	prefix string
	dur    time.Duration
	conns  int
	cap    int // segment capacity: at least the restart figures' players
	ratios []ratio
	notes  []string
	log    *slog.Logger
	procs  []*hostproc.Proc
	hand   []*handProc
	mem    string // examples/versionmem's tables
}

func main() {
	gotest := flag.String("gotest", "", "file with `go test -bench` output to include")
	out := flag.String("out", "BENCHMARKS.md", "report to write")
	machine := flag.String("machine", "", "file with the machine description (from scripts/bench)")
	dur := flag.Duration("duration", 8*time.Second, "length of each load phase")
	conns := flag.Int("conns", 8, "load connections")
	players := flag.Int("players", 100_000, "players for the restart figures")
	only := flag.String("only", "", "run one phase, print its rows as a table and write no report: push (cross-player give vs work, push delivery)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "hothost-e2ebench-")
	if err != nil {
		log.Error("temp dir", "err", err)
		os.Exit(1)
	}
	b := &bench{ctx: ctx, dir: dir, dur: *dur, conns: *conns, cap: max(100_000, *players), log: log, prefix: fmt.Sprintf("hothost-bench-%d", os.Getpid())}
	if *only != "" {
		os.Exit(b.runOnly(*only))
	}
	err = b.run(*players)
	b.cleanup()
	if err != nil {
		log.Error("e2ebench", "err", err)
		b.notes = append(b.notes, "end-to-end run stopped early: "+err.Error())
	}
	if werr := b.write(*out, *gotest, *machine); werr != nil {
		log.Error("write report", "err", werr)
		os.Exit(1)
	}
	fmt.Println("wrote", *out)
	if err != nil {
		os.Exit(1)
	}
}

// runOnly runs one phase and prints its rows as a Markdown table; it
// returns the exit code.
func (b *bench) runOnly(phase string) int {
	defer b.cleanup()
	if phase != "push" {
		b.log.Error("unknown -only phase; the one there is: push", "phase", phase)
		return 2
	}
	err := b.build()
	if err == nil {
		err = b.pushPhase()
	}
	if err != nil {
		b.log.Error("e2ebench", "phase", phase, "err", err)
		return 1
	}
	fmt.Println("\n| what | measured | baseline | ratio | notes |\n|---|---:|---:|---:|---|")
	for _, r := range b.ratios {
		fmt.Printf("| %s | %s | %s | %s | %s |\n", r.what, r.measured, r.baseline, r.ratio, r.note)
	}
	return 0
}

func (b *bench) cleanup() {
	for _, p := range b.procs {
		select {
		case <-p.Done():
		default:
			p.Kill()
		}
	}
	for _, p := range b.hand {
		p.kill()
	}
	segs, _ := filepath.Glob(filepath.Join("/dev/shm", b.prefix+"-*"))
	for _, s := range segs {
		os.Remove(s)
	}
	os.RemoveAll(b.dir)
}

func (b *bench) add(what, measured, baseline, r, note string) {
	b.ratios = append(b.ratios, ratio{what, measured, baseline, r, note})
	fmt.Printf("  %-44s %-26s %-26s %-10s %s\n", what, measured, baseline, r, note)
}

func x(a, base float64) string {
	if base == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/base)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

func (b *bench) fresh(tag string, plugins ...string) (hostproc.Config, error) {
	// Logins without tickets, as the hand-written server takes them: a
	// ticket costs one verification per session, not per request.
	cfg := hostproc.Config{Dir: filepath.Join(b.dir, tag), ShmDir: "/dev/shm", StateName: b.prefix + "-" + tag, Capacity: b.cap,
		Args: []string{"-insecure-login"}}
	pd := filepath.Join(cfg.Dir, "plugins-dir")
	if err := os.MkdirAll(pd, 0o700); err != nil {
		return cfg, err
	}
	for _, k := range plugins {
		if err := hostproc.Install(b.so[k], pd); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func (b *bench) start(bins *hostproc.Bins, cfg hostproc.Config) (*hostproc.Proc, error) {
	p, err := bins.Start(b.ctx, cfg)
	if err == nil {
		b.procs = append(b.procs, p)
	}
	return p, err
}

func (b *bench) load(addr string, fn func(l *loadgen.Load) error) (*loadgen.Result, error) {
	l, err := loadgen.Start(b.ctx, loadgen.Config{Addr: func() string { return addr }, Conns: b.conns, Duration: b.dur})
	if err != nil {
		return nil, err
	}
	if fn != nil {
		if err := fn(l); err != nil {
			l.Stop()
			return nil, err
		}
	}
	res := l.Wait()
	if ck := loadgen.Verify(b.ctx, addr, res, 10*time.Second); !ck.OK() || len(res.Violations) > 0 || res.Failed > 0 {
		return res, fmt.Errorf("load not clean: %d failed, %v %v", res.Failed, res.Violations, ck.Violations)
	}
	return res, nil
}

// build compiles the binaries and the example game's plugins.
func (b *bench) build() error {
	fmt.Println("== build")
	var err error
	if b.bins, err = hostproc.Build(filepath.Join(b.dir, "bin")); err != nil {
		return err
	}
	b.so = map[string]string{}
	for _, p := range [][4]string{{"coin1", "plugins/coin/v1", "coin", "1.0.0"}, {"coin2", "plugins/coin/v2", "coin", "2.0.0"},
		{"shop", "plugins/shop", "shop", "1.0.0"}, {"profile", "plugins/profile", "profile", "1.0.0"},
		{"market", "plugins/market", "market", "1.0.0"}, {"social", "plugins/social", "social", "1.0.0"}} {
		if b.so[p[0]], err = b.bins.Plugin(p[1], p[2], p[3], filepath.Join(b.dir, "built")); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) run(players int) error {
	if err := b.build(); err != nil {
		return err
	}
	static, staticErr := b.buildStatic()
	hand, handErr := b.buildHandwritten()

	fmt.Println("== hot-swappable host vs statically linked handlers vs hand-written server")
	cfg, err := b.fresh("hot", "coin1", "shop", "profile")
	if err != nil {
		return err
	}
	hot, err := b.start(b.bins, cfg)
	if err != nil {
		return err
	}
	sides := []*side{{name: "hot", addr: hot.Addr, pid: hot.Cmd.Process.Pid}}
	if staticErr == nil {
		scfg, err := b.fresh("static")
		if err != nil {
			return err
		}
		sb := *b.bins
		sb.Hothost = static
		sp, err := b.start(&sb, scfg)
		if err != nil {
			return err
		}
		sides = append(sides, &side{name: "static", addr: sp.Addr, pid: sp.Cmd.Process.Pid, stop: sp.Stop})
	}
	if handErr == nil {
		hp, err := b.startHandwritten(hand)
		if err != nil {
			return err
		}
		sides = append(sides, &side{name: "hand-written", addr: hp.Addr, pid: hp.Pid, stop: hp.Stop})
	}
	if err := b.rounds(sides); err != nil {
		return err
	}
	rssAfter := make([]int64, len(sides))
	for i, s := range sides {
		rssAfter[i] = rssOf(s.pid)
		if s.stop != nil {
			if err := s.stop(); err != nil {
				return fmt.Errorf("stop %s: %w", s.name, err)
			}
		}
	}
	load := fmt.Sprintf("%d conns, best of %d alternating rounds of %v each, mix %v", b.conns, nRounds, b.dur, mixText())
	if staticErr == nil {
		b.compare("static", sides[0].best, sides[1].best, load)
	} else {
		b.add("e2e throughput, hot-swappable vs static", fmt.Sprintf("%.0f req/s", sides[0].best.Throughput), "n/a", "n/a",
			"static host does not build yet: "+firstLine(staticErr.Error()))
	}
	if handErr == nil {
		h := sides[len(sides)-1]
		note := fmt.Sprintf("%s; RSS after them: hothost %.1f MiB, hand-written %.1f MiB", load,
			float64(rssAfter[0])/(1<<20), float64(rssAfter[len(sides)-1])/(1<<20))
		if staticErr == nil {
			note += fmt.Sprintf("; static vs hand-written %s", x(sides[1].best.Throughput, h.best.Throughput))
		}
		b.compare("hand-written", sides[0].best, h.best, note)
	} else {
		b.add("e2e throughput, hot-swappable vs hand-written", fmt.Sprintf("%.0f req/s", sides[0].best.Throughput), "n/a", "n/a",
			"hand-written server does not build: "+firstLine(handErr.Error()))
	}

	fmt.Println("== p99 during swaps every 100 ms vs steady")
	if err := hostproc.Install(b.so["coin2"], filepath.Join(cfg.Dir, "plugins-dir")); err != nil {
		return err
	}
	if err := b.waitActive(hot, "2.0.0"); err != nil {
		return err
	}
	steady, err := b.load(hot.Addr, nil)
	if err != nil {
		return err
	}
	swaps := 0
	swapping, err := b.load(hot.Addr, func(l *loadgen.Load) error {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		end := time.Now().Add(b.dur - 100*time.Millisecond)
		for now := range t.C {
			if now.After(end) {
				return nil
			}
			if err := hot.Admin(b.ctx, "POST", "/v1/activate?module=coin&version="+[]string{"1.0.0", "2.0.0"}[swaps%2], nil); err != nil {
				return err
			}
			swaps++
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.add("p99 during swaps every 100 ms vs steady", ms(swapping.P99), ms(steady.P99), x(float64(swapping.P99), float64(steady.P99)),
		fmt.Sprintf("%d swaps; p99.9 %s vs %s; throughput %.0f vs %.0f req/s; 0 failed", swaps, ms(swapping.P999), ms(steady.P999),
			swapping.Throughput, steady.Throughput))

	fmt.Println("== swap to serving")
	if err := b.swapToServing(hot, cfg, steady); err != nil {
		return err
	}
	hot.Stop()

	fmt.Println("== cross-player transactions and push delivery")
	if err := b.pushPhase(); err != nil {
		return err
	}

	fmt.Println("== shared memory per player; restart: attach, recovery, restore")
	return b.restarts(players)
}

// nRounds is the number of alternating load rounds each e2e side gets:
// an even number, so that each side runs as often early in a pair of
// rounds as late. Four: with two, one burst of a neighbour's load on this
// shared machine moved the ratios by several hundredths between runs.
const nRounds = 4

// side is one server of the end-to-end comparison and its best round.
type side struct {
	name string
	addr string
	pid  int
	stop func() error // nil: the side serves on after the comparison
	best *loadgen.Result
}

// rounds loads each side in turn, nRounds times, and keeps each one's best
// round. Every other round runs the sides in reverse order (A B C, C B A):
// the order of the phases and a neighbour's load rising or falling over the
// run then weigh on every side the same way.
func (b *bench) rounds(sides []*side) error {
	for round := range nRounds {
		order := slices.Clone(sides)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			r, err := b.load(s.addr, nil)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", s.name, round+1, err)
			}
			fmt.Printf("   %s, round %d: %s\n", s.name, round+1, strings.ReplaceAll(r.Summary(), "\n", "\n   "))
			if s.best == nil || r.Throughput > s.best.Throughput {
				s.best = r
			}
		}
	}
	return nil
}

// compare adds the throughput and latency rows of hot against one baseline.
func (b *bench) compare(baseline string, hot, base *loadgen.Result, note string) {
	vs := "hot-swappable vs " + baseline
	b.add("e2e throughput, "+vs, fmt.Sprintf("%.0f req/s", hot.Throughput), fmt.Sprintf("%.0f req/s", base.Throughput),
		x(hot.Throughput, base.Throughput), note)
	b.add("e2e p50, "+vs, ms(hot.P50), ms(base.P50), x(float64(hot.P50), float64(base.P50)), "")
	b.add("e2e p99, "+vs, ms(hot.P99), ms(base.P99), x(float64(hot.P99), float64(base.P99)), "")
	b.add("e2e p99.9, "+vs, ms(hot.P999), ms(base.P999), x(float64(hot.P999), float64(base.P999)), "")
}

func mixText() string {
	var s []string
	for _, w := range loadgen.DefaultMix {
		s = append(s, fmt.Sprintf("%s=%d", w.Cmd, w.Weight))
	}
	return strings.Join(s, ",")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// buildStatic builds the host with the handlers linked in.
func (b *bench) buildStatic() (string, error) {
	if _, err := os.Stat(filepath.Join(b.bins.Root, "internal", "static", "coin")); err != nil {
		cmd := exec.Command(filepath.Join(b.bins.Root, "scripts", "gen-static"))
		cmd.Dir = b.bins.Root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("scripts/gen-static: %v: %s", err, out)
		}
	}
	out := filepath.Join(b.dir, "bin", "hothost-static")
	cmd := exec.Command("go", "build", "-tags", "hothost_static", "-o", out, "./cmd/hothost")
	cmd.Dir = b.bins.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if o, err := cmd.CombinedOutput(); err != nil {
		var lines []string
		for l := range strings.SplitSeq(strings.TrimSpace(string(o)), "\n") {
			if !strings.HasPrefix(l, "#") {
				lines = append(lines, strings.TrimSpace(l))
			}
		}
		return "", fmt.Errorf("go build -tags hothost_static: %s", strings.Join(lines, "; "))
	}
	return out, nil
}

func (b *bench) waitActive(p *hostproc.Proc, version string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st host.Status
		if err := p.Admin(b.ctx, "GET", "/v1/status", &st); err == nil && st.Modules["coin"] == version {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("coin %s not active after 60s", version)
		}
		time.Sleep(time.Millisecond) // polling the admin API, bounded by the deadline
	}
}

// rssOf is the VmRSS of a process, 0 if it cannot be read.
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// swapToServing measures activate -> first reply of the new version, and a
// new file dropped in -> active, then the RSS each loaded version costs.
func (b *bench) swapToServing(p *hostproc.Proc, cfg hostproc.Config, steady *loadgen.Result) error {
	c, err := client.Dial(p.Addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Login(4242); err != nil {
		return err
	}
	var act []time.Duration
	for i := range 40 {
		ver, suffix := "1.0.0", "v1"
		if i%2 == 1 {
			ver, suffix = "2.0.0", "v2"
		}
		t0 := time.Now()
		if err := p.Admin(b.ctx, "POST", "/v1/activate?module=coin&version="+ver, nil); err != nil {
			return err
		}
		for n := 0; ; n++ {
			r, err := c.Do("work")
			if err != nil {
				return err
			}
			if strings.HasSuffix(r.Text, suffix) {
				break
			}
			if n > 100 {
				return fmt.Errorf("coin %s not serving after activate", ver)
			}
		}
		act = append(act, time.Since(t0))
	}
	med := median(act)
	b.add("swap to serving: activate -> first new reply", ms(med), ms(steady.P50)+" (p50 request)", x(float64(med), float64(steady.P50)),
		fmt.Sprintf("median of %d admin activations, including the admin HTTP call", len(act)))

	// New files: coin 3.0.k built from coin v1, dropped in one at a time.
	const k = 10
	gen := filepath.Join(b.bins.Root, "examples", "e2ebench", "testdata", fmt.Sprintf("gen-%d", os.Getpid()))
	defer os.RemoveAll(gen)
	src, err := os.ReadFile(filepath.Join(b.bins.Root, "plugins", "coin", "v1", "main.go"))
	if err != nil {
		return err
	}
	files := make([]string, k)
	errs := make([]error, k)
	t0 := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i := range k {
		v := fmt.Sprintf("3.0.%d", i+1)
		d := filepath.Join(gen, "coin_3_0_"+strconv.Itoa(i+1))
		os.MkdirAll(d, 0o755)
		s := strings.Replace(string(src), `Version: "1.0.0"`, `Version: "`+v+`"`, 1)
		if err := os.WriteFile(filepath.Join(d, "main.go"), []byte(s), 0o644); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			files[i], errs[i] = b.bins.Plugin(d, "coin", v, filepath.Join(b.dir, "built3"))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	fmt.Printf("   built %d coin versions in %v\n", k, time.Since(t0).Round(time.Millisecond))
	before := rssOf(p.Cmd.Process.Pid)
	var drop []time.Duration
	for i, so := range files {
		t0 := time.Now()
		if err := hostproc.Install(so, filepath.Join(cfg.Dir, "plugins-dir")); err != nil {
			return err
		}
		if err := b.waitActive(p, fmt.Sprintf("3.0.%d", i+1)); err != nil {
			return err
		}
		drop = append(drop, time.Since(t0))
	}
	after := rssOf(p.Cmd.Process.Pid)
	dm := median(drop)
	b.add("swap to serving: .so dropped in -> active", ms(dm), "50 ms (poll interval)", x(float64(dm), float64(50*time.Millisecond)),
		fmt.Sprintf("median of %d: poll, checksum, build-settings check, preflight child, plugin.Open, swap", len(drop)))
	per := float64(after-before) / k
	b.add("RSS per loaded plugin version", fmt.Sprintf("%.2f MiB", per/(1<<20)), fmt.Sprintf("%.1f MiB (host RSS)", float64(before)/(1<<20)),
		fmt.Sprintf("%.1f%%", 100*per/float64(before)), fmt.Sprintf("%d versions loaded: RSS %.1f -> %.1f MiB; never unloaded", k,
			float64(before)/(1<<20), float64(after)/(1<<20)))
	installed := make([]string, len(files))
	for i, so := range files {
		installed[i] = filepath.Join(cfg.Dir, "plugins-dir", filepath.Base(so))
	}
	return b.versionMem(installed)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

var openRE = regexp.MustCompile(`\(capacity \d+\) in (\S+?);`)

// restarts fills a host with players, then restarts it three ways.
func (b *bench) restarts(players int) error {
	cfg, err := b.fresh("restart", "coin1", "shop", "profile")
	if err != nil {
		return err
	}
	p, err := b.start(b.bins, cfg)
	if err != nil {
		return err
	}
	t0 := time.Now()
	res, err := loadgen.Run(b.ctx, loadgen.Config{Addr: func() string { return p.Addr }, Conns: b.conns, Players: players,
		Session: 1, Requests: int64(players), Mix: []loadgen.Weighted{{Cmd: "work", Weight: 1}}, Duration: 5 * time.Minute})
	if err != nil {
		return err
	}
	if res.Failed > 0 {
		return fmt.Errorf("filling %d players: %d failed", players, res.Failed)
	}
	var st host.Status
	if err := p.Admin(b.ctx, "GET", "/v1/status", &st); err != nil {
		return err
	}
	fmt.Printf("   %d players logged in and worked once in %v\n", st.State.Players, time.Since(t0).Round(time.Millisecond))
	if fi, err := os.Stat(st.State.Segment); err == nil {
		per := float64(fi.Size()) / float64(st.State.Capacity)
		raw := float64(unsafe.Sizeof(game.Player{}))
		b.add("shared-memory bytes per player", fmt.Sprintf("%.0f B", per), fmt.Sprintf("%.0f B (game.Player)", raw), x(per, raw),
			fmt.Sprintf("segment %.1f MiB for capacity %d (header, slots, per-lane journal, id index)", float64(fi.Size())/(1<<20), st.State.Capacity))
	}
	type way struct {
		name    string
		serving time.Duration
		open    string
		how     string
	}
	ways := []*way{
		{name: "attach (after SIGTERM)"},
		{name: "recovery (after kill -9)"},
		{name: "restore (segment deleted)"},
	}
	for i, w := range ways {
		switch i {
		case 0:
			if err := p.Stop(); err != nil {
				return err
			}
		case 1:
			p.Kill()
		case 2:
			p.Kill()
			if err := os.Remove(filepath.Join(cfg.ShmDir, cfg.StateName)); err != nil {
				return err
			}
		}
		t0 := time.Now()
		if p, err = b.start(b.bins, cfg); err != nil {
			return err
		}
		w.serving = time.Since(t0)
		if err := p.Admin(b.ctx, "GET", "/v1/status", &st); err != nil {
			return err
		}
		w.how = st.State.Opened
		if m := openRE.FindStringSubmatch(st.State.Report); m != nil {
			w.open = m[1]
		}
		fmt.Printf("   %s: %s, state open %s, process start -> serving %v\n", w.name, w.how, w.open, w.serving.Round(time.Millisecond))
	}
	p.Stop()
	od := func(s string) float64 { d, _ := time.ParseDuration(s); return float64(d) }
	for _, w := range ways[:2] {
		b.add("restart: "+w.name+" vs restore from snapshot", w.open+" open", ways[2].open+" open", x(od(w.open), od(ways[2].open)),
			fmt.Sprintf("%d players; process start -> serving %v vs %v (%s)", st.State.Players, w.serving.Round(time.Millisecond),
				ways[2].serving.Round(time.Millisecond), w.how))
	}
	return nil
}

// write renders BENCHMARKS.md.
func (b *bench) write(out, gotest, machine string) error {
	var w strings.Builder
	fmt.Fprintf(&w, "# hothost benchmarks\n\nWritten by `make bench` (scripts/bench) on %s. Every ratio is against a baseline "+
		"measured in the same run on the same machine; machines are noisy, so compare ratios, not absolute figures. "+
		"A ratio is measured / baseline: above 1x ours costs more, below 1x ours is faster (0.02x is 50 times faster).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	if machine != "" {
		if m, err := os.ReadFile(machine); err == nil {
			w.WriteString("## Machine\n\n```\n" + strings.TrimSpace(string(m)) + "\n```\n\n")
		}
	}
	var gt []gotestLine
	if gotest != "" {
		var err error
		if gt, err = parseGoTest(gotest); err != nil {
			return err
		}
	}
	w.WriteString("## Ratios to baselines\n\n| what | measured | baseline | ratio | notes |\n|---|---:|---:|---:|---|\n")
	for _, r := range append(goTestRatios(gt), b.ratios...) {
		fmt.Fprintf(&w, "| %s | %s | %s | %s | %s |\n", r.what, r.measured, r.baseline, r.ratio, r.note)
	}
	if len(b.notes) > 0 {
		w.WriteString("\n")
		for _, n := range b.notes {
			w.WriteString("- " + n + "\n")
		}
	}
	if b.mem != "" {
		w.WriteString("\n## Where a loaded version's memory is (examples/versionmem)\n\n" + versionMemText + "\n" + b.mem)
	}
	w.WriteString(methodText)
	if len(gt) > 0 {
		w.WriteString("\n## Every package benchmark (`go test -run '^$' -bench . -benchmem`)\n\n| package | benchmark | figures |\n|---|---|---|\n")
		for _, l := range gt {
			fmt.Fprintf(&w, "| %s | %s | %s |\n", l.pkg, l.name, l.raw)
		}
	}
	if old, err := os.ReadFile(out); err == nil {
		if i := strings.Index(string(old), handMarker); i >= 0 {
			w.WriteString("\n" + string(old[i:]))
		}
	}
	return os.WriteFile(out, []byte(w.String()), 0o644)
}

// handMarker starts the part of BENCHMARKS.md written by hand (figures run
// separately, investigations): write keeps it from the old file.
const handMarker = "<!-- written by hand below: make bench keeps it -->"

const methodText = `
## How each figure is taken

- **dispatch vs static call**: loader BenchmarkCall: a handler of a real plugin called through the
  versioned table (one atomic load, an index, the call with panic recovery) vs the same function
  compiled into the test binary and called directly.
- **transaction vs in place**: state BenchmarkUpdate: copy the 256-byte record out, run the
  function, commit it crash-atomically (the state package's journal and checksums) vs the function on a value in place.
- **attach / recovery vs snapshot reload**: shmpool BenchmarkAttach1M (open, validate, rebuild the
  free structure of 1,000,000 x 256 B) vs os.ReadFile of the same bytes; state BenchmarkRecovery1M
  (every record checked after a crash) vs BenchmarkSnapshot1M restore; and end to end, the host's own
  state open after SIGTERM / kill -9 vs after the segment was deleted (restore from its snapshot).
- **end-to-end hot-swappable vs static**: the same host binary, the same game, the same load
  (internal/loadgen, 127.0.0.1, one request in flight per connection, ledger checked at the end); the
  baseline is built with -tags hothost_static from scripts/gen-static's copies of the plugin sources.
- **end-to-end hot-swappable vs hand-written**: examples/handwritten, the same game written the way
  a user would without hothost (a goroutine per connection, players in a Go map under one mutex, no
  plugins, no shared memory, no lanes, nothing durable), the same protocol and replies (its test
  checks reply for reply against hothost). Hot, static and hand-written take turns under the same
  load, in reverse order every other round (hot, static, hand-written, then hand-written, static,
  hot); each side's best round counts. Percentiles come from the load
  generator's histogram (log-linear, within about 3%).
- **p99 during swaps**: the same host and load, with POST /v1/activate alternating coin v1/v2
  every 100 ms, vs the phase just before it without swaps.
- **swap to serving**: admin activate until a request answers with the new version, vs one request's
  p50; a new .so renamed into the plugin directory until /v1/status shows it active, vs the poll interval.
- **RSS per version**: VmRSS of the host before and after 10 more coin versions were loaded (Go never
  unloads a plugin), divided by 10, vs the host's RSS.
- **shared memory per player**: the segment's size over its capacity vs the size of game.Player.
- **cross-player transaction and push delivery**: a host with the market and social modules; pairs of
  clients, a sender doing work, give <receiver> 1 and tell <receiver> in turn, the receiver only
  reading pushes, one request or push in flight per pair. give's reply vs work's (one transaction of
  two players vs one); a push from the sender's write to the receiver's read of the push line vs the
  same request's reply to the sender.
`

type gotestLine struct {
	pkg, name, raw string
	vals           map[string]float64
}

var procSuffix = regexp.MustCompile(`-\d+$`)

func parseGoTest(path string) ([]gotestLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []gotestLine
	pkg := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(p, "github.com/hothost/hothost/")
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		l := gotestLine{pkg: pkg, name: procSuffix.ReplaceAllString(f[0], ""), vals: map[string]float64{}}
		var parts []string
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			l.vals[f[i+1]] = v
			parts = append(parts, f[i]+" "+f[i+1])
		}
		l.raw = strings.Join(parts, ", ")
		out = append(out, l)
	}
	return out, sc.Err()
}

func goTestRatios(gt []gotestLine) []ratio {
	get := func(pkg, name, unit string) (float64, bool) {
		for _, l := range gt {
			if l.pkg == pkg && l.name == name {
				v, ok := l.vals[unit]
				return v, ok
			}
		}
		return 0, false
	}
	var rs []ratio
	pair := func(what, pkg, a, au, bn, bu, unit, note string) {
		va, ok1 := get(pkg, a, au)
		vb, ok2 := get(pkg, bn, bu)
		if !ok1 || !ok2 {
			rs = append(rs, ratio{what, "n/a", "n/a", "n/a", "benchmark missing from this run: " + pkg + " " + a})
			return
		}
		rs = append(rs, ratio{what, fmt.Sprintf("%.4g %s", va, unit), fmt.Sprintf("%.4g %s", vb, unit), x(va, vb), note})
	}
	pair("dispatch: plugin handler via table vs direct call", "loader", "BenchmarkCall/table-plugin", "ns/op",
		"BenchmarkCall/direct", "ns/op", "ns", "trivial handler, Entry.Call (per-P counters, its own recover)")
	if v, ok := get("host", "BenchmarkDispatch", "ns/op"); ok {
		d, _ := get("host", "BenchmarkDispatch", "direct-ns/op")
		r, _ := get("host", "BenchmarkDispatch", "dispatch-x")
		bare, _ := get("host", "BenchmarkDispatch", "bare-x")
		rs = append(rs, ratio{"dispatch as the host calls it: table, raw handler, per-lane count and latency bucket", fmt.Sprintf("%.4g ns", v),
			fmt.Sprintf("%.4g ns", d), fmt.Sprintf("%.2fx", r), fmt.Sprintf("goal <= 1.7x; request times 20-200 µs; the table call alone "+
				"(no count) %.2fx in the same run; the recover is the transaction's, not counted here", bare)})
	}
	if r, ok := get("state", "BenchmarkUpdateParallel", "parallel-x"); ok {
		v, _ := get("state", "BenchmarkUpdateParallel", "ns/op")
		c, _ := get("state", "BenchmarkUpdateParallel", "cpu-x")
		rs = append(rs, ratio{"parallel Update per op vs serial (players of its own per goroutine)", fmt.Sprintf("%.4g ns", v), "", fmt.Sprintf("%.2fx", r),
			fmt.Sprintf("goal <= 0.6x on 2 cores; CPU per op %.2fx serial", c)})
	}
	if r, ok := get("state", "BenchmarkRecovery1M", "x-clean"); ok {
		rec, _ := get("state", "BenchmarkRecovery1M", "recovery-ms")
		clean, _ := get("state", "BenchmarkRecovery1M", "clean-ms")
		rs = append(rs, ratio{"state open after kill -9 vs after SIGTERM, 1M players", fmt.Sprintf("%.4g ms", rec), fmt.Sprintf("%.4g ms", clean),
			fmt.Sprintf("%.2fx", r), "median of runs; records are checked by the background scrub after serving starts"})
	}
	if r, ok := get("state", "BenchmarkRunMulti", "multi-x"); ok {
		rs = append(rs, ratio{"cross-player transaction (2 players) vs single-player Run", "", "", fmt.Sprintf("%.2fx", r), "state RunMulti"})
	}
	for _, n := range []string{"2", "4", "8"} {
		if r, ok := get("state", "BenchmarkRunMultiPlayers/players="+n, "x-run"); ok {
			rs = append(rs, ratio{"transaction over " + n + " players vs single-player Run", "", "", fmt.Sprintf("%.2fx", r),
				"state RunMulti, every player changed, interleaved with Run"})
		}
	}
	if r, ok := get("state", "BenchmarkTimer", "timer-x"); ok {
		rs = append(rs, ratio{"timer scheduled and fired vs two Runs", "", "", fmt.Sprintf("%.2fx", r), "state timers in shared memory"})
	}
	if v, ok := get("state", "BenchmarkUpdate", "ns/op"); ok {
		in, _ := get("state", "BenchmarkUpdate", "inplace-ns/op")
		rs = append(rs, ratio{"transaction: Update vs the same function in place", fmt.Sprintf("%.4g ns", v), fmt.Sprintf("%.4g ns", in),
			x(v, in), fmt.Sprintf("overhead %.4g ns per request, 256-byte record", v-in)})
	}
	pair("read: pool Get vs Go slice index", "shmpool", "BenchmarkGet/pool", "ns/op", "BenchmarkGet/slice", "ns/op", "ns", "")
	pair("attach 1M x 256 B vs os.ReadFile of a snapshot", "shmpool", "BenchmarkAttach1M/attach", "ns/op",
		"BenchmarkAttach1M/readfile", "ns/op", "ns", "warm page cache")
	if rec, ok := get("state", "BenchmarkRecovery1M", "recovery-ms"); ok {
		if res, ok := get("state", "BenchmarkSnapshot1M", "restore-ms"); ok {
			rs = append(rs, ratio{"recovery after a crash vs snapshot restore, 1M players", fmt.Sprintf("%.4g ms", rec),
				fmt.Sprintf("%.4g ms", res), x(rec, res), "journal and index only; the scrub checks records later"})
		}
	}
	if res, ok := get("state", "BenchmarkSnapshot1M", "restore-ms"); ok {
		if dec, ok := get("state", "BenchmarkSnapshot1M", "json-decode-ms"); ok {
			rs = append(rs, ratio{"snapshot restore vs JSON decode, 1M players", fmt.Sprintf("%.4g ms", res), fmt.Sprintf("%.4g ms", dec),
				x(res, dec), ""})
		}
	}
	if v, ok := get("state", "BenchmarkRecovery1M", "shm-bytes/player"); ok {
		r, _ := get("state", "BenchmarkRecovery1M", "x-raw")
		rs = append(rs, ratio{"shared-memory bytes per player (state bench, 256 B record)", fmt.Sprintf("%.0f B", v), fmt.Sprintf("%.0f B", v/r),
			fmt.Sprintf("%.2fx", r), ""})
	}
	if p50, ok := get("loader", "BenchmarkActivate", "p50-ms"); ok {
		p99, _ := get("loader", "BenchmarkActivate", "p99-ms")
		rs = append(rs, ratio{"loader Activate (table swap) p50 / p99", fmt.Sprintf("%.3g ms / %.3g ms", p50, p99), "", "", "in-process"})
	}
	return rs
}
