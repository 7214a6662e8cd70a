package host_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hothost/hothost/client"
	"github.com/hothost/hothost/internal/hostproc"
	"github.com/hothost/hothost/internal/loadgen"
)

// The end-to-end tests run the real hothost binary, with real plugins built
// by the real build tool, and talk to it over TCP and its admin socket.
// They spend their time waiting on those processes, so they run in parallel
// (t.Parallel): each has its own work directory, segment directory and
// ports (:0), and environment seams go to its own host (Config.Env). The few
// that give a good call a short deadline (a 1 s watchdog, a 300 ms fix
// timeout) run alone, before the parallel ones, so that a busy machine
// cannot make a good call look hung.

var (
	bins    *hostproc.Bins
	staging string // built plugins: coin 1 and 2, shop, profile, social
)

// setup builds the binaries and plugins once, on first use: fuzz workers
// and unit-test-only runs of this binary never pay for it.
var setup = sync.OnceValue(func() error {
	dir, err := os.MkdirTemp("", "hothost-e2e-")
	if err != nil {
		return err
	}
	cleanup = func() { os.RemoveAll(dir) }
	if bins, err = hostproc.Build(filepath.Join(dir, "bin")); err != nil {
		return err
	}
	staging = filepath.Join(dir, "staging")
	return buildStaged([3]string{"plugins/coin/v1", "coin", "1.0.0"}, [3]string{"plugins/coin/v2", "coin", "2.0.0"},
		[3]string{"plugins/shop", "shop", "1.0.0"}, [3]string{"plugins/profile", "profile", "1.0.0"},
		[3]string{"plugins/social", "social", "1.0.0"}, [3]string{"plugins/market", "market", "1.0.0"})
})

