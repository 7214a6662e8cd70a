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
//  4. `hotctl rollback coin` returns to v1.
//
// It prints what happened with figures and exits non-zero if a check fails.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hothost/hothost/client"
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
	os.Remove(filepath.Join("/dev/shm", d.cfg.StateName))
	defer os.Remove(filepath.Join("/dev/shm", d.cfg.StateName))

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
	t0 = time.Now()
	if d.proc, err = d.bins.Start(ctx, d.cfg); err != nil {
		return err
	}
	restart := time.Since(t0)
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

	fmt.Println("== shutdown (SIGTERM: drain, final snapshot, clean mark)")
	err = d.proc.Stop()
	d.check("clean shutdown", err == nil && strings.Contains(d.proc.Log(), "final snapshot"), "exit %v", err)
	d.proc = nil

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

// probe is the demo's own player 1, outside the load's ledger, logged in
// with a ticket minted with the host's key (as the game's account service
// would).
func (d *demo) probe() (*client.Conn, error) {
	tk, err := d.proc.Ticket(1)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(d.proc.Addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := c.LoginTicket(1, tk); err != nil {
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
