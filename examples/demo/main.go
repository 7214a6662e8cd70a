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
	"sync"
	"sync/atomic"
	"time"

	"github.com/hothost/hothost/client"
	"github.com/hothost/hothost/internal/hostproc"
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

	ids := make([]uint64, nPlayers)
	for i := range ids {
		ids[i] = uint64(1001 + i)
	}

	fmt.Println("== 1. hot swap: coin v2 dropped in while", nPlayers, "players work")
	l := startLoad(d.proc.Addr, ids)
	l.waitEach(50)
	if err := hostproc.Install(so2, filepath.Join(dir, "plugins-dir")); err != nil {
		return err
	}
	firstV2 := l.waitAllSee("v2", ctx)
	l.waitEach(l.minCount() + 50)
	st := l.stop()
	d.check("v2 took over under load", firstV2 > 0, "first v2 reply %v after the file landed", firstV2.Round(time.Millisecond))
	d.check("no failed request during the swap", st.failed == 0, "%d requests, %d failed", st.total, st.failed)
	d.verifyLedger(l, 0)

	fmt.Println("== 2. live config: potion price 5 -> 7, then an invalid change")
	cfgFile := filepath.Join(dir, "data", "config", "prices.json")
	if err := os.WriteFile(cfgFile, []byte(`{"items": {"potion": {"id": 3, "price": 7}}}`), 0o600); err != nil {
		return err
	}
	ver := d.waitConfig(ctx, 2)
	c, err := client.Dial(d.proc.Addr, 5*time.Second)
	if err != nil {
		return err
	}
	c.Login(ids[0])
	before, _ := c.Do("balance")
	buy, _ := c.Do("buy potion")
	b0, _ := before.Int("coins")
	b1, _ := buy.Int("coins")
	l.setLast(ids[0], b1)
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
	buy2, _ := c.Do("buy potion")
	b2, _ := buy2.Int("coins")
	l.setLast(ids[0], b2)
	c.Close()
	d.check("invalid config refused, old one kept", status.Config.Version == 2 && b1-b2 == 7, "still v%d: %q", status.Config.Version, status.Config.Error)
	os.WriteFile(cfgFile, []byte(`{"items": {"potion": {"id": 3, "price": 7}}}`), 0o600)

	fmt.Println("== 3. kill -9 under load, restart, count every acknowledged coin")
	l2 := startLoad(d.proc.Addr, ids)
	l2.last = l.last
	l2.waitEach(100)
	d.proc.Kill()
	st2 := l2.stop()
	t0 = time.Now()
	if d.proc, err = d.bins.Start(ctx, d.cfg); err != nil {
		return err
	}
	restart := time.Since(t0)
	var st3 struct {
		State struct {
			Opened string `json:"opened"`
			Report string `json:"report"`
		} `json:"state"`
	}
	d.proc.Admin(ctx, "GET", "/v1/status", &st3)
	fmt.Printf("   %d requests acknowledged before the kill; restart to serving %v\n   %s\n", st2.total, restart.Round(time.Millisecond), st3.State.Report)
	d.verifyLedger(l2, 20)

	fmt.Println("== 4. hotctl rollback coin (back to v1)")
	out, err := exec.CommandContext(ctx, d.bins.Hotctl, "-socket", d.proc.Socket, "rollback", "coin").CombinedOutput()
	c, err2 := client.Dial(d.proc.Addr, 5*time.Second)
	if err2 != nil {
		return err2
	}
	c.Login(ids[0])
	w, _ := c.Do("work")
	c.Close()
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

// verifyLedger checks each player's balance against the last coins the
// server acknowledged. slack is the one unacknowledged update a kill may
// have committed without its reply getting out.
func (d *demo) verifyLedger(l *load, slack int64) {
	exact, within := 0, 0
	var total int64
	for id, want := range l.last {
		got, err := balance(d.proc.Addr, id)
		if err != nil {
			d.check("ledger", false, "%v", err)
			return
		}
		total += got
		switch {
		case got == want:
			exact++
		case got > want && got-want <= slack:
			within++
		default:
			d.check(fmt.Sprintf("ledger player %d", id), false, "server has %d coins, %d acknowledged", got, want)
		}
	}
	d.check("every acknowledged coin present", exact+within == len(l.last),
		"%d players exact, %d with one unacknowledged commit, %d coins in all", exact, within, total)
}

