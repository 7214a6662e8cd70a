package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hothost/hothost/internal/hostproc"
	"github.com/hothost/hothost/supervisor"
)

// TestUpgrade runs hotctl upgrade against a real hothost under its
// supervisor: a logged-in client stays connected through an upgrade to a
// second binary and through a failed one, after which the previous binary
// serves again.
func TestUpgrade(t *testing.T) {
	root, err := hostproc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "./cmd/hothost")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "hothost")
	v2 := filepath.Join(dir, "hothost-v2")
	if b, err := os.ReadFile(bin); err != nil || os.WriteFile(v2, b, 0o700) != nil {
		t.Fatalf("second binary: %v", err)
	}
	data := filepath.Join(dir, "data")
	statusFile := filepath.Join(data, "supervisor.json")
	host := exec.Command(bin, "-listen", "127.0.0.1:0", "-data", data, "-plugins", filepath.Join(dir, "plugins"),
		"-shm-dir", dir, "-capacity", "100", "-insecure-login")
	var log strings.Builder
	host.Stdout, host.Stderr = &log, &log
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		host.Process.Signal(syscall.SIGTERM)
		host.Wait()
		if t.Failed() {
			t.Log(log.String())
		}
	}()
	st := waitSupervisor(t, statusFile, func(st supervisor.Status) bool { return st.State == supervisor.StateReady })

	conn, err := net.Dial("tcp", st.Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	ask := func(line string) string {
		t.Helper()
		conn.SetDeadline(time.Now().Add(time.Minute))
		if _, err := io.WriteString(conn, line+"\n"); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v (the client was disconnected)", line, err)
		}
		return strings.TrimSpace(got)
	}
	if got := ask("login 1"); !strings.HasPrefix(got, "ok") {
		t.Fatalf("login: %q", got)
	}
	admin := newAdminClient(filepath.Join(data, "admin.sock"), "", "", 10*time.Second)

	var out, errs strings.Builder
	if code := upgradeCmd([]string{v2}, admin, &out, &errs); code != 0 {
		t.Fatalf("hotctl upgrade %s: exit %d\n%s%s", v2, code, out.String(), errs.String())
	}
	after, err := supervisor.ReadStatusFile(statusFile)
	if err != nil {
		t.Fatal(err)
	}
	if after.Binary != v2 || after.Worker == st.Worker || !strings.Contains(out.String(), fmt.Sprintf("done: worker %d serves from %s", after.Worker, v2)) {
		t.Errorf("after the upgrade: worker %d (was %d) from %s; hotctl said:\n%s", after.Worker, st.Worker, after.Binary, out.String())
	}
	if got := ask("ping"); got != "ok pong" {
		t.Errorf("ping after the upgrade: %q", got)
	}

	out.Reset()
	if code := upgradeCmd([]string{"/bin/false"}, admin, &out, &errs); code != 1 {
		t.Fatalf("hotctl upgrade /bin/false: exit %d, want 1\n%s%s", code, out.String(), errs.String())
	}
	if want := "failed: the worker from /bin/false ended before it was ready: exited (exit status 1)"; !strings.Contains(out.String(), want) {
		t.Errorf("hotctl said:\n%s\nwant %q", out.String(), want)
	}
	if got := ask("ping"); got != "ok pong" {
		t.Errorf("ping after the failed upgrade: %q", got)
	}
}

// waitSupervisor polls the supervisor's status file until cond holds:
// it is all there is to watch before the worker's admin socket exists.
func waitSupervisor(t *testing.T, path string, cond func(supervisor.Status) bool) supervisor.Status {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := supervisor.ReadStatusFile(path)
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("supervisor status %+v, %v: not there after 2m", st, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a file: nothing to wait on
	}
}
