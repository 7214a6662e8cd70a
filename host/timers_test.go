package host_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hothost/hothost/client"
	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/internal/hostproc"
)

// The timer tests run the real host with the example module town (`build
// house` pays now; a timer adds the house and pushes "your house is built")
// and the test module alarm (testdata/timers/alarm: timers that ring, fail,
// panic or stall), both built by the real build tool.

// timerSetup builds town 1.0.0, town 2.0.0 (the same source with another
// version.go) and alarm 1.0.0 into the e2e staging directory, once.
var timerSetup = sync.OnceValue(func() error {
	if err := setup(); err != nil {
		return err
	}
	gen := filepath.Join("testdata", "timers", fmt.Sprintf("gen-town-%d", os.Getpid()))
	defer os.RemoveAll(gen)
	if err := os.CopyFS(gen, os.DirFS(filepath.Join("..", "plugins", "town"))); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(gen, "version.go"), []byte("package main\n\nconst version = \"2.0.0\"\n"), 0o644); err != nil {
		return err
	}
	return buildStaged([3]string{"plugins/town", "town", "1.0.0"}, [3]string{filepath.Join("host", gen), "town", "2.0.0"},
		[3]string{"host/testdata/timers/alarm", "alarm", "1.0.0"})
})

// timerHost starts a host with the example modules, town and alarm, a
// house that takes 50ms to build, and the timer test seam armed: the
// poller fires nothing while the file hold exists.
func timerHost(t *testing.T, args ...string) (p *hostproc.Proc, cfg hostproc.Config, hold string) {
	t.Helper()
	if err := timerSetup(); err != nil {
		t.Fatalf("build the timer plugins: %v", err)
	}
	p, cfg = startHost(t, args...)
	if err := p.Stop(); err != nil { // it made the work directory; the seam needs a start of its own
		t.Fatal(err)
	}
	for _, so := range []string{"town-1.0.0.so", "alarm-1.0.0.so"} {
		if err := hostproc.Install(filepath.Join(staging, so), filepath.Join(cfg.Dir, "plugins-dir")); err != nil {
			t.Fatal(err)
		}
	}
	house := `{"house": {"id": 100, "price": 100, "seconds": 0.05}}`
	if err := os.WriteFile(filepath.Join(cfg.Dir, "data", "config", "house.json"), []byte(house), 0o600); err != nil {
		t.Fatal(err)
	}
	hold = filepath.Join(cfg.Dir, "hold-timers")
	cfg.Env = append(cfg.Env, host.TimerHoldEnv+"="+hold)
	p = start(t, cfg)
	waitActive(t, p, "town", "1.0.0")
	waitActive(t, p, "alarm", "1.0.0")
	return p, cfg, hold
}

// housePlayer logs player in and works until it has 100 coins: one house.
func housePlayer(t *testing.T, p *hostproc.Proc, player uint64) *client.Conn {
	t.Helper()
	c := dial(t, p, player)
	for range 10 {
		do(t, c, "work")
	}
	return c
}

