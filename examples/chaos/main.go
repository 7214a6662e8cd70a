// Command chaos is hothost's bounded chaos run (make chaos). Against real
// host processes, real plugins built by hhbuild and real TCP clients
// (internal/loadgen, which keeps a ledger of every acknowledged update) it
// runs:
//
//   - swap storm: 500 swaps of coin v1/v2 through the admin API under
//     load: zero failed requests, ledger exact;
//   - kill storm: 50 kill -9 of the host at random instants under load,
//     each followed by a restart: every acknowledged update present, zero
//     torn slots, resume time per restart;
//   - bad-plugin storm: the loader's bad corpus (and garbage, truncated,
//     checksum-mismatched and unflagged builds) dropped in under load:
//     none stays active, zero failed requests but the panicking handler's
//     own replies before probation rolls it back;
//   - faults: an unwritable snapshot directory, a pool too big for the
//     tmpfs, the segment deleted while the host is down, a corrupt snapshot;
//   - client abuse: oversized frames, garbage, half-open connections and
//     a connection flood up to the host's limit;
//   - auth abuse: forged, tampered, expired, other-player, missing,
//     malformed and alg-none login tickets, each answered with its `err
//     auth` and changing no player (admin /v1/player before and after); a
//     flood of failed logins from one address hits that address's limit
//     and no other's;
//   - runtime faults: each case of the host's runtime corpus
//     (host/testdata/runtime: os.Exit, a stack overflow, a panic on a
//     helper's goroutine, concurrent map writes, a handler that never
//     returns, one just over the deadline) dropped in as coin 1.5.0 under
//     load, a supervisor loop restarting the host when it dies: at most one
//     death per bad version, the version bad with its cause named, coin
//     1.0.0 serving, no other player's request failed, ledger exact;
//   - repair: plugins/fixes/coinfix under load (repair.go): a dry run, an
//     apply killed by kill -9 halfway and resumed after a restart, an
//     undo: every selected player fixed exactly once, the ledger exact
//     apart from the fix's recorded changes, undo back or in conflict;
//   - trades: give and trade in the ledger-checked mix through 50 coin
//     swaps and 50 kill -9s, and 20 kills inside cross-player commits
//     (trades.go): the total of coins exact at every audit;
//   - handover: 200 kill -9 of a supervised host's worker under load
//     (handover.go): zero client disconnects, zero failed requests, the
//     ledger exact (nothing lost or run twice), the pause per kill;
//   - upgrade: 20 host upgrades under load alternating two binaries, one
//     with a Title field more in the player state (upgrade.go): zero
//     disconnects, zero failed requests, the ledger exact, the field there
//     after each upgrade to that binary and gone after each one back.
//
// It prints a table and exits 1 on any violation. Everything lives in a
// temporary directory and /dev/shm/hothost-chaos-<pid>-*, removed at the end
// (-keep keeps the directory for the logs).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/internal/hostproc"
)

type row struct {
	scenario, check string
	ok              bool
	figures         string
}

type env struct {
	ctx    context.Context
	dir    string
	bins   *hostproc.Bins
	so     map[string]string // coin1, coin2, shop, profile: built plugin files
	prefix string            // state name prefix, unique per run
	rows   []row
	procs  []*hostproc.Proc
	log    *slog.Logger
	conns  int
}

func (e *env) check(scenario, check string, ok bool, format string, args ...any) {
	r := row{scenario, check, ok, fmt.Sprintf(format, args...)}
	e.rows = append(e.rows, r)
	mark := "PASS"
	if !ok {
		mark = "FAIL"
	}
	fmt.Printf("  [%s] %-18s %-44s %s\n", mark, scenario, check, r.figures)
}

func main() {
	dir := flag.String("dir", "", "work directory (default: a new temporary one)")
	keep := flag.Bool("keep", false, "keep the work directory (logs, data) at the end")
	only := flag.String("only", "", "comma-separated scenarios to run: swap,kill,bad,faults,abuse,auth,runtime,repair,trades,handover,upgrade (default all)")
	swaps := flag.Int("swaps", 500, "swap storm: swaps")
	kills := flag.Int("kills", 50, "kill storm: kill -9 and restarts")
	handovers := flag.Int("handovers", 200, "handover storm: kill -9 of a supervised host's worker")
	upgrades := flag.Int("upgrades", 20, "upgrade storm: host upgrades alternating two binaries")
	conns := flag.Int("conns", 8, "load connections")
	rtCases := flag.String("runtime", "", "runtime faults: comma-separated cases of host/testdata/runtime (default all: exit,overflow,gopanic,mapwrites,hang,slow)")
	limit := flag.Duration("timeout", 12*time.Minute, "the whole run's bound")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), *limit)
	defer cancel()

	e := &env{ctx: ctx, log: log, conns: *conns, prefix: fmt.Sprintf("hothost-chaos-%d", os.Getpid())}
	code := func() int {
		var err error
		if *dir == "" {
			if e.dir, err = os.MkdirTemp("", "hothost-chaos-"); err != nil {
				log.Error("work directory", "err", err)
				return 2
			}
		} else if e.dir, err = filepath.Abs(*dir); err != nil {
			log.Error("work directory", "err", err)
			return 2
		}
		defer e.cleanup(*keep)
		if err := e.build(); err != nil {
			log.Error("build", "err", err)
			return 2
		}
		want := func(s string) bool { return *only == "" || strings.Contains(","+*only+",", ","+s+",") }
		type scen struct {
			name string
			run  func() error
		}
		for _, s := range []scen{
			{"swap", func() error { return e.swapStorm(*swaps) }},
			{"kill", func() error { return e.killStorm(*kills) }},
			{"bad", e.badStorm},
			{"faults", e.faults},
			{"abuse", e.abuse},
			{"auth", e.authAbuse},
			{"runtime", func() error { return e.runtimeFaults(*rtCases) }},
			{"repair", e.repair},
			{"trades", func() error { return e.tradeStorm(*kills) }},
			{"handover", func() error { return e.handoverStorm(*handovers) }},
			{"upgrade", func() error { return e.upgradeStorm(*upgrades) }},
		} {
			if !want(s.name) {
				continue
			}
			fmt.Printf("== %s\n", s.name)
			t0 := time.Now()
			if err := s.run(); err != nil {
				e.check(s.name, "scenario ran to its end", false, "%v", err)
			}
			e.stopAll()
			fmt.Printf("   (%v)\n", time.Since(t0).Round(time.Millisecond))
		}
		return e.table()
	}()
	os.Exit(code)
}

