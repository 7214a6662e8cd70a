package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/hothost/hothost/client"
	"github.com/hothost/hothost/internal/hostproc"
	"github.com/hothost/hothost/internal/loadgen"
)

// start serves a fresh server on a real loopback port until the test ends.
func start(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- newServer().serve(ln) }()
	t.Cleanup(func() {
		ln.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// The benchmark's load and its ledger accept the server: every reply is
// understood and every player's coins match the ledger exactly.
func TestLoadLedgerExact(t *testing.T) {
	addr := start(t)
	ctx := context.Background()
	res, err := loadgen.Run(ctx, loadgen.Config{Addr: func() string { return addr }, Conns: 8, Players: 32, Session: 50,
		Requests: 20_000, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed > 0 || res.Transport > 0 || len(res.Violations) > 0 {
		t.Fatalf("load not clean:\n%s", res.Summary())
	}
	if res.Requests != 20_000 {
		t.Fatalf("%d replies, want 20000", res.Requests)
	}
	ck := loadgen.Verify(ctx, addr, res, 10*time.Second)
	if !ck.OK() || ck.Exact != 32 || ck.Updates == 0 {
		t.Fatalf("ledger: %s %v", ck, ck.Violations)
	}
}

// script exercises every command and refusal of the example game.
var script = []string{
	"ping", "work", "login x", "login 0", "login 7", "login 8", "work", "balance", "buy sword", "work now",
	"work", "work", "work", "work", "work", "work", "work", "work", "work", "buy potion", "BUY potion",
	"buy dragon", "buy", "inventory", "name", "name Ada Lovelace", "whoami", "login 7", "whoami", "quit",
}

// A logged-in player's last-login time is the wall clock of each server.
var lastLogin = regexp.MustCompile(`last \S+$`)

// The server answers like hothost with the example plugins: the same script
// on a fresh player gives the same reply lines on both.
func TestSameRepliesAsHothost(t *testing.T) {
	dir := t.TempDir()
	bins, err := hostproc.Build(filepath.Join(dir, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	// The hand-written server has no tickets: compare with a host that does not ask for them.
	cfg := hostproc.Config{Dir: dir, ShmDir: "/dev/shm", StateName: fmt.Sprintf("hothost-handwritten-test-%d", os.Getpid()), Capacity: 1000,
		Args: []string{"-insecure-login"}}
	t.Cleanup(func() { os.Remove(filepath.Join(cfg.ShmDir, cfg.StateName)) })
	pd := filepath.Join(dir, "plugins-dir")
	if err := os.MkdirAll(pd, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]string{{"plugins/coin/v1", "coin"}, {"plugins/shop", "shop"}, {"plugins/profile", "profile"}} {
		so, err := bins.Plugin(p[0], p[1], "1.0.0", filepath.Join(dir, "built"))
		if err != nil {
			t.Fatal(err)
		}
		if err := hostproc.Install(so, pd); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hot, err := bins.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer hot.Stop()
	// The host's first plugin poll runs before it serves clients.
	var st struct{ Modules map[string]string }
	if err := hot.Admin(ctx, "GET", "/v1/status", &st); err != nil || len(st.Modules) != 3 {
		t.Fatalf("modules %v (err %v), want coin, shop and profile active\n%s", st.Modules, err, hot.Log())
	}

	want := run(t, hot.Addr)
	got := run(t, start(t))
	for i := range script {
		if got[i] != want[i] {
			t.Errorf("%q: hand-written %q, hothost %q", script[i], got[i], want[i])
		}
	}
}

// run sends the script on one connection and returns the replies, with
// the last-login time masked.
func run(t *testing.T, addr string) []string {
	t.Helper()
	c, err := client.Dial(addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []string
	for _, line := range script {
		r, err := c.Do(line)
		if err != nil {
			t.Fatalf("%s: %q: %v", addr, line, err)
		}
		out = append(out, lastLogin.ReplaceAllString(r.String(), "last T"))
	}
	return out
}