func nextPush(t *testing.T, c *client.Conn) string {
	t.Helper()
	push, err := c.NextPush(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return push
}

func pendingTimers(t *testing.T, p *hostproc.Proc, player uint64) []host.TimerInfo {
	t.Helper()
	var doc struct{ Timers []host.TimerInfo }
	if err := p.Admin(context.Background(), "GET", fmt.Sprintf("/v1/player/timers?id=%d", player), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Timers
}

// checkBuiltOnce checks that player paid for one house and holds one, that
// no timer is left to fire, and that c got no other push.
func checkBuiltOnce(t *testing.T, p *hostproc.Proc, c *client.Conn, player uint64) {
	t.Helper()
	if r := do(t, c, "inventory"); r.Text != "inventory house=1" {
		t.Fatalf("inventory after the house was built: %s", r)
	}
	if r := do(t, c, "balance"); !strings.HasPrefix(r.Text, "coins 0 ") {
		t.Fatalf("balance after one house: %s", r)
	}
	if ts := pendingTimers(t, p, player); len(ts) != 0 {
		t.Fatalf("timers left after the house was built: %+v", ts)
	}
	if n := len(c.Pushes()); n != 0 {
		t.Fatalf("%d more pushes after the house was built: %q", n, <-c.Pushes())
	}
}

func TestTimerFiresOnceAndPushes(t *testing.T) {
	t.Parallel()
	p, _, _ := timerHost(t)
	c := housePlayer(t, p, 21)
	if r := do(t, c, "build house"); r.Text != "building a house for 100 coins, ready in 50ms; coins 0" {
		t.Fatalf("build house: %s", r)
	}
	if r := do(t, c, "build house"); r.OK || r.Code != "funds" {
		t.Fatalf("a second house without the coins: %s, want err funds", r)
	}
	if push := nextPush(t, c); push != "your house is built (town 1.0.0)" {
		t.Fatalf("push: %q", push)
	}
	checkBuiltOnce(t, p, c, 21)
	if r := do(t, c, "house_built"); r.OK || r.Code != "usage" {
		t.Fatalf("a client sending the timer's message: %s, want err usage", r)
	}
	if r := do(t, c, "inventory"); r.Text != "inventory house=1" {
		t.Fatalf("inventory after a client sent house_built: %s", r)
	}
}

// A timer scheduled on town 1.0.0 fires on town 2.0.0, activated while it
// was pending; hotctl lists it meanwhile.
func TestTimerFiresOnTheVersionActiveThen(t *testing.T) {
	t.Parallel()
	p, cfg, hold := timerHost(t)
	c, timer := buildHeld(t, p, hold, 22)
	out, stderr, err := runHotctl(t, p, "player", "22")
	if err != nil || !strings.Contains(out, `"Coins": 0`) || !strings.Contains(out, "timers: 1 pending") ||
		!strings.Contains(out, strconv.FormatUint(timer.ID, 10)) || !strings.Contains(out, "house_built") {
		t.Fatalf("hotctl player 22: %v\n%s%s", err, out, stderr)
	}

	if err := hostproc.Install(filepath.Join(staging, "town-2.0.0.so"), filepath.Join(cfg.Dir, "plugins-dir")); err != nil {
		t.Fatal(err)
	}
	waitActive(t, p, "town", "2.0.0")
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	if push := nextPush(t, c); push != "your house is built (town 2.0.0)" {
		t.Fatalf("push: %q, want it from town 2.0.0", push)
	}
	checkBuiltOnce(t, p, c, 22)
}

// The host goes down while a timer is due (held by the seam), by kill -9
// or by a clean shutdown; the next host fires it once.
func TestTimerFiresOnceAfterRestart(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"kill -9", "clean shutdown"} {
		t.Run(how, func(t *testing.T) {
			p, cfg, hold := timerHost(t)
			c, timer := buildHeld(t, p, hold, 23)
			if how == "kill -9" {
				p.Kill()
			} else if err := p.Stop(); err != nil {
				t.Fatal(err)
			}
			c.Close()

			p = start(t, cfg) // the file still holds the timers
			c = dial(t, p, 23)
			if after := pendingTimers(t, p, 23); len(after) != 1 || after[0] != timer {
				t.Fatalf("after the restart, pending timers %+v, want %+v", after, timer)
			}
			if err := os.Remove(hold); err != nil {
				t.Fatal(err)
			}
			if push := nextPush(t, c); push != "your house is built (town 1.0.0)" {
				t.Fatalf("push: %q", push)
			}
			checkBuiltOnce(t, p, c, 23)
		})
	}
}

// buildHeld holds the timers (the seam's file), has player build a house
// and waits until its timer is due and held: it has not fired.
func buildHeld(t *testing.T, p *hostproc.Proc, hold string, player uint64) (*client.Conn, host.TimerInfo) {
	t.Helper()
	if err := os.WriteFile(hold, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := housePlayer(t, p, player)
	do(t, c, "build house")
	ts := pendingTimers(t, p, player)
	if len(ts) != 1 || ts[0].Msg != "house_built" || ts[0].Args != "" {
		t.Fatalf("pending timers: %+v, want one house_built", ts)
	}
	waitLog(t, p, "timers held by the test seam")
	if !ts[0].Due.Before(time.Now()) {
		t.Fatalf("the timer was held before it was due (%v)", ts[0].Due)
	}
	return c, ts[0]
}

// waitLog polls the host's log until it holds text.
func waitLog(t *testing.T, p *hostproc.Proc, text string) {
	t.Helper()
	for start := time.Now(); !strings.Contains(p.Log(), text); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > time.Minute {
			t.Fatalf("the host never logged %q:\n%s", text, p.Log())
		}
	}
}

// A timer whose message nothing handles, or whose handler refuses or
// panics, is removed without effect and logged; a cancelled one never
// fires; the poller goes on. Timers fire in due order, so the last ring's
// push means every earlier timer was dealt with.
func TestTimerFailuresAreRemovedAndLogged(t *testing.T) {
	t.Parallel()
	p, _, _ := timerHost(t)
	c := dial(t, p, 24)
	for _, line := range []string{"alarm 0 nosuch", "alarm 1 fail", "alarm 2 boom"} {
		if r := do(t, c, line); !r.OK {
			t.Fatalf("%s: %s", line, r)
		}
	}
	r := do(t, c, "alarm 3 ring cancelled")
	id := strings.TrimPrefix(r.Text, "alarm ")
	if r := do(t, c, "cancel "+id); r.Text != "cancelled "+id {
		t.Fatalf("cancel %s: %s", id, r)
	}
	if r := do(t, c, "cancel "+id); r.OK || r.Code != "timer" || !strings.Contains(r.Text, "timer not pending") {
		t.Fatalf("cancel %s again: %s, want err timer", id, r)
	}
	if r := do(t, c, "alarm 0 "+strings.Repeat("x", 33)); r.OK || r.Code != "timer" || !strings.Contains(r.Text, "bad timer") {
		t.Fatalf("alarm with a 33-byte message: %s, want err timer", r)
	}
	do(t, c, "alarm 4 ring last")
	if push := nextPush(t, c); !strings.HasPrefix(push, "ring last due ") {
		t.Fatalf("push: %q, want the last ring only", push)
	}
	if r := do(t, c, "balance"); !strings.HasPrefix(r.Text, "coins 1 ") {
		t.Fatalf("balance: %s, want the one coin of the last ring", r)
	}
	if ts := pendingTimers(t, p, 24); len(ts) != 0 {
		t.Fatalf("timers left: %+v", ts)
	}
	if n := len(c.Pushes()); n != 0 {
		t.Fatalf("%d more pushes: %q", n, <-c.Pushes())
	}
	log := p.Log()
	for _, want := range []string{`reason=unhandled player=24 msg=nosuch`, `no active version handles \"nosuch\"`,
		`reason=refused player=24 msg=fail`, `fail refuses on purpose`, `reason=panic player=24 msg=boom`, `boom for player 24`} {
		if !strings.Contains(log, want) {
			t.Errorf("the host log does not say %q", want)
		}
	}
	metrics, _, err := runHotctl(t, p, "metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`hothost_timers_failed_total{reason="unhandled"} 1`, `hothost_timers_failed_total{reason="refused"} 1`,
		`hothost_timers_failed_total{reason="panic"} 1`, "hothost_timers_fired_total 1", "hothost_timers_pending 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics do not say %q", want)
		}
	}
}

