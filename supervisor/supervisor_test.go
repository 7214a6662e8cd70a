package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hangGuard fails a test that waits this long for something that should
// happen: it catches a hang, it is no measure of speed.
const hangGuard = 90 * time.Second

// serve runs a supervisor of the test binary (the echo worker) until the
// test ends.
func serve(t *testing.T, cfg Config) *Supervisor {
	t.Helper()
	if cfg.Binary == "" {
		cfg.Binary = testExe(t)
	}
	cfg.Listen = "127.0.0.1:0"
	if cfg.StatusFile == "" {
		cfg.StatusFile = filepath.Join(t.TempDir(), "status.json")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func testExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// script writes an executable shell script at path, atomically (a rename:
// a running worker's file is replaced, not rewritten).
func script(t *testing.T, path, body string) string {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// worker writes a script starting the echo worker as version.
func worker(t *testing.T, path, version string) string {
	return script(t, path, fmt.Sprintf("ECHO_VERSION=%s exec '%s' \"$@\"", version, testExe(t)))
}

// waitStatus waits for a status that satisfies cond.
func waitStatus(t *testing.T, s *Supervisor, what string, cond func(Status) bool) Status {
	t.Helper()
	guard := time.NewTimer(hangGuard)
	defer guard.Stop()
	for {
		changed := s.changes()
		st := s.Status()
		if cond(st) {
			return st
		}
		select {
		case <-changed:
		case <-guard.C:
			t.Fatalf("no %s: status %+v", what, st)
		}
	}
}

func ready(st Status) bool { return st.State == StateReady }

// reply is one echo answer.
type reply struct {
	version   string
	pid       int
	text      string
	handovers int
}

type client struct {
	conn net.Conn
	r    *bufio.Reader
	seq  int
	dups int // replies to a request already answered (a worker died between answer and consume)
}

func dial(t *testing.T, addr net.Addr) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{conn: c, r: bufio.NewReader(c)}
}

// ask sends a numbered request and returns its answer.
func (c *client) ask() (reply, error) {
	c.seq++
	want := "n" + strconv.Itoa(c.seq)
	r, err := c.say(want)
	for err == nil && r.text != want {
		c.dups++ // an older request answered again: read on
		r, err = c.say("")
	}
	return r, err
}

// say sends text (unless empty) and reads one answer.
func (c *client) say(text string) (reply, error) {
	if text != "" {
		if _, err := io.WriteString(c.conn, text+"\n"); err != nil {
			return reply{}, err
		}
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return reply{}, err
	}
	f := strings.Fields(line)
	if len(f) < 4 {
		return reply{}, fmt.Errorf("bad reply %q", line)
	}
	pid, err1 := strconv.Atoi(f[1])
	h, err2 := strconv.Atoi(f[len(f)-1])
	if err1 != nil || err2 != nil {
		return reply{}, fmt.Errorf("bad reply %q", line)
	}
	return reply{version: f[0], pid: pid, text: strings.Join(f[2:len(f)-1], " "), handovers: h}, nil
}

// seen is what a client loop reports: the first answer from another
// worker, or the error that ended it.
type seen struct {
	client int
	r      reply
	at     time.Time
	err    error
}

// loop keeps n clients asking in closed loops until the test ends; each
// reports on the returned channel whenever the worker answering changes.
func loop(t *testing.T, s *Supervisor, n int) (<-chan seen, []*client) {
	t.Helper()
	out := make(chan seen, 4*n)
	clients := make([]*client, n)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range clients {
		c := dial(t, s.Addr())
		r, err := c.ask()
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := r.pid
			for ctx.Err() == nil {
				r, err := c.ask()
				if err != nil {
					if ctx.Err() == nil {
						out <- seen{client: i, err: err}
					}
					return
				}
				if r.pid != last {
					last = r.pid
					out <- seen{client: i, r: r, at: time.Now()}
				}
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		for _, c := range clients {
			c.conn.SetDeadline(deadlinePast)
		}
		wg.Wait()
	})
	return out, clients
}

// everyClient waits until each of n clients reports a new worker, and
// checks it: want is called with each answer.
func everyClient(t *testing.T, ch <-chan seen, n int, want func(reply) error) (first time.Time) {
	t.Helper()
	guard := time.NewTimer(hangGuard)
	defer guard.Stop()
	got := map[int]bool{}
	for len(got) < n {
		select {
		case o := <-ch:
			if o.err != nil {
				t.Fatalf("client %d: %v", o.client, o.err)
			}
			if err := want(o.r); err != nil {
				t.Fatalf("client %d: %v", o.client, err)
			}
			got[o.client] = true
			if first.IsZero() || o.at.Before(first) {
				first = o.at
			}
		case <-guard.C:
			t.Fatalf("only %d of %d clients were answered by a new worker", len(got), n)
		}
	}
	return first
}

func TestKillWorkerKeepsConnections(t *testing.T) {
	const clients, kills = 4, 20
	// Every death counts as one after a stable run: restarts are immediate.
	s := serve(t, Config{StableAfter: time.Nanosecond})
	waitStatus(t, s, "ready worker", ready)
	ch, cs := loop(t, s, clients)
	var pauses []time.Duration
	for k := 1; k <= kills; k++ {
		old := s.Status().Worker
		t0 := time.Now()
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		first := everyClient(t, ch, clients, func(r reply) error {
			if r.pid == old || r.handovers != k {
				return fmt.Errorf("after kill %d of worker %d: answered by %d after %d handovers", k, old, r.pid, r.handovers)
			}
			return nil
		})
		pauses = append(pauses, first.Sub(t0))
	}
	st := s.Status()
	if st.Restarts != kills || st.Starts != kills+1 || st.Conns != clients || st.Waiting != 0 {
		t.Errorf("after %d kills: restarts %d, starts %d, conns %d (waiting %d), want %d, %d, %d (0)",
			kills, st.Restarts, st.Starts, st.Conns, st.Waiting, kills, kills+1, clients)
	}
	if st.LastExit == nil || st.LastExit.Status != "signal: killed" || st.LastExit.Asked {
		t.Errorf("last exit %+v, want an unasked signal: killed", st.LastExit)
	}
	// The host's crash attribution reads how the previous worker ended.
	c := dial(t, s.Addr())
	if r, err := c.say("prev-exit"); err != nil || r.text != "signal: killed" {
		t.Errorf("worker's %s: %q, %v; want signal: killed", PrevExitEnv, r.text, err)
	}
	dups := 0
	for _, c := range cs {
		dups += c.dups
	}
	slices.Sort(pauses)
	t.Logf("kill -9 to first answer from the new worker, %d kills, %d clients: p50 %v, max %v (%d answers repeated by a new worker)",
		kills, clients, pauses[len(pauses)/2].Round(time.Microsecond), pauses[len(pauses)-1].Round(time.Microsecond), dups)
}

// logCapture keeps a supervisor's log records.
type logCapture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logCapture) WithGroup(string) slog.Handler            { return l }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r.Clone())
	l.mu.Unlock()
	return nil
}