// balance asks the server for one player's coins on a connection of its own.
func balance(addr string, id uint64) (int64, error) {
	c, err := client.Dial(addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := c.Login(id); err != nil {
		return 0, err
	}
	r, err := c.Do("balance")
	if err != nil {
		return 0, err
	}
	coins, ok := r.Int("coins")
	if !ok {
		return 0, fmt.Errorf("balance of %d: %s", id, r)
	}
	return coins, nil
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

// load is N players, one connection each, working in a loop.
type load struct {
	mu      sync.Mutex
	last    map[uint64]int64 // coins in the last acknowledged reply
	count   map[uint64]int
	seen    map[uint64]time.Time // when the player first saw the awaited marker
	marker  string
	start   time.Time
	total   atomic.Int64
	failed  atomic.Int64
	stopped atomic.Bool
	wg      sync.WaitGroup
	changed *sync.Cond
}

type loadStats struct{ total, failed int64 }

func startLoad(addr string, ids []uint64) *load {
	l := &load{last: map[uint64]int64{}, count: map[uint64]int{}, seen: map[uint64]time.Time{}, start: time.Now()}
	l.changed = sync.NewCond(&l.mu)
	for _, id := range ids {
		l.wg.Add(1)
		go l.player(addr, id)
	}
	return l
}

func (l *load) player(addr string, id uint64) {
	defer l.wg.Done()
	defer func() { l.mu.Lock(); l.count[id] = 1 << 30; l.changed.Broadcast(); l.mu.Unlock() }()
	c, err := client.Dial(addr, 5*time.Second)
	if err != nil {
		l.failed.Add(1)
		return
	}
	defer c.Close()
	if _, err := c.Login(id); err != nil {
		l.failed.Add(1)
		return
	}
	for !l.stopped.Load() {
		r, err := c.Do("work")
		if err != nil {
			if !l.stopped.Load() {
				l.failed.Add(1)
			}
			return
		}
		coins, ok := r.Int("coins")
		if !r.OK || !ok {
			l.failed.Add(1)
			continue
		}
		l.total.Add(1)
		l.mu.Lock()
		l.last[id] = coins
		l.count[id]++
		if l.marker != "" && strings.HasSuffix(r.Text, l.marker) && l.seen[id].IsZero() {
			l.seen[id] = time.Now()
		}
		l.changed.Broadcast()
		l.mu.Unlock()
	}
}

func (l *load) minCount() int {
	m := 1 << 30
	for _, n := range l.count {
		m = min(m, n)
	}
	return m
}

// waitEach waits until every player has n acknowledged requests.
func (l *load) waitEach(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.count) == 0 || l.minCount() < n {
		l.changed.Wait()
	}
}

// waitAllSee waits until every player got a reply ending in marker and
// returns how long after the call the first one came.
func (l *load) waitAllSee(marker string, ctx context.Context) time.Duration {
	from := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.marker = marker
	for len(l.seen) < len(l.count) && ctx.Err() == nil {
		l.changed.Wait()
	}
	first := time.Duration(0)
	for _, t := range l.seen {
		if d := t.Sub(from); first == 0 || d < first {
			first = d
		}
	}
	return first
}

func (l *load) setLast(id uint64, coins int64) {
	l.mu.Lock()
	l.last[id] = coins
	l.mu.Unlock()
}

// stop ends the load: after a kill the connections end by themselves.
func (l *load) stop() loadStats {
	l.stopped.Store(true)
	l.wg.Wait()
	return loadStats{l.total.Load(), l.failed.Load()}
}