// A timer's handler that never returns is fenced by the watchdog like a
// request: the timer is removed, its player unchanged, and a fresh poller
// fires the timers after it. Not parallel: a 1 s watchdog (see e2e_test.go).
func TestTimerHungHandlerIsFenced(t *testing.T) {
	p, _, _ := timerHost(t, "-handler-timeout", "1s")
	stalled, other := dial(t, p, 25), housePlayer(t, p, 26)
	do(t, stalled, "alarm 0 stall")
	do(t, other, "build house")
	if push := nextPush(t, other); push != "your house is built (town 1.0.0)" {
		t.Fatalf("push after the stalled timer: %q", push)
	}
	checkBuiltOnce(t, p, other, 26)
	waitLog(t, p, "reason=hung player=25 msg=stall")
	if ts := pendingTimers(t, p, 25); len(ts) != 0 {
		t.Fatalf("the stalled timer is still pending: %+v", ts)
	}
	if coins := playerState(t, p, "25")["Coins"]; coins != float64(0) {
		t.Fatalf("the stalled handler's change was committed: coins %v", coins)
	}
	if st := status(t, p); len(st.Stuck) != 1 || st.Stuck[0].Player != 25 || st.Stuck[0].Msg != "stall" {
		t.Fatalf("stuck calls: %+v", st.Stuck)
	}
}

// Timers scheduled at once, due 10ms apart, each fire once, in due order.
// The test logs how late they fired (due to push received), beside a push
// sent at once (tell) as the baseline of delivery, measured in the same run.
func TestTimersFireInDueOrder(t *testing.T) {
	t.Parallel()
	p, _, _ := timerHost(t)
	c := dial(t, p, 27)
	const n = 60 // a player has at most 64 timers pending
	for i := range n {
		if r := do(t, c, fmt.Sprintf("alarm %d ring %d", 200+10*i, i)); !r.OK {
			t.Fatal(r)
		}
	}
	lags := make([]time.Duration, n)
	for i := range n {
		push := nextPush(t, c)
		got := time.Now()
		var seq int
		var due int64
		if _, err := fmt.Sscanf(push, "ring %d due %d", &seq, &due); err != nil || seq != i {
			t.Fatalf("push %d: %q (%v)", i, push, err)
		}
		lags[i] = got.Sub(time.Unix(0, due))
	}
	if r := do(t, c, "balance"); !strings.HasPrefix(r.Text, fmt.Sprintf("coins %d ", n)) {
		t.Fatalf("balance: %s, want one coin per timer", r)
	}
	if ts := pendingTimers(t, p, 27); len(ts) != 0 {
		t.Fatalf("timers left: %+v", ts)
	}
	sent := make([]time.Duration, n)
	for i := range sent {
		start := time.Now()
		do(t, c, "tell 27 x")
		if push := nextPush(t, c); push != "from 27: x" {
			t.Fatalf("tell push: %q", push)
		}
		sent[i] = time.Since(start)
	}
	slices.Sort(lags)
	slices.Sort(sent)
	t.Logf("timer lag (due -> push received) p50 %v p99 %v; a tell's push (request sent -> push received) p50 %v p99 %v; p50 ratio %.2f",
		lags[n/2], lags[n*99/100], sent[n/2], sent[n*99/100], float64(lags[n/2])/float64(sent[n/2]))
}