// durations returns attribute key of every record with message msg.
func (l *logCapture) durations(msg, key string) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Duration
	for _, r := range l.recs {
		if r.Message == msg {
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == key {
					out = append(out, a.Value.Duration())
				}
				return true
			})
		}
	}
	return out
}

func TestCrashLoopBacksOff(t *testing.T) {
	logs := &logCapture{}
	const minB, maxB = 10 * time.Millisecond, 40 * time.Millisecond
	s := serve(t, Config{Env: []string{"ECHO_MODE=crash"}, MinBackoff: minB, MaxBackoff: maxB, StableAfter: time.Hour, Logger: slog.New(logs)})
	st := waitStatus(t, s, "six restarts", func(st Status) bool { return st.Restarts >= 6 })
	// The first restart is immediate; each next one waits twice as long,
	// up to the maximum.
	got := logs.durations("worker dies soon after it starts: backing off", "backoff")
	want := []time.Duration{minB, 2 * minB, maxB, maxB, maxB}
	if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Errorf("backoffs %v, want %v first", got, want)
	}
	if st.Backoff != maxB {
		t.Errorf("status backoff %v, want %v", st.Backoff, maxB)
	}
	if e := st.LastExit; e == nil || e.Status != "exit status 7" || !slices.Contains(e.Stderr, "echo worker: crashing on purpose") {
		t.Errorf("last exit %+v: want exit status 7 and the worker's stderr line", e)
	}
	// Operators see it without a worker up: the status file.
	f, err := ReadStatusFile(s.cfg.StatusFile)
	if err != nil {
		t.Fatal(err)
	}
	if f.Restarts < 6 || f.Backoff != maxB || f.PID != os.Getpid() {
		t.Errorf("status file: restarts %d, backoff %v, pid %d; want >= 6, %v, %d", f.Restarts, f.Backoff, f.PID, maxB, os.Getpid())
	}
	// The operator's way out: an upgrade to a build that does not crash,
	// taken at once whether a worker is starting or the supervisor backs off.
	fixed := script(t, filepath.Join(t.TempDir(), "fixed"), fmt.Sprintf("ECHO_MODE= exec '%s'", testExe(t)))
	if err := s.Upgrade(fixed); err != nil {
		t.Fatal(err)
	}
	st = waitStatus(t, s, "the fixed build serving", ready)
	if u := st.LastUpgrade; u == nil || u.State != UpgradeDone || st.Binary != fixed {
		t.Errorf("upgrade %+v, binary %s: want done, %s", u, st.Binary, fixed)
	}
	if _, err := dial(t, s.Addr()).ask(); err != nil {
		t.Errorf("the fixed build does not serve: %v", err)
	}
}