// buildStaged builds plugins (source, name, version) into staging, all at
// once: a build mostly waits on the compiler and the linker.
func buildStaged(plugins ...[3]string) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(plugins))
	for _, p := range plugins {
		wg.Go(func() {
			if _, err := bins.Plugin(p[0], p[1], p[2], staging); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

var cleanup = func() {}

func TestMain(m *testing.M) {
	if os.Getenv(hostproc.EnvRaceHost) == "1" && !strings.Contains(os.Getenv("GORACE"), "atexit_sleep_ms") {
		// A race-built process that exits 0 first sleeps a second
		// (GORACE atexit_sleep_ms, default 1000). The loader turns that
		// off for its preflight children itself (five per host start,
		// most of the race run before it did); this covers the rest the
		// tests start and stop: hosts, hhbuild, hotctl. What the sleep
		// could still catch is a race by a goroutine that outlives main.
		os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// startHost starts a host in a fresh work directory with coin 1, shop and
// profile installed, and stops it (SIGKILL if still running) at cleanup.
func startHost(t *testing.T, args ...string) (*hostproc.Proc, hostproc.Config) {
	t.Helper()
	cfg := hostConfig(t, args...)
	return start(t, cfg), cfg
}

// hostConfig prepares what startHost starts: a work directory with the
// plugins installed, and a segment of the test's own.
func hostConfig(t *testing.T, args ...string) hostproc.Config {
	t.Helper()
	if err := setup(); err != nil {
		t.Fatalf("build binaries and plugins: %v", err)
	}
	dir := t.TempDir()
	// Named after the test for whoever finds one left behind, and made
	// unique: parallel tests, and -count runs of one test, run at once.
	shm, err := os.MkdirTemp("/dev/shm", "hothost-e2e-"+strings.ReplaceAll(t.Name(), "/", "-")+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	plugins := filepath.Join(dir, "plugins-dir")
	os.MkdirAll(plugins, 0o700)
	for _, so := range []string{"coin-1.0.0.so", "shop-1.0.0.so", "profile-1.0.0.so", "social-1.0.0.so", "market-1.0.0.so"} {
		if err := hostproc.Install(filepath.Join(staging, so), plugins); err != nil {
			t.Fatal(err)
		}
	}
	// A loaded test machine must not make a good handler look hung: tests
	// that exercise the watchdog set their own, later flag wins.
	args = append([]string{"-handler-timeout", "30s"}, args...)
	return hostproc.Config{Dir: dir, ShmDir: shm, StateName: "game", Capacity: 1000, Args: args}
}

func start(t *testing.T, cfg hostproc.Config) *hostproc.Proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := bins.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-p.Done():
		default:
			p.Kill()
		}
		if race := p.RaceReport(); race != "" && !pluginOwnRace(race) {
			t.Errorf("the host hit a data race:\n%s", race)
		}
		if t.Failed() {
			t.Logf("host log:\n%s", p.Log())
		}
	})
	return p
}

// pluginOwnRace reports whether every race in a -race host's report is
// between accesses made by plugin code alone (the runtime corpus's
// mapwrites plugin races on purpose): the accesses' stacks, up to where
// each goroutine's creation is shown, hold no frame of the host's own
// packages.
func pluginOwnRace(report string) bool {
	for _, block := range strings.Split(report, "WARNING: DATA RACE")[1:] {
		accesses := block
		if i := strings.Index(block, "Goroutine "); i >= 0 { // "Goroutine N (running) created at:"
			accesses = block[:i]
		}
		for _, line := range strings.Split(accesses, "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "github.com/hothost/hothost/") && !strings.Contains(line, "/testdata/") {
				return false
			}
		}
		if !strings.Contains(accesses, "hothostplugin/") {
			return false
		}
	}
	return true
}

func dial(t *testing.T, p *hostproc.Proc, player uint64) *client.Conn {
	t.Helper()
	c, err := client.Dial(p.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if player != 0 {
		if _, err := login(p, c, player); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// login logs c in as player with a ticket minted with p's key.
func login(p *hostproc.Proc, c *client.Conn, player uint64) (client.Reply, error) {
	tk, err := p.Ticket(player)
	if err != nil {
		return client.Reply{}, err
	}
	return c.LoginTicket(player, tk)
}

func do(t *testing.T, c *client.Conn, line string) client.Reply {
	t.Helper()
	r, err := c.Do(line)
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return r
}

func TestLoginAndCommands(t *testing.T) {
	t.Parallel()
	p, _ := startHost(t)
	c := dial(t, p, 0)
	if r := do(t, c, "work"); r.OK || r.Code != "nologin" {
		t.Fatalf("work before login: %s, want err nologin", r)
	}
	if r := do(t, c, "login zero"); r.OK || r.Code != "usage" {
		t.Fatalf("login zero: %s, want err usage", r)
	}
	if r := do(t, c, "login 7"); r.OK || r.Code != "auth" {
		t.Fatalf("login without a ticket: %s, want err auth", r)
	}
	tk8, _ := p.Ticket(8)
	if r := do(t, c, "login 7 "+tk8); r.OK || r.Code != "auth" || !strings.Contains(r.Text, "player") {
		t.Fatalf("login with another player's ticket: %s, want err auth", r)
	}
	if r, err := login(p, c, 7); err != nil || !r.OK || !strings.Contains(r.Text, "new player") {
		t.Fatalf("first login: %s %v", r, err)
	}
	steps := []struct{ line, want string }{
		{"work", "ok coins 10 level 0 v1"},
		{"work", "ok coins 20 level 0 v1"},
		{"buy sword", "err funds sword costs 50, you have 20"},
		{"buy potion", "ok bought potion for 5 coins 15"},
		{"buy dragon", `err item no item "dragon" for sale`},
		{"name Ada", "ok name Ada"},
		{"inventory", "ok inventory potion=1"},
		{"balance", "ok coins 15 xp 20 level 0"},
		{"fly", "err unknown"},
	}
	for _, s := range steps {
		if r := do(t, c, s.line); !strings.HasPrefix(r.String(), s.want) {
			t.Fatalf("%s: got %q, want prefix %q", s.line, r, s.want)
		}
	}
	if r := do(t, c, "help"); !r.OK || !strings.Contains(r.Text, "buy <item>: spend coins") || !strings.Contains(r.Text, "[coin 1.0.0]") {
		t.Fatalf("help: %s", r)
	}
	if r := do(t, c, "fly"); !strings.Contains(r.Text, "balance, buy, give, inventory, name, tell, trade, whoami, work") {
		t.Fatalf("err unknown should name the commands: %s", r)
	}
	if r := do(t, c, "whoami"); !strings.Contains(r.Text, "player 7 name Ada coins 15") {
		t.Fatalf("whoami: %s", r)
	}
	if r := do(t, c, "login 8 "+tk8); r.OK {
		t.Fatalf("switching players on one connection: %s, want refused", r)
	}
	var player struct {
		State map[string]any `json:"state"`
	}
	if err := p.Admin(context.Background(), "GET", "/v1/player?id=7", &player); err != nil {
		t.Fatal(err)
	}
	if player.State["Coins"] != float64(15) || player.State["Name"] != "Ada" {
		t.Fatalf("admin player view: %v", player.State)
	}
	if err := p.Admin(context.Background(), "GET", "/v1/player?id=999", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown player: %v, want 404", err)
	}
	if err := p.Admin(context.Background(), "POST", "/v1/activate?module=coin&version=9.9.9", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("activating a version never loaded: %v, want 404", err)
	}
}

// startLoad runs players 100.. doing `work` on one connection each, with
// internal/loadgen keeping the ledger of every acknowledged coin.
func startLoad(t *testing.T, p *hostproc.Proc, players int) *loadgen.Load {
	t.Helper()
	addr := p.Addr
	l, err := loadgen.Start(context.Background(), loadgen.Config{Addr: func() string { return addr }, Conns: players, Tickets: p.Tickets(),
		Players: players, FirstPlayer: 100, Mix: []loadgen.Weighted{{Cmd: "work", Weight: 1}}, Duration: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// waitAcks waits until the load has n replies, polling its counter; the
// load's own Duration bounds the wait.
func waitAcks(t *testing.T, l *loadgen.Load, n int64) {
	t.Helper()
	for last, stalled := l.Acked(), 0; l.Acked() < n; {
		if l.Failed() > 0 {
			t.Fatalf("load failed after %d replies: %v", l.Acked(), l.Stop().Codes)
		}
		if cur := l.Acked(); cur == last {
			if stalled++; stalled > 60_000 { // a minute of polls with no reply at all
				t.Fatalf("load stalled at %d replies, waited for %d", cur, n)
			}
		} else {
			last, stalled = cur, 0
		}
		time.Sleep(time.Millisecond) // polling a counter
	}
}

// verifyLedger compares every player's coins on the server with the
// ledger; the one allowed difference is a committed update whose reply a
// kill swallowed.
func verifyLedger(t *testing.T, p *hostproc.Proc, res *loadgen.Result) {
	t.Helper()
	ck := loadgen.Verify(context.Background(), p.Addr, res, 10*time.Second)
	if !ck.OK() || ck.Players == 0 {
		t.Errorf("ledger: %s: %q", ck, ck.Violations)
	}
}

func TestSwapUnderLoadLosesNothing(t *testing.T) {
	t.Parallel()
	p, cfg := startHost(t)
	l := startLoad(t, p, 8)
	waitAcks(t, l, 240)
	if err := hostproc.Install(filepath.Join(staging, "coin-2.0.0.so"), filepath.Join(cfg.Dir, "plugins-dir")); err != nil {
		t.Fatal(err)
	}
	probe := dial(t, p, 1)
	for r := do(t, probe, "work"); !strings.HasSuffix(r.Text, "v2"); r = do(t, probe, "work") {
		if !r.OK {
			t.Fatalf("probe during the swap: %s", r)
		}
	}
	// Swap back and forth by admin while the load runs.
	for i := range 20 {
		v := []string{"1.0.0", "2.0.0"}[i%2]
		if err := p.Admin(context.Background(), "POST", "/v1/activate?module=coin&version="+v, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitAcks(t, l, l.Acked()+320)
	res := l.Stop()
	if res.Failed > 0 || res.Transport > 0 {
		t.Fatalf("%d failed and %d lost requests during swaps: %v", res.Failed, res.Transport, res.Codes)
	}
	verifyLedger(t, p, res)
}

func TestKill9AndRestartKeepsEveryAcknowledgedCoin(t *testing.T) {
	t.Parallel()
	p, cfg := startHost(t)
	for round := range 3 {
		l := startLoad(t, p, 6)
		waitAcks(t, l, int64(120+222*round))
		p.Kill()
		res := l.Stop()
		p = start(t, cfg)
		var st struct {
			State struct {
				Opened string `json:"opened"`
			} `json:"state"`
		}
		if err := p.Admin(context.Background(), "GET", "/v1/status", &st); err != nil {
			t.Fatal(err)
		}
		if st.State.Opened != "recovered" {
			t.Fatalf("round %d: state %q after kill -9, want recovered", round, st.State.Opened)
		}
		verifyLedger(t, p, res)
	}
}

func TestBadAndOversizedFrames(t *testing.T) {
	t.Parallel()
	p, _ := startHost(t)
	c := dial(t, p, 5)
	if _, err := c.Write([]byte(strings.Repeat("x", 5000) + "\n")); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Read(); err != nil || r.Code != "frame" {
		t.Fatalf("oversized frame: %v %v, want err frame", r, err)
	}
	if r := do(t, c, "work"); !r.OK {
		t.Fatalf("session unusable after one bad frame: %s", r)
	}
	// The oversized frame was bad frame 1; four more end the session.
	for i := range 4 {
		c.Write([]byte{0xff, 0xfe, 0x00, '\n'})
		r, err := c.Read()
		if err != nil || r.Code != "frame" {
			t.Fatalf("garbage frame %d: %v %v", i, r, err)
		}
	}
	if _, err := c.Read(); err == nil {
		t.Fatal("connection still open after 5 bad frames")
	}
	// The host is unharmed: another client is served.
	if r := do(t, dial(t, p, 6), "work"); !r.OK {
		t.Fatalf("after an abusive client: %s", r)
	}
}

func TestAdminTCPNeedsToken(t *testing.T) {
	t.Parallel()
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600)
	p, cfg := startHost(t, "-admin-addr", "127.0.0.1:0", "-admin-token-file", tokenFile)
	var st struct {
		AdminAddr string `json:"admin_addr"`
	}
	if err := p.Admin(context.Background(), "GET", "/v1/status", &st); err != nil || st.AdminAddr == "" {
		t.Fatalf("status: %v, admin addr %q", err, st.AdminAddr)
	}
	call := func(token string) int {
		req, _ := http.NewRequest("POST", "http://"+st.AdminAddr+"/v1/snapshot", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := call(""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", code)
	}
	if code := call("s3cret-tokeX"); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d, want 401", code)
	}
	if code := call("s3cret-token"); code != http.StatusOK {
		t.Fatalf("right token: %d, want 200", code)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	// Every call, refused ones first, is in the audit log.
	f, err := os.Open(filepath.Join(cfg.Dir, "data", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			Who, Method, What, Result string
			Status                    int
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		got = append(got, fmt.Sprintf("%s %s %d %s", e.Method, e.What, e.Status, e.Who))
	}
	want := []string{"GET /v1/status 200 unix uid=", "POST /v1/snapshot 401 tcp 127.0.0.1:", "POST /v1/snapshot 401 tcp 127.0.0.1:", "POST /v1/snapshot 200 tcp 127.0.0.1:"}
	if len(got) < len(want) {
		t.Fatalf("audit log has %d entries, want at least %d: %q", len(got), len(want), got)
	}
	got = got[len(got)-len(want):]
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Fatalf("audit entry %d = %q, want prefix %q (all: %q)", i, got[i], want[i], got)
		}
	}
	if !strings.Contains(got[1], "no valid token") {
		t.Fatalf("refused call not marked: %q", got[1])
	}
}

func TestConfigReload(t *testing.T) {
	t.Parallel()
	p, cfg := startHost(t)
	c := dial(t, p, 9)
	for range 10 {
		do(t, c, "work")
	}
	file := filepath.Join(cfg.Dir, "data", "config", "prices.json")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	type cfgStatus struct {
		Config struct {
			Version int
			Error   string
		}
	}
	reload := func() cfgStatus {
		p.Admin(context.Background(), "POST", "/v1/reload", nil) // a refusal answers 409; the status tells
		var st cfgStatus
		if err := p.Admin(context.Background(), "GET", "/v1/status", &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	write(`{"items": {"potion": {"id": 3, "price": 9}}}`)
	if st := reload(); st.Config.Version != 2 || st.Config.Error != "" {
		t.Fatalf("valid change: %+v", st)
	}
	if r := do(t, c, "buy potion"); r.Text != "bought potion for 9 coins 91" {
		t.Fatalf("buy at the new price: %s", r)
	}
	for bad, why := range map[string]string{
		`{"items": {"potion": {"id": 3, "price": -4}}}`: "not negative",
		`{"work_reward": 10, "typo_field": 1}`:          `unknown field "typo_field"`,
		`{"work_reward": `:                              "unexpected EOF",
	} {
		write(bad)
		st := reload()
		if st.Config.Version != 2 || !strings.Contains(st.Config.Error, why) {
			t.Fatalf("invalid change %s: %+v, want version 2 kept and an error naming %q", bad, st, why)
		}
		if r := do(t, c, "buy potion"); !r.OK || !strings.HasPrefix(r.Text, "bought potion for 9") {
			t.Fatalf("old config not kept after %s: %s", bad, r)
		}
	}
}

func TestIdleTimeoutAndConnectionLimit(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		p, _ := startHost(t, "-idle-timeout", "300ms")
		idle := dial(t, p, 0)
		idle.Timeout = 0 // wait for the server to speak first
		r, err := idle.Read()
		if err != nil || r.Code != "idle" {
			t.Fatalf("an idle client got %v %v, want err idle", r, err)
		}
		if _, err := idle.Read(); err == nil {
			t.Fatal("connection still open after the idle reply")
		}
	})
	// Two connections are the limit: a third is told so and closed. (A
	// host of its own: with a short idle timeout a slow machine could reap
	// the first two.)
	t.Run("limit", func(t *testing.T) {
		p, _ := startHost(t, "-max-conns", "2")
		a, b := dial(t, p, 1), dial(t, p, 2)
		c, err := client.Dial(p.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if r, err := c.Read(); err != nil || r.Code != "full" {
			t.Fatalf("third connection: %v %v, want err full", r, err)
		}
		for _, conn := range []*client.Conn{a, b} {
			if r := do(t, conn, "work"); !r.OK {
				t.Fatalf("a connection within the limit: %s", r)
			}
		}
	})
}
