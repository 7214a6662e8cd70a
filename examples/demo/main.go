// Command demo is hothost's scripted walk-through (make demo). It builds the
// host, the admin CLI and the example game's plugins, starts the host on its
// defaults (state in /dev/shm, snapshots in a local data directory) and
// drives it with real TCP clients:
//
//  1. players work while coin v2 is dropped into the plugin directory: it
//     takes over with no failed request and exact coin totals;
//  2. a config price change is picked up live, an invalid one refused;
//  3. the host is killed with SIGKILL under load and restarted: every
//     acknowledged coin is still there;
//  4. `hotctl rollback coin` returns to v1;
//  5. a coin version whose work ends the process (the runtime corpus's
//     `exit`) is dropped in, and the host dies on the first work. The demo
//     restarts it as a supervisor would, saying how the last one ended
//     (HOTHOST_PREV_EXIT): the version is quarantined, v1 serves, and the
//     host says why;
//  6. a config bug paid ten players 100,000 coins for one work: the repair
//     plugin plugins/fixes/coinfix goes through `hotctl fix dry-run` (the
//     diff, nothing changed), `hotctl fix apply` under load (a snapshot
//     first, each player once, the load's ledger exact) and `hotctl fix
//     undo` (values back; a player who played since is a conflict, left
//     alone).
//
// It prints what happened with figures and exits non-zero if a check fails.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/hothost/hothost/client"
	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/internal/hostproc"
	"github.com/hothost/hothost/internal/loadgen"
)

type check struct {
	name   string
	ok     bool
	figure string
}

type demo struct {
	bins   *hostproc.Bins
	cfg    hostproc.Config
	proc   *hostproc.Proc
	checks []check
}

func (d *demo) check(name string, ok bool, format string, args ...any) {
	d.checks = append(d.checks, check{name, ok, fmt.Sprintf(format, args...)})
	mark := "PASS"
	if !ok {
		mark = "FAIL"
	}
	fmt.Printf("  [%s] %-44s %s\n", mark, name, fmt.Sprintf(format, args...))
}