func TestUpgradeOnSIGHUP(t *testing.T) {
	bin := worker(t, filepath.Join(t.TempDir(), "game"), "v1")
	s := serve(t, Config{Binary: bin})
	old := waitStatus(t, s, "ready worker", ready).Worker
	ch, _ := loop(t, s, 3)
	worker(t, bin, "v2") // the new build replaces the file
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	everyClient(t, ch, 3, func(r reply) error {
		if r.version != "v2" || r.handovers != 1 {
			return fmt.Errorf("answered by %s after %d handovers, want v2 after 1", r.version, r.handovers)
		}
		return nil
	})
	st := waitStatus(t, s, "upgrade done", func(st Status) bool { return st.LastUpgrade != nil && st.LastUpgrade.State == UpgradeDone })
	u := st.LastUpgrade
	if u.By != "SIGHUP" || u.OldPID != old || u.NewPID != st.Worker || u.To != bin || st.Binary != bin {
		t.Errorf("upgrade %+v, status binary %s; want by SIGHUP from %d to %d, binary %s", u, st.Binary, old, st.Worker, bin)
	}
	if e := st.LastExit; e == nil || e.PID != old || !e.Asked || e.Status != "exit status 0" {
		t.Errorf("old worker's exit %+v: want asked, exit status 0", e)
	}
}

func TestUpgradeFailureStartsPreviousBinary(t *testing.T) {
	dir := t.TempDir()
	bin := worker(t, filepath.Join(dir, "game"), "v1")
	broken := script(t, filepath.Join(dir, "broken"), "echo 'refusing to start: broken on purpose' >&2; exit 3")
	hang := script(t, filepath.Join(dir, "hang"), fmt.Sprintf("ECHO_MODE=hang exec '%s'", testExe(t)))
	s := serve(t, Config{Binary: bin, ReadyTimeout: 5 * time.Second})
	waitStatus(t, s, "ready worker", ready)
	ch, _ := loop(t, s, 2)

	for i, tc := range []struct {
		name, to, reason, stderr string
		inPlace                  bool
	}{
		{name: "exits", to: broken, reason: "exit status 3", stderr: "refusing to start: broken on purpose"},
		{name: "never ready", to: hang, reason: "not ready within 5s"},
		// The broken build replaces the file itself: the previous one is
		// started from the copy the supervisor kept open.
		{name: "replaced in place", to: "", reason: "exit status 3", stderr: "refusing to start: broken on purpose", inPlace: true},
	} {
		if tc.inPlace {
			script(t, bin, "echo 'refusing to start: broken on purpose' >&2; exit 3")
		}
		if err := s.Upgrade(tc.to); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		everyClient(t, ch, 2, func(r reply) error {
			if r.version != "v1" || r.handovers != i+1 {
				return fmt.Errorf("%s: answered by %s after %d handovers, want v1 after %d", tc.name, r.version, r.handovers, i+1)
			}
			return nil
		})
		st := waitStatus(t, s, tc.name+": upgrade failed", func(st Status) bool {
			return st.State == StateReady && st.LastUpgrade != nil && st.LastUpgrade.State == UpgradeFailed
		})
		u := st.LastUpgrade
		if !strings.Contains(u.Reason, tc.reason) || tc.stderr != "" && !slices.Contains(u.Stderr, tc.stderr) {
			t.Errorf("%s: failed upgrade %+v: want reason with %q and stderr line %q", tc.name, u, tc.reason, tc.stderr)
		}
		if st.Binary != bin || (st.Running != "") != tc.inPlace {
			t.Errorf("%s: binary %s, running %q: want %s, running a kept copy only when replaced in place", tc.name, st.Binary, st.Running, bin)
		}
	}
}

