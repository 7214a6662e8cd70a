package host_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/internal/crashmark"
	"github.com/hothost/hothost/internal/hostproc"
)

// The runtime corpus (testdata/runtime) holds coin versions whose work
// handler misbehaves in ways no build-time check catches. Each test builds
// one as coin 1.5.0 with the statelessness check off, drops it next to
// coin 1.0.0 and checks the host's runtime defences.

// buildRuntimeCase copies testdata/runtime/<name> into a fresh folder of
// the module (plugins build inside it), stamps the version and builds it.
func buildRuntimeCase(t *testing.T, name, version, out string) {
	t.Helper()
	src := filepath.Join("testdata", "runtime", name)
	gen, err := os.MkdirTemp(filepath.Join("testdata", "runtime"), "gen-"+name+"-") // tests building one case may run at once
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(gen) })
	if err := os.CopyFS(gen, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gen, "version.go"), []byte("package main\n\nconst version = \""+version+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := bins.Plugin(filepath.Join("host", gen), "coin", version, out, skipVetFlag); err != nil {
		t.Fatal(err)
	}
}

const skipVetFlag = "-unsafe-skip-vet"

type versionLine struct {
	Module, Version, State, Reason string
}

func versions(t *testing.T, p *hostproc.Proc) []versionLine {
	t.Helper()
	var vs []versionLine
	if err := p.Admin(context.Background(), "GET", "/v1/versions", &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

func stateOf(t *testing.T, p *hostproc.Proc, module, version string) (string, string) {
	t.Helper()
	for _, v := range versions(t, p) {
		if v.Module == module && v.Version == version && v.State != "rejected" {
			return v.State, v.Reason
		}
	}
	return "", ""
}

// waitActive polls until module's active version is version.
func waitActive(t *testing.T, p *hostproc.Proc, module, version string) {
	t.Helper()
	for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(20 * time.Millisecond) {
		// The history says active before the table serving requests
		// changes (it is stored once the decision is saved); status
		// shows the table.
		if s, _ := stateOf(t, p, module, version); s == "active" && status(t, p).Modules[module] == version {
			return
		}
	}
	t.Fatalf("%s %s never became active: %+v", module, version, versions(t, p))
}

type statusDoc struct {
	Modules   map[string]string
	Running   []crashmark.Mark
	Stuck     []host.StuckCall
	LastCrash *host.CrashReport `json:"last_crash"`
}

func status(t *testing.T, p *hostproc.Proc) statusDoc {
	t.Helper()
	var st statusDoc
	if err := p.Admin(context.Background(), "GET", "/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// Not parallel: a 1 s watchdog (see e2e_test.go).
func TestHungHandlerIsFencedAndRolledBack(t *testing.T) {
	// One lane: every player shares the hung player's lane.
	p, cfg := startHost(t, "-lanes", "1", "-handler-timeout", "1s", "-drain-timeout", "2s")
	buildRuntimeCase(t, "hang", "1.5.0", filepath.Join(cfg.Dir, "plugins-dir"))
	waitActive(t, p, "coin", "1.5.0")

	stuck, other := dial(t, p, 11), dial(t, p, 12)
	hung := make(chan error, 1)
	go func() {
		r, err := stuck.Do("work")
		if err == nil && (r.OK || r.Code != "timeout") {
			err = fmt.Errorf("hung work answered %v, want err timeout", r)
		}
		hung <- err
	}()
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		if r := status(t, p).Running; len(r) == 1 && r[0].Player == 11 {
			break // the hung call holds the only lane
		}
		select {
		case err := <-hung:
			t.Fatalf("the hung call returned before it showed in status: %v (running %+v)", err, status(t, p).Running)
		default:
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("the hung call never showed in status: %+v", status(t, p))
		}
	}
	// Queued behind the hung call on the one lane: served once it is fenced.
	if r := do(t, other, "work"); !r.OK {
		t.Fatalf("other player on the hung lane: %v", r)
	}
	if err := <-hung; err != nil {
		t.Fatal(err)
	}
	// The version is out of service, the lane serves the others again,
	// and the stuck player is told why it waits.
	if s, why := stateOf(t, p, "coin", "1.5.0"); s != "bad" || !strings.Contains(why, "coin 1.5.0 work ran") || !strings.Contains(why, "player 11") {
		t.Fatalf("hung version: state %q reason %q", s, why)
	}
	if r := do(t, stuck, "balance"); r.OK || r.Code != "stuck" {
		t.Fatalf("stuck player's next request: %v, want err stuck", r)
	}
	st := status(t, p)
	if len(st.Stuck) != 1 || st.Stuck[0].Player != 11 || st.Stuck[0].Version != "1.5.0" {
		t.Fatalf("status stuck = %+v", st.Stuck)
	}
	if st.Modules["coin"] != "1.0.0" {
		t.Fatalf("active coin %q, want 1.0.0", st.Modules["coin"])
	}
	// SIGTERM drains and exits although a goroutine is stuck for good.
	if err := p.Stop(); err != nil {
		t.Fatalf("SIGTERM with a stuck handler: %v\n%s", err, p.Log())
	}
	p2 := start(t, cfg)
	if s, _ := stateOf(t, p2, "coin", "1.5.0"); s != "bad" {
		t.Fatalf("after restart the hung version is %q, want bad", s)
	}
	if r := do(t, dial(t, p2, 11), "work"); !r.OK {
		t.Fatalf("the stuck player after a restart: %v", r)
	}
}

// TestCrashingVersionIsQuarantined kills the host with each crashing
// version once, restarts it the way a supervisor does (telling it how the
// last one ended) and checks that the version is quarantined with its
// cause, the previous version serves, and the host does not die again.
func TestCrashingVersionIsQuarantined(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, cause string }{
		{"exit", "host exited (status 7) while coin 1.5.0 ran work for player 21"},
		{"overflow", "host died: fatal error: stack overflow in coin 1.5.0 work"},
		{"gopanic", "in coin 1.5.0"},
		{"mapwrites", "host died: fatal error: concurrent map access in coin 1.5.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A deadline no crash case reaches: they are to crash, not hang.
			p, cfg := startHost(t, "-handler-timeout", "10m")
			buildRuntimeCase(t, tc.name, "1.5.0", filepath.Join(cfg.Dir, "plugins-dir"))
			waitActive(t, p, "coin", "1.5.0")
			deaths := 0
			for round := 0; round < 3; round++ {
				c := dial(t, p, 21)
				died := false
				for i := 0; i < 20 && !died; i++ {
					_, err := c.Do("work")
					died = err != nil // the host died under us
				}
				if !died {
					continue
				}
				<-p.Done()
				deaths++
				cfg.Env = []string{host.PrevExitEnv + "=" + p.Cmd.ProcessState.String()}
				p = start(t, cfg)
			}
			if deaths != 1 {
				t.Fatalf("host died %d times, want exactly once", deaths)
			}
			st := status(t, p)
			if st.LastCrash == nil || !st.LastCrash.Quarantined || !strings.Contains(st.LastCrash.Reason, tc.cause) {
				t.Fatalf("last crash %+v, want quarantined with %q", st.LastCrash, tc.cause)
			}
			if s, why := stateOf(t, p, "coin", "1.5.0"); s != "bad" || !strings.Contains(why, tc.cause) {
				t.Fatalf("crashing version: %q %q", s, why)
			}
			if st.Modules["coin"] != "1.0.0" {
				t.Fatalf("coin %q serves, want 1.0.0", st.Modules["coin"])
			}
		})
	}
}

// A kill -9 from outside while a handler runs is not the handler's doing.
func TestKillBySignalQuarantinesNothing(t *testing.T) {
	t.Parallel()
	p, cfg := startHost(t)
	c := dial(t, p, 5)
	do(t, c, "work")
	p.Kill()
	<-p.Done()
	cfg.Env = []string{host.PrevExitEnv + "=" + p.Cmd.ProcessState.String()}
	p = start(t, cfg)
	st := status(t, p)
	if st.LastCrash == nil || st.LastCrash.Quarantined || st.LastCrash.Module != "" {
		t.Fatalf("last crash after kill -9: %+v", st.LastCrash)
	}
	if st.Modules["coin"] != "1.0.0" {
		t.Fatalf("coin %q", st.Modules["coin"])
	}
}

// Operator decisions survive both kinds of restart: a pin (coin pinned to
// 1.0.0 although 2.0.0 is newer) and a rollback (shop's only newer version
// rolled back), after SIGTERM and after kill -9.
func TestDecisionsSurviveRestarts(t *testing.T) {
	t.Parallel()
	p, cfg := startHost(t)
	plugins := filepath.Join(cfg.Dir, "plugins-dir")
	if err := hostproc.Install(filepath.Join(staging, "coin-2.0.0.so"), plugins); err != nil {
		t.Fatal(err)
	}
	waitActive(t, p, "coin", "2.0.0")
	admin := func(p *hostproc.Proc, path string) {
		t.Helper()
		if err := p.Admin(context.Background(), "POST", path, nil); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	admin(p, "/v1/rollback?module=coin") // 2.0.0 rolled back, 1.0.0 serves
	if st := status(t, p); st.Modules["coin"] != "1.0.0" {
		t.Fatalf("after rollback coin %q", st.Modules["coin"])
	}
	for _, restart := range []string{"SIGTERM", "kill -9"} {
		if restart == "SIGTERM" {
			if err := p.Stop(); err != nil {
				t.Fatal(err)
			}
		} else {
			p.Kill()
			<-p.Done()
		}
		p = start(t, cfg)
		if st := status(t, p); st.Modules["coin"] != "1.0.0" {
			t.Fatalf("after %s coin %q serves, want the rolled-back-to 1.0.0", restart, st.Modules["coin"])
		}
		if s, _ := stateOf(t, p, "coin", "2.0.0"); s != "rolled back" {
			t.Fatalf("after %s coin 2.0.0 is %q, want rolled back", restart, s)
		}
	}
	admin(p, "/v1/pin?module=coin&version=2.0.0")
	p.Kill()
	<-p.Done()
	p = start(t, cfg)
	if st := status(t, p); st.Modules["coin"] != "2.0.0" {
		t.Fatalf("after kill -9 the pin to 2.0.0 is lost: coin %q", st.Modules["coin"])
	}
	var vs []struct {
		Module, Version string
		Pinned          bool
	}
	p.Admin(context.Background(), "GET", "/v1/versions", &vs)
	pinned := false
	for _, v := range vs {
		pinned = pinned || v.Module == "coin" && v.Version == "2.0.0" && v.Pinned
	}
	if !pinned {
		t.Fatalf("coin 2.0.0 not pinned after restart: %+v", vs)
	}
}

// A host that comes back with fewer modules than it served before says so
// loudly: here the shop and social plugin files are gone after a restart.
func TestFewerModulesAfterRestartIsLoud(t *testing.T) {
	t.Parallel()
	p, cfg := startHost(t)
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, so := range []string{"shop-1.0.0.so", "social-1.0.0.so"} {
		os.Remove(filepath.Join(cfg.Dir, "plugins-dir", so))
	}
	p = start(t, cfg)
	if st := status(t, p); st.Modules["shop"] != "" || st.Modules["coin"] != "1.0.0" {
		t.Fatalf("modules after restart: %v", st.Modules)
	}
	log := p.Log()
	if !strings.Contains(log, "SERVING WITH FEWER MODULES THAN BEFORE THE RESTART") || !strings.Contains(log, "missing=\"shop, social\"") {
		t.Fatalf("no loud warning about the missing modules in the log:\n%s", log)
	}
}