// build compiles the binaries and the example game's plugins once.
func (e *env) build() error {
	t0 := time.Now()
	var err error
	if e.bins, err = hostproc.Build(filepath.Join(e.dir, "bin")); err != nil {
		return err
	}
	e.so = map[string]string{}
	out := filepath.Join(e.dir, "built")
	for _, p := range [][4]string{{"coin1", "plugins/coin/v1", "coin", "1.0.0"}, {"coin2", "plugins/coin/v2", "coin", "2.0.0"},
		{"shop", "plugins/shop", "shop", "1.0.0"}, {"profile", "plugins/profile", "profile", "1.0.0"}} {
		if e.so[p[0]], err = e.bins.Plugin(p[1], p[2], p[3], out); err != nil {
			return err
		}
	}
	fmt.Printf("built host and 4 plugins in %v (work directory %s)\n", time.Since(t0).Round(time.Millisecond), e.dir)
	return nil
}

// fresh prepares a host configuration of its own for one scenario: a work
// directory with coin v1 (and v2 if withV2), shop and profile installed,
// and a state segment name of its own.
func (e *env) fresh(tag string, withV2 bool, args ...string) (hostproc.Config, error) {
	cfg := hostproc.Config{Dir: filepath.Join(e.dir, tag), ShmDir: "/dev/shm", StateName: e.prefix + "-" + tag,
		Capacity: 10_000, Args: args}
	os.Remove(filepath.Join(cfg.ShmDir, cfg.StateName))
	pd := filepath.Join(cfg.Dir, "plugins-dir")
	if err := os.MkdirAll(pd, 0o700); err != nil {
		return cfg, err
	}
	for _, k := range []string{"coin1", "shop", "profile"} {
		if err := hostproc.Install(e.so[k], pd); err != nil {
			return cfg, err
		}
	}
	if withV2 {
		if err := hostproc.Install(e.so["coin2"], pd); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// serve is fresh then start: a new host in its own directory and segment,
// and the address its clients follow across restarts.
func (e *env) serve(tag string, withV2 bool, args ...string) (hostproc.Config, *hostproc.Proc, *addr, error) {
	cfg, err := e.fresh(tag, withV2, args...)
	if err != nil {
		return cfg, nil, nil, err
	}
	p, err := e.start(cfg)
	if err != nil {
		return cfg, nil, nil, err
	}
	return cfg, p, newAddr(p.Addr), nil
}

func (e *env) start(cfg hostproc.Config) (*hostproc.Proc, error) {
	p, err := e.bins.Start(e.ctx, cfg)
	if err != nil {
		return nil, err
	}
	e.procs = append(e.procs, p)
	return p, nil
}

// restart starts the host of cfg again after dead ended, as a supervisor
// does: it tells the new host how the last one ended (host.PrevExitEnv,
// exec's ProcessState.String(): "signal: killed", "exit status 7"). Without
// it the host cannot tell a kill from outside while a handler ran from
// that handler ending the process, and quarantines the handler's version.
func (e *env) restart(cfg hostproc.Config, dead *hostproc.Proc) (*hostproc.Proc, error) {
	cfg.Env = append(slices.Clone(cfg.Env), host.PrevExitEnv+"="+dead.Cmd.ProcessState.String())
	return e.start(cfg)
}

// stopAll kills whatever host a scenario left running.
func (e *env) stopAll() {
	for _, p := range e.procs {
		select {
		case <-p.Done():
		default:
			p.Kill()
		}
	}
	e.procs = nil
}

func (e *env) cleanup(keep bool) {
	e.stopAll()
	segs, _ := filepath.Glob(filepath.Join("/dev/shm", e.prefix+"-*"))
	for _, s := range segs {
		os.Remove(s)
	}
	if keep {
		fmt.Println("kept", e.dir)
		return
	}
	os.RemoveAll(e.dir)
}

func (e *env) table() int {
	failed := 0
	fmt.Printf("\n%-18s | %-44s | %-4s | %s\n", "scenario", "check", "ok", "figures")
	fmt.Printf("%s-+-%s-+-%s-+-%s\n", strings.Repeat("-", 18), strings.Repeat("-", 44), "----", strings.Repeat("-", 60))
	for _, r := range e.rows {
		mark := "PASS"
		if !r.ok {
			mark = "FAIL"
			failed++
		}
		fmt.Printf("%-18s | %-44s | %-4s | %s\n", r.scenario, r.check, mark, r.figures)
	}
	fmt.Printf("\n%d checks, %d failed\n", len(e.rows), failed)
	if failed > 0 || len(e.rows) == 0 {
		return 1
	}
	return 0
}
