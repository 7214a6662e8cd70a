package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Environment of a worker.
const (
	// FDEnv names the variable holding the worker's handover socket
	// descriptor ("3"). Its presence is what makes a process a worker.
	FDEnv = "HOTHOST_SUPERVISOR_FD"
	// ListenEnv holds the supervisor's client address, the worker
	// Listener's Addr.
	ListenEnv = "HOTHOST_SUPERVISOR_LISTEN"
	// PrevExitEnv tells a worker how the one before it ended, as exec's
	// ProcessState prints it ("exit status 7", "signal: killed"). The same
	// name as host.PrevExitEnv, which the host's crash attribution reads;
	// this package does not import the host (it must not load its code).
	PrevExitEnv = "HOTHOST_PREV_EXIT"
)

// stderrLines is how many of a worker's last stderr lines are kept for
// its Exit and a failed upgrade's reason; stderrLineMax bounds each.
const (
	stderrLines   = 12
	stderrLineMax = 300
)

// proc is one worker process, seen from the supervisor.
type proc struct {
	gen     uint64 // counts workers: events of a gone one are recognised
	binary  string // the file started
	pid     int
	sock    *net.UnixConn
	started time.Time
	ready   bool
	// asked is set when the supervisor ended the worker (drain, or a kill
	// after a timeout), with the reason.
	asked  bool
	reason string
	stderr *tail
	// image is the started file, opened just before the start: a binary
	// replaced on disk can still be restarted from it (image.go).
	image *os.File
}

// exited is the waiter's report of a worker's end.
type exited struct {
	p     *proc
	state *os.ProcessState
	err   error
}

// spawn starts binary as a worker. Its exit is reported on done.
//
// The child is started and waited for by a goroutine locked to its OS
// thread: Pdeathsig fires when the thread that forked the child exits, not
// the process (golang/go#27505), and a Go thread can exit under the
// supervisor's feet when some goroutine ends while locked to it. This
// thread lives exactly as long as the worker.
func spawn(gen uint64, binary string, args, env []string, done chan<- exited) (*proc, error) {
	mine, theirs, err := socketPair()
	if err != nil {
		return nil, err
	}
	image, _ := os.Open(binary) // best effort: without it a replaced binary cannot be restored
	errR, errW, err := os.Pipe()
	if err != nil {
		mine.Close()
		theirs.Close()
		closeIf(image)
		return nil, fmt.Errorf("supervisor: stderr pipe: %w", err)
	}
	p := &proc{gen: gen, binary: binary, sock: mine, stderr: newTail(), image: image}
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	cmd.ExtraFiles = []*os.File{theirs} // fd 3
	cmd.Stdout = os.Stdout
	// A pipe of our own rather than an io.Writer: exec would wait for the
	// copy to end, and a grandchild holding the pipe would delay the
	// report of the worker's death.
	cmd.Stderr = errW
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Pdeathsig: syscall.SIGKILL,
		// Its own process group: a Ctrl-C at a terminal reaches the
		// supervisor alone, which drains the worker in order.
		Setpgid: true,
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the worker
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = nil // the state says how it ended
		}
		// The last lines of a dying worker are usually its reason: give the
		// tee a moment to read them before the report.
		p.stderr.waitEOF(500 * time.Millisecond)
		done <- exited{p: p, state: cmd.ProcessState, err: err}
	}()
	err = <-started
	theirs.Close()
	errW.Close()
	if err != nil {
		mine.Close()
		errR.Close()
		closeIf(image)
		return nil, fmt.Errorf("supervisor: start worker %s: %w", binary, err)
	}
	p.pid = cmd.Process.Pid
	p.started = time.Now()
	go p.stderr.copy(errR, os.Stderr)
	return p, nil
}

func closeIf(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// workerEnv is the supervisor's environment for a worker: the inherited
// one without the handover variables (a supervisor may itself run under
// one), then extra, then this worker's own.
func workerEnv(inherited, extra []string, listen, prevExit string) []string {
	env := make([]string, 0, len(inherited)+len(extra)+3)
	for _, kv := range inherited {
		name, _, _ := strings.Cut(kv, "=")
		if name != FDEnv && name != ListenEnv && name != PrevExitEnv {
			env = append(env, kv)
		}
	}
	env = append(env, extra...)
	env = append(env, FDEnv+"=3", ListenEnv+"="+listen)
	if prevExit != "" {
		env = append(env, PrevExitEnv+"="+prevExit)
	}
	return env
}

// tail tees a worker's stderr through and keeps its last lines.
type tail struct {
	mu    sync.Mutex
	lines []string
	eof   chan struct{}
}

func newTail() *tail { return &tail{eof: make(chan struct{})} }

func (t *tail) copy(r io.ReadCloser, out io.Writer) {
	defer close(t.eof)
	defer r.Close()
	br := bufio.NewReaderSize(r, 4096)
	var line []byte // the current line, up to stderrLineMax+1 bytes of it
	for {
		chunk, err := br.ReadSlice('\n')
		out.Write(chunk)
		line = append(line, chunk[:min(len(chunk), stderrLineMax+1-len(line))]...)
		if err == nil || !errors.Is(err, bufio.ErrBufferFull) && len(line) > 0 {
			t.add(line)
			line = line[:0]
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (t *tail) add(b []byte) {
	s := strings.TrimRight(string(b), "\r\n")
	if len(s) > stderrLineMax {
		s = s[:stderrLineMax] + "..."
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, s)
	if len(t.lines) > stderrLines {
		t.lines = append(t.lines[:0], t.lines[len(t.lines)-stderrLines:]...)
	}
}

func (t *tail) last() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.lines...)
}

func (t *tail) waitEOF(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.eof:
	case <-timer.C:
	}
}
