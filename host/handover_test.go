package host_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/internal/hostproc"
)

// startSupervised starts the host as hothost starts by default: a
// supervisor holding the connections, and its worker.
func startSupervised(t *testing.T, env ...string) *hostproc.Proc {
	t.Helper()
	cfg := hostConfig(t)
	cfg.Supervised, cfg.Env = true, env
	return start(t, cfg)
}

// newWorker kills the serving worker with SIGKILL and waits for the next.
func newWorker(t *testing.T, p *hostproc.Proc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pid, err := p.WorkerPID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for {
		if next, err := p.WorkerPID(ctx); err == nil && next != pid {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("no worker after %d was killed", pid)
		}
		time.Sleep(10 * time.Millisecond) // polling the admin socket until the next worker answers
	}
}

// A killed worker's clients keep their connections: the next worker
// resumes each session (the player stays logged in) and answers on it.
func TestWorkerKilledClientsKeepTheirConnections(t *testing.T) {
	t.Parallel()
	p := startSupervised(t)
	c := dial(t, p, 7)
	w := do(t, c, "work")
	before := do(t, c, "balance")
	newWorker(t, p)
	if after := do(t, c, "balance"); after.Text != before.Text {
		t.Fatalf("balance %q after the worker died, %q before (work said %q)", after.Text, before.Text, w.Text)
	}
	if w2 := do(t, c, "work"); !w2.OK {
		t.Fatalf("work on the next worker: %v", w2)
	}
	// A tag retried on the new worker is answered from the dead one's record.
	first := do(t, c, "work")
	newWorker(t, p)
	again, err := c.DoTag(c.LastTag(), "work")
	if err != nil || again != first {
		t.Fatalf("retried tag on the next worker: %+v, %v; want %+v", again, err, first)
	}
}

// A request that kills every worker that runs it is run by two, and the
// third answers it `err retry` on the same connection instead of dying too.
func TestTwiceFatalRequestIsAnsweredRetry(t *testing.T) {
	t.Parallel()
	poison := filepath.Join(t.TempDir(), "run-kill")
	p := startSupervised(t, host.RunKillEnv+"="+poison)
	c := dial(t, p, 9)
	before := do(t, c, "balance")
	if err := os.WriteFile(poison, []byte("work\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := do(t, c, "work")
	if r.OK || r.Code != "retry" {
		t.Fatalf("work that killed two workers: %v, want err retry", r)
	}
	os.Remove(poison)
	if after := do(t, c, "balance"); after.Text != before.Text {
		t.Fatalf("balance %q after, %q before: the poisoned work ran", after.Text, before.Text)
	}
	var st struct {
		Restarts int `json:"restarts"`
	}
	if err := p.Admin(context.Background(), "GET", "/v1/supervisor", &st); err != nil || st.Restarts != 2 {
		t.Fatalf("supervisor restarts %d (%v), want the two deaths", st.Restarts, err)
	}
}

// hotctl shutdown under the supervisor stops the server, not just the
// worker: the supervisor drains its worker, closes the clients and exits
// cleanly, and no worker is started again.
func TestAdminShutdownStopsTheSupervisor(t *testing.T) {
	t.Parallel()
	p := startSupervised(t)
	c := dial(t, p, 7)
	do(t, c, "work")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out map[string]any
	if err := p.Admin(ctx, "POST", "/v1/shutdown", &out); err != nil || out["supervisor"] != true {
		t.Fatalf("shutdown: %v, %v", out, err)
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		t.Fatal("the supervisor still runs a minute after the shutdown")
	}
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the supervisor exited %d, want 0", code)
	}
	if r, err := c.Do("balance"); err == nil {
		t.Errorf("the client was still answered after the shutdown: %+v", r)
	}
}
