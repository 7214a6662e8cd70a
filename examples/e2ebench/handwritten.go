package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// buildHandwritten builds examples/handwritten, the server a user would
// write without hothost, with the environment's build flags.
func (b *bench) buildHandwritten() (string, error) {
	out := filepath.Join(b.dir, "bin", "handwritten")
	cmd := exec.Command("go", "build", "-o", out, "./examples/handwritten")
	cmd.Dir = b.bins.Root
	if o, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./examples/handwritten: %v: %s", err, strings.TrimSpace(string(o)))
	}
	return out, nil
}

// handProc is a running hand-written server.
type handProc struct {
	Addr string
	Pid  int
	cmd  *exec.Cmd
	done chan error
}

// startHandwritten starts the hand-written server on a free loopback port
// and learns the port from the line it prints once it listens.
func (b *bench) startHandwritten(bin string) (*handProc, error) {
	cmd := exec.CommandContext(b.ctx, bin, "-listen", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start hand-written server: %w", err)
	}
	p := &handProc{Pid: cmd.Process.Pid, cmd: cmd, done: make(chan error, 1)}
	b.hand = append(b.hand, p)
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if err != nil || !ok {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("hand-written server: want %q, got %q (%v)", "listening on <addr>", line, err)
	}
	p.Addr = addr
	go func() { p.done <- cmd.Wait() }()
	return p, nil
}

// Stop ends the server with SIGTERM and waits for a clean exit. Call it once.
func (p *handProc) Stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.done; err != nil {
		return fmt.Errorf("hand-written server: %w", err)
	}
	return nil
}

// kill ends the server if it still runs (an error means it had ended).
func (p *handProc) kill() {
	p.cmd.Process.Kill()
}