func main() {
	dir := flag.String("dir", "demo-run", "work directory (rebuilt from scratch)")
	players := flag.Int("players", 8, "concurrent players")
	flag.Parse()
	if err := run(*dir, *players); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(dir string, nPlayers int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, _ = filepath.Abs(dir)
	os.RemoveAll(dir)
	for _, sub := range []string{"bin", "plugins-dir", "staging", "data/config"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	d := &demo{cfg: hostproc.Config{Dir: dir, ShmDir: "/dev/shm", StateName: "hothost-demo", Capacity: 10_000}}
	seg := filepath.Join("/dev/shm", d.cfg.StateName)
	os.Remove(seg)
	os.Remove(seg + ".marks") // the lanes' crash marks, beside the segment
	defer os.Remove(seg)
	defer os.Remove(seg + ".marks")

	fmt.Println("== build: host, hotctl, hhbuild and the example plugins (one set of flags, from the Makefile)")
	t0 := time.Now()
	var err error
	if d.bins, err = hostproc.Build(filepath.Join(dir, "bin")); err != nil {
		return err
	}
	type pl struct{ src, name, version, out string }
	var so2 string
	for _, p := range []pl{
		{"plugins/coin/v1", "coin", "1.0.0", "plugins-dir"}, {"plugins/shop", "shop", "1.0.0", "plugins-dir"},
		{"plugins/profile", "profile", "1.0.0", "plugins-dir"}, {"plugins/coin/v2", "coin", "2.0.0", "staging"},
	} {
		so, err := d.bins.Plugin(p.src, p.name, p.version, filepath.Join(dir, p.out))
		if err != nil {
			return err
		}
		if p.version == "2.0.0" {
			so2 = so
		}
	}
	soCrash, err := d.buildCrashing(filepath.Join(dir, "staging"))
	if err != nil {
		return err
	}
	soFix, err := d.bins.Plugin("plugins/fixes/coinfix", "coinfix", "1.0.0", filepath.Join(dir, "staging"))
	if err != nil {
		return err
	}
	fmt.Printf("   built in %v\n", time.Since(t0).Round(time.Millisecond))

	fmt.Println("== start the host")
	t0 = time.Now()
	if d.proc, err = d.bins.Start(ctx, d.cfg); err != nil {
		return err
	}
	defer func() {
		if d.proc != nil {
			d.proc.Kill()
		}
	}()
	fmt.Printf("   serving on %s after %v (admin socket %s)\n", d.proc.Addr, time.Since(t0).Round(time.Millisecond), d.proc.Socket)

	// The load's players are 1001.. and keep a ledger of every acknowledged
	// coin (internal/loadgen); player 1 is the demo's own probe.
	load := func() (*loadgen.Load, error) {
		addr := d.proc.Addr
		return loadgen.Start(ctx, loadgen.Config{Addr: func() string { return addr }, Conns: nPlayers, Players: nPlayers,
			FirstPlayer: 1001, Mix: []loadgen.Weighted{{Cmd: "work", Weight: 1}}, Duration: 4 * time.Minute,
			Tickets: d.proc.Tickets()})
	}
	probe, err := d.probe()
	if err != nil {
		return err
	}

	fmt.Println("== 1. hot swap: coin v2 dropped in while", nPlayers, "players work")
	l, err := load()
	if err != nil {
		return err
	}
	if err := waitAcks(ctx, l, 400); err != nil {
		return err
	}
	landed := time.Now()
	if err := hostproc.Install(so2, filepath.Join(dir, "plugins-dir")); err != nil {
		return err
	}
	w, err := probe.Do("work")
	for err == nil && !strings.HasSuffix(w.Text, "v2") && ctx.Err() == nil {
		w, err = probe.Do("work")
	}
	firstV2 := time.Since(landed)
	if err := waitAcks(ctx, l, l.Acked()+400); err != nil {
		return err
	}
	res := l.Stop()
	d.check("v2 took over under load", err == nil && strings.HasSuffix(w.Text, "v2"), "first v2 reply %v after the file landed", firstV2.Round(time.Millisecond))
	d.check("no failed request during the swap", res.Failed == 0 && res.Transport == 0, "%d requests, %d failed, %d lost", res.Requests, res.Failed, res.Transport)
	ck := loadgen.Verify(ctx, d.proc.Addr, res, 5*time.Second)
	d.check("every acknowledged coin present", ck.OK(), "%s", ck)

	fmt.Println("== 2. live config: potion price 5 -> 7, then an invalid change")
	cfgFile := filepath.Join(dir, "data", "config", "prices.json")
	if err := os.WriteFile(cfgFile, []byte(`{"items": {"potion": {"id": 3, "price": 7}}}`), 0o600); err != nil {
		return err
	}
	ver := d.waitConfig(ctx, 2)
	before, _ := probe.Do("balance")
	buy, _ := probe.Do("buy potion")
	b0, _ := before.Int("coins")
	b1, _ := buy.Int("coins")
	d.check("new price used by the next request", ver == 2 && buy.OK && b0-b1 == 7, "config v%d, paid %d coins (%s)", ver, b0-b1, buy)
	os.WriteFile(cfgFile, []byte(`{"items": {"potion": {"id": 3, "price": -1}}}`), 0o600)
	var status struct {
		Config struct {
			Version int    `json:"version"`
			Error   string `json:"error"`
		} `json:"config"`
	}
	for status.Config.Error == "" && ctx.Err() == nil {
		d.proc.Admin(ctx, "GET", "/v1/status", &status)
	}
	buy2, _ := probe.Do("buy potion")
	b2, _ := buy2.Int("coins")
	probe.Close()
	d.check("invalid config refused, old one kept", status.Config.Version == 2 && b1-b2 == 7, "still v%d: %q", status.Config.Version, status.Config.Error)
	os.WriteFile(cfgFile, []byte(`{"items": {"potion": {"id": 3, "price": 7}}}`), 0o600)

	fmt.Println("== 3. kill -9 under load, restart, count every acknowledged coin")
	if l, err = load(); err != nil {
		return err
	}
	if err := waitAcks(ctx, l, 800); err != nil {
		return err
	}
	d.proc.Kill()
	res = l.Stop() // each connection ends on the kill
	restart, err := d.restart(ctx)
	if err != nil {
		return err
	}
	var st struct {
		State struct {
			Report string `json:"report"`
		} `json:"state"`
	}
	d.proc.Admin(ctx, "GET", "/v1/status", &st)
	fmt.Printf("   %d requests acknowledged before the kill; restart to serving %v\n   %s\n", res.Requests-res.Transport, restart.Round(time.Millisecond), st.State.Report)
	ck = loadgen.Verify(ctx, d.proc.Addr, res, 5*time.Second)
	d.check("every acknowledged coin present", ck.OK(), "%s", ck)

	fmt.Println("== 4. hotctl rollback coin (back to v1)")
	out, err := exec.CommandContext(ctx, d.bins.Hotctl, "-socket", d.proc.Socket, "rollback", "coin").CombinedOutput()
	if probe, err2 := d.probe(); err2 == nil {
		w, _ = probe.Do("work")
		probe.Close()
	}
	d.check("rollback serves v1 again", err == nil && strings.HasSuffix(w.Text, "v1"), "hotctl: %s; work -> %s", strings.Join(strings.Fields(string(out)), " "), w)

	fmt.Println("== 5. coin " + crashVersion + " (its work calls os.Exit) dropped in: the host dies once, comes back on v1 and says why")
	if err := d.crashOnce(ctx, soCrash); err != nil {
		return err
	}

	fmt.Printf("== 6. repair: a config bug paid players %s %d coins for one work; hotctl fix dry-run, apply under load, undo\n", repairIDs, bugReward)
	if err := d.repair(ctx, soFix, load); err != nil {
		return err
	}

	fmt.Println("== shutdown (SIGTERM: drain, final snapshot, clean mark)")
	err = d.proc.Stop()
	d.check("clean shutdown", err == nil && strings.Contains(d.proc.Log(), "final snapshot"), "exit %v", err)
	d.proc = nil

	fmt.Println("== 7. the supervisor holds every connection: kill -9 of the worker, then hotctl upgrade, under load")
	if err := d.supervised(ctx, nPlayers); err != nil {
		return err
	}

	failed := 0
	for _, c := range d.checks {
		if !c.ok {
			failed++
		}
	}
	fmt.Printf("\n%d checks, %d failed. Logs and data: %s\n", len(d.checks), failed, dir)
	if failed > 0 {
		return fmt.Errorf("%d checks failed", failed)
	}
	return nil
}

// restart starts the host again after it ended, as a supervisor does: it
// tells the new host how the last one ended (host.PrevExitEnv, exec's
// ProcessState.String()). Without it the host cannot tell a kill -9 from
// outside while a handler ran from that handler ending the process, and
// would quarantine the handler's version.
func (d *demo) restart(ctx context.Context) (time.Duration, error) {
	cfg := d.cfg
	cfg.Env = []string{host.PrevExitEnv + "=" + d.proc.Cmd.ProcessState.String()}
	t0 := time.Now()
	p, err := d.bins.Start(ctx, cfg)
	d.proc = p
	return time.Since(t0), err
}

// probe is the demo's own player 1, outside the load's ledger.
func (d *demo) probe() (*client.Conn, error) { return d.player(1) }

// player is a connection logged in as player id with a ticket minted with
// the host's key (as the game's account service would).
func (d *demo) player(id uint64) (*client.Conn, error) {
	tk, err := d.proc.Ticket(id)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(d.proc.Addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := c.LoginTicket(id, tk); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// waitAcks waits until the load has n replies, polling its counter.
func waitAcks(ctx context.Context, l *loadgen.Load, n int64) error {
	for l.Acked() < n {
		if ctx.Err() != nil || l.Failed() > 0 {
			return fmt.Errorf("load stalled at %d replies (%d failed), waited for %d", l.Acked(), l.Failed(), n)
		}
		time.Sleep(time.Millisecond) // polling a counter, bounded by ctx
	}
	return nil
}

func (d *demo) waitConfig(ctx context.Context, version int) int {
	var st struct {
		Config struct {
			Version int `json:"version"`
		} `json:"config"`
	}
	for ctx.Err() == nil {
		if d.proc.Admin(ctx, "GET", "/v1/status", &st) == nil && st.Config.Version >= version {
			break
		}
	}
	return st.Config.Version
}

// crashVersion is the version the crashing coin is dropped in as: newer
// than v1, so the host activates it.
const crashVersion = "1.5.0"

// buildCrashing builds the runtime corpus's `exit` case
// (host/testdata/runtime/exit: coin v1 whose work calls os.Exit(7)) as coin
// crashVersion into out. It is copied into a folder of the module first
// (it imports coin v1's handlers by their import path), removed afterwards.
// The build tool's vet refuses os.Exit in plugin code, so the check is
// skipped: this is how a bad build reaches a host anyway, by a tool that
// does not check.
func (d *demo) buildCrashing(out string) (string, error) {
	gen := filepath.Join(d.bins.Root, "examples", "demo", "testdata", fmt.Sprintf("gen-exit-%d", os.Getpid()))
	os.RemoveAll(gen)
	defer os.RemoveAll(gen)
	if err := os.CopyFS(gen, os.DirFS(filepath.Join(d.bins.Root, "host", "testdata", "runtime", "exit"))); err != nil {
		return "", err
	}
	v := fmt.Sprintf("package main\n\nconst version = %q\n", crashVersion)
	if err := os.WriteFile(filepath.Join(gen, "version.go"), []byte(v), 0o644); err != nil {
		return "", err
	}
	rel, err := filepath.Rel(d.bins.Root, gen)
	if err != nil {
		return "", err
	}
	return d.bins.Plugin(rel, "coin", crashVersion, out, "-unsafe-skip-vet")
}

type versionLine struct {
	Module  string `json:"module"`
	Version string `json:"version"`
	State   string `json:"state"`
	Reason  string `json:"reason"`
}

// coinVersion is coin version's line of the host's version history.
func (d *demo) coinVersion(ctx context.Context, version string) (versionLine, error) {
	var vs []versionLine
	if err := d.proc.Admin(ctx, "GET", "/v1/versions", &vs); err != nil {
		return versionLine{}, err
	}
	for _, v := range vs {
		if v.Module == "coin" && v.Version == version && v.State != "rejected" {
			return v, nil
		}
	}
	return versionLine{}, fmt.Errorf("coin %s not in the version history", version)
}

// crashOnce drops the crashing coin in, lets the probe's work kill the
// host, restarts it the way a supervisor does and shows what it made of
// the crash.
func (d *demo) crashOnce(ctx context.Context, so string) error {
	if err := hostproc.Install(so, filepath.Join(d.cfg.Dir, "plugins-dir")); err != nil {
		return err
	}
	for {
		v, err := d.coinVersion(ctx, crashVersion)
		if err == nil && v.State == "active" {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("coin %s never became active (%s %s, %v)", crashVersion, v.State, v.Reason, err)
		}
		time.Sleep(20 * time.Millisecond) // polling the admin API, bounded by ctx
	}
	probe, err := d.probe()
	if err != nil {
		return err
	}
	r, workErr := probe.Do("work")
	probe.Close()
	select {
	case <-d.proc.Done():
	case <-ctx.Done():
		return fmt.Errorf("the host did not die of coin %s's work (work -> %v %v)", crashVersion, r, workErr)
	}
	exit := d.proc.Cmd.ProcessState.String()
	fmt.Printf("   work -> %v: the host died (%s)\n", workErr, exit)

	took, err := d.restart(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("   restarted with %s=%q, serving after %v\n", host.PrevExitEnv, exit, took.Round(time.Millisecond))
	var st struct {
		Modules   map[string]string `json:"modules"`
		LastCrash *host.CrashReport `json:"last_crash"`
	}
	if err := d.proc.Admin(ctx, "GET", "/v1/status", &st); err != nil {
		return err
	}
	bad, err := d.coinVersion(ctx, crashVersion)
	if err != nil {
		return err
	}
	if st.LastCrash != nil {
		fmt.Printf("   status last_crash: %s (quarantined: %t)\n", st.LastCrash.Reason, st.LastCrash.Quarantined)
	}
	fmt.Printf("   versions: coin %s %s: %s\n", bad.Version, bad.State, bad.Reason)
	quarantined := st.LastCrash != nil && st.LastCrash.Quarantined && bad.State == "bad" &&
		strings.Contains(bad.Reason, "coin "+crashVersion+" ran work for player 1")
	d.check("crashing version quarantined", exit == "exit status 7" && quarantined, "coin %s %s: %q", bad.Version, bad.State, bad.Reason)

	// No crash loop: v1 serves work again, and again.
	works, v1 := 0, 0
	if probe, err = d.probe(); err == nil {
		for range 20 {
			if w, err := probe.Do("work"); err == nil && strings.HasSuffix(w.Text, "v1") {
				v1++
			}
			works++
		}
		probe.Close()
	}
	d.check("back on v1, no crash loop", st.Modules["coin"] == "1.0.0" && v1 == 20, "coin %s active; %d of %d work replies from v1",
		st.Modules["coin"], v1, works)
	return nil
}

// The players the config bug pays, and what one work pays them: coinfix
// divides the coins of players above 10,000 by 10.
const (
	repairFirst, repairLast = 2001, 2010
	repairIDs               = "2001-2010"
	bugReward               = 100_000
)

// repair makes players repairFirst..repairLast rich with a bad config,
// then repairs them with `hotctl fix` (the fix file so is staged into the
// host's fix folder by hotctl itself): a dry run shows the diff and changes
// nothing, an apply under load fixes each player once without touching the
// load's players, and an undo puts the coins back except on a player who
// played since the fix.
func (d *demo) repair(ctx context.Context, so string, load func() (*loadgen.Load, error)) error {
	bug := filepath.Join(d.cfg.Dir, "data", "config", "bug.json")
	if err := os.WriteFile(bug, fmt.Appendf(nil, `{"work_reward": %d}`, bugReward), 0o600); err != nil {
		return err
	}
	if err := d.proc.Admin(ctx, "POST", "/v1/reload", nil); err != nil {
		return err
	}
	for id := uint64(repairFirst); id <= repairLast; id++ {
		if _, err := d.play(id, "work"); err != nil {
			return err
		}
	}
	if err := os.Remove(bug); err != nil {
		return err
	}
	if err := d.proc.Admin(ctx, "POST", "/v1/reload", nil); err != nil {
		return err
	}
	n := repairLast - repairFirst + 1

	out, err := d.hotctl(ctx, "fix", "dry-run", so, "-ids", repairIDs, "-limit", "3")
	rich, coinsErr := d.allCoins(ctx, bugReward)
	d.check("dry run shows the diff, changes nothing", err == nil && coinsErr == nil && rich == n &&
		strings.Contains(out, "DRY RUN of coinfix 1.0.0: nothing was changed") &&
		strings.Contains(out, fmt.Sprintf("Coins: %d -> %d", bugReward, bugReward/10)) &&
		strings.Contains(out, fmt.Sprintf("%d would change", n)) &&
		strings.Contains(out, fmt.Sprintf("Coins: %d players, total %d -> %d", n, n*bugReward, n*bugReward/10)),
		"%d of %d players still hold %d coins%s", rich, n, bugReward, errSuffix(errors.Join(err, coinsErr)))

	l, err := load()
	if err != nil {
		return err
	}
	if err := waitAcks(ctx, l, l.Acked()+200); err != nil {
		return err
	}
	out, err = d.hotctl(ctx, "fix", "apply", so, "-ids", repairIDs, "-diffs", "3")
	acked := l.Acked()
	if err == nil {
		err = waitAcks(ctx, l, acked+200)
	}
	res := l.Stop()
	ck := loadgen.Verify(ctx, d.proc.Addr, res, 5*time.Second)
	fixed, coinsErr := d.allCoins(ctx, bugReward/10)
	m := runRE.FindStringSubmatch(out)
	d.check("apply under load fixes each player once", err == nil && coinsErr == nil && m != nil && fixed == n &&
		strings.Contains(out, fmt.Sprintf("applied %d, unchanged 0, skipped 0, failed 0, pending 0", n)) &&
		strings.Contains(out, "snapshot taken before: ") && res.Failed == 0 && ck.OK(),
		"%d of %d players hold %d coins; the load: %d requests, %d failed; %s%s", fixed, n, bugReward/10,
		res.Requests, res.Failed, ck, errSuffix(errors.Join(err, coinsErr)))
	if m == nil {
		return fmt.Errorf("hotctl fix apply names no run: %v\n%s", err, out)
	}

	// Player repairFirst plays on after the fix: its coins are no longer
	// what the fix wrote, and undo must leave them alone.
	if _, err := d.play(repairFirst, "work"); err != nil {
		return err
	}
	out, err = d.hotctl(ctx, "fix", "undo", m[1])
	back, coinsErr := d.allCoins(ctx, bugReward)
	played, playedErr := d.coins(ctx, repairFirst)
	wantPlayed := int64(bugReward/10 + 10)
	d.check("undo puts back, lists who played since", err == nil && coinsErr == nil && playedErr == nil &&
		back == n-1 && played == wantPlayed &&
		strings.Contains(out, fmt.Sprintf("restored %d, already 0, forced 0, missing 0, conflicts 1", n-1)) &&
		strings.Contains(out, fmt.Sprintf("conflict player %d (changed since the fix, left alone): Coins: %d -> %d", repairFirst, bugReward/10, wantPlayed)),
		"%d of %d players back to %d coins; player %d kept its %d%s", back, n, bugReward, repairFirst, played,
		errSuffix(errors.Join(err, coinsErr, playedErr)))
	return nil
}

// runRE finds the run id in `hotctl fix apply`'s report.
var runRE = regexp.MustCompile(`(?m)^run (\S+): done$`)

// hotctl runs the admin CLI against the host and shows what it printed,
// indented.
func (d *demo) hotctl(ctx context.Context, args ...string) (string, error) {
	b, err := exec.CommandContext(ctx, d.bins.Hotctl, append([]string{"-socket", d.proc.Socket}, args...)...).CombinedOutput()
	// Paths are shown relative to the demo's directory.
	out := strings.ReplaceAll(string(b), d.cfg.Dir+"/", "")
	fmt.Printf("   $ hotctl %s\n", strings.ReplaceAll(strings.Join(args, " "), d.cfg.Dir+"/", ""))
	for line := range strings.Lines(out) {
		fmt.Print("     ", line)
	}
	if err != nil {
		return out, fmt.Errorf("hotctl %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}

// play logs player id in and runs one command.
func (d *demo) play(id uint64, cmd string) (client.Reply, error) {
	c, err := d.player(id)
	if err != nil {
		return client.Reply{}, err
	}
	defer c.Close()
	r, err := c.Do(cmd)
	if err == nil && !r.OK {
		err = fmt.Errorf("player %d %s: %s", id, cmd, r)
	}
	return r, err
}

// coins is a player's committed coins, read through the admin API.
func (d *demo) coins(ctx context.Context, id uint64) (int64, error) {
	var pl struct{ State struct{ Coins int64 } }
	err := d.proc.Admin(ctx, "GET", fmt.Sprintf("/v1/player?id=%d", id), &pl)
	return pl.State.Coins, err
}

// allCoins counts the repair's players that hold want coins.
func (d *demo) allCoins(ctx context.Context, want int64) (int, error) {
	n := 0
	for id := uint64(repairFirst); id <= repairLast; id++ {
		c, err := d.coins(ctx, id)
		if err != nil {
			return n, err
		}
		if c == want {
			n++
		}
	}
	return n, nil
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}

// supervised starts the host as it starts by default, a supervisor and its
// worker, on the same state, and shows the clients' connections held
// across a kill -9 of the worker and an upgrade: the load opens one
// connection per player and may not reconnect, so the count of
// connections opened stays where it started.
func (d *demo) supervised(ctx context.Context, nPlayers int) error {
	cfg := d.cfg
	cfg.Supervised = true
	p, err := d.bins.Start(ctx, cfg)
	if err != nil {
		return err
	}
	d.proc = p
	addr := p.Addr
	l, err := loadgen.Start(ctx, loadgen.Config{Addr: func() string { return addr }, Conns: nPlayers, Players: nPlayers,
		FirstPlayer: 1001, Mix: []loadgen.Weighted{{Cmd: "work", Weight: 3}, {Cmd: "balance", Weight: 1}}, Duration: 4 * time.Minute,
		Tickets: p.Tickets()})
	if err != nil {
		return err
	}
	defer l.Stop()
	if err := waitAcks(ctx, l, 400); err != nil {
		return err
	}
	pid, err := p.WorkerPID(ctx)
	if err != nil {
		return err
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t0 := time.Now()
	next := pid
	for (next == pid || next == 0) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond) // polling the admin socket until the next worker answers
		next, _ = p.WorkerPID(ctx)
	}
	acked := l.Acked()
	if err := waitAcks(ctx, l, acked+1); err != nil {
		return err
	}
	fmt.Printf("   worker %d killed; worker %d answered the held connections %v later\n", pid, next, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	fmt.Println("   an upgrade, here to the same build (make chaos alternates two builds whose player state differs):")
	_, err = d.hotctl(ctx, "upgrade")
	upgraded, _ := p.WorkerPID(ctx)
	if err := waitAcks(ctx, l, l.Acked()+400); err != nil {
		return err
	}
	res := l.Stop()
	opened := int64(nPlayers) + res.Reconnects
	d.check("connections held across a kill -9 and an upgrade", err == nil && upgraded != next && res.Transport == 0 && res.Reconnects == 0,
		"connections opened: %d, as at the start (%d players); upgrade took %v; workers %d -> %d -> %d",
		opened, nPlayers, time.Since(t0).Round(time.Millisecond), pid, next, upgraded)
	d.check("no request failed, lost or doubled", res.Failed == 0, "%d requests, %d failed", res.Requests, res.Failed)
	ck := loadgen.Verify(ctx, addr, res, 5*time.Second)
	d.check("every acknowledged coin present, exactly once", ck.OK(), "%s", ck)
	err = p.Stop()
	d.proc = nil
	d.check("supervisor stopped cleanly", err == nil, "exit %v", err)
	return nil
}