// TestWorkerAsksForUpgrade goes the way of hotctl upgrade: the worker
// asks, and is the one drained.
func TestWorkerAsksForUpgrade(t *testing.T) {
	dir := t.TempDir()
	bin := worker(t, filepath.Join(dir, "game"), "v1")
	v2 := worker(t, filepath.Join(dir, "game-v2"), "v2")
	s := serve(t, Config{Binary: bin})
	first := waitStatus(t, s, "ready worker", ready).Worker
	c := dial(t, s.Addr())
	if r, err := c.say("status"); err != nil || r.text != fmt.Sprintf("status worker %d conns 1", first) {
		t.Fatalf("status through the worker: %q, %v", r.text, err)
	}
	if r, err := c.say("upgrade " + filepath.Join(dir, "missing")); err != nil || !strings.Contains(r.text, "upgrade error: supervisor: upgrade refused: supervisor: not an executable worker binary") {
		t.Fatalf("upgrade to a missing file: %q, %v", r.text, err)
	}
	if r, err := c.say("upgrade " + v2); err != nil || r.text != "upgrade started" {
		t.Fatalf("upgrade: %q, %v", r.text, err)
	}
	if r, err := c.say("n1"); err != nil || r.version != "v2" || r.handovers != 1 {
		t.Fatalf("after the upgrade: %+v, %v; want v2 after 1 handover", r, err)
	}
	st := waitStatus(t, s, "upgrade done", func(st Status) bool { return st.LastUpgrade != nil && st.LastUpgrade.State == UpgradeDone })
	if st.LastUpgrade.By != fmt.Sprintf("worker %d", first) || st.Binary != v2 {
		t.Errorf("upgrade %+v, binary %s: want by worker %d, binary %s", st.LastUpgrade, st.Binary, first, v2)
	}
}

// TestWorkerAsksForShutdown goes the way of hotctl shutdown under a
// supervisor: the worker asks, the supervisor drains it, closes the
// clients and stops, and starts no other worker.
func TestWorkerAsksForShutdown(t *testing.T) {
	s := serve(t, Config{})
	first := waitStatus(t, s, "ready worker", ready).Worker
	c := dial(t, s.Addr())
	if r, err := c.say("shutdown"); err != nil || r.text != "shutdown started" || r.pid != first {
		t.Fatalf("shutdown: %+v, %v", r, err)
	}
	<-s.stopped
	if r, err := c.say(""); !errors.Is(err, io.EOF) {
		t.Fatalf("after the shutdown the client read %+v, %v; want EOF", r, err)
	}
	if st := s.Status(); st.Restarts != 0 || st.LastExit == nil || st.LastExit.PID != first || !st.LastExit.Asked {
		t.Errorf("status after the shutdown: %+v; want worker %d's asked exit and no restart", st, first)
	}
}

func TestKillSupervisorEndsWorkerAndClients(t *testing.T) {
	statusFile := filepath.Join(t.TempDir(), "status.json")
	cmd := exec.Command(testExe(t))
	cmd.Env = append(os.Environ(), "ECHO_SUPERVISE=1", "ECHO_STATUS="+statusFile)
	cmd.Stderr = testWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr, err := net.ResolveTCPAddr("tcp", strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr)
	r, err := c.ask()
	if err != nil {
		t.Fatal(err)
	}
	pidfd, err := unix.PidfdOpen(r.pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	// The client is disconnected: nobody holds its connection any more.
	c.conn.SetDeadline(time.Now().Add(hangGuard))
	if _, err := c.say("n2"); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("client after the supervisor's death: %v, want a disconnect", err)
	}
	// The worker is gone too (Pdeathsig): a pidfd is readable once it exits.
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, int(hangGuard/time.Millisecond)); n != 1 || err != nil {
		t.Fatalf("worker %d still running after its supervisor died (poll %d, %v)", r.pid, n, err)
	}
	st, err := ReadStatusFile(statusFile)
	if err != nil || st.Worker != r.pid {
		t.Errorf("status file of the dead supervisor: worker %d, %v; want %d", st.Worker, err, r.pid)
	}
}

// TestKillWorkerManyConnections hands a couple of thousand connections to
// the next worker at once, each with a request already waiting in the
// kernel when it arrives.
func TestKillWorkerManyConnections(t *testing.T) {
	const n = 2000
	s := serve(t, Config{})
	old := waitStatus(t, s, "ready worker", ready).Worker
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = dial(t, s.Addr())
	}
	for _, c := range clients {
		if r, err := c.ask(); err != nil || r.pid != old {
			t.Fatalf("before the kill: %+v, %v", r, err)
		}
	}
	t0 := time.Now()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, n)
	var last time.Time
	var mu sync.Mutex
	for _, c := range clients {
		go func() {
			r, err := c.ask()
			if err == nil && (r.pid == old || r.handovers != 1) {
				err = fmt.Errorf("answered by %d after %d handovers, want a new worker after 1", r.pid, r.handovers)
			}
			mu.Lock()
			last = time.Now()
			mu.Unlock()
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st := s.Status()
	if st.Conns != n || st.Waiting != 0 || st.Handovers != 2*n {
		t.Errorf("conns %d (waiting %d), handovers %d; want %d (0), %d", st.Conns, st.Waiting, st.Handovers, n, 2*n)
	}
	t.Logf("kill -9 to the last of %d connections answered by the new worker: %v (its death seen after %v)",
		n, last.Sub(t0).Round(time.Millisecond), st.LastExit.At.Sub(t0).Round(time.Millisecond))
}
