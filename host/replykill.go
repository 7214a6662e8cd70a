package host

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// ReplyKillEnv names a file, for tests of the handover (examples/chaos):
// while it exists and holds a number N, the host removes it and kills
// itself with SIGKILL right after its Nth committed request of this
// process, before the reply is written. That is the one instant bytes
// cannot settle: the request is done and its client does not know. The
// next worker must answer it from the reply kept with the commit, and not
// run it again.
const ReplyKillEnv = "HOTHOST_TEST_REPLY_KILL"

// RunKillEnv names a file, for tests of the handover: while it exists and
// holds a message name, the host kills itself with SIGKILL when a request
// for that message is about to run, on every worker: a request that kills
// each worker that runs it. The third worker must answer it `err retry`
// rather than run it.
const RunKillEnv = "HOTHOST_TEST_RUN_KILL"

// replyKill is the seams ReplyKillEnv and RunKillEnv arm; nil when
// neither is set.
type replyKill struct {
	path, runPath string
	n             atomic.Int64
}

func newReplyKill() *replyKill {
	p, r := os.Getenv(ReplyKillEnv), os.Getenv(RunKillEnv)
	if p == "" && r == "" {
		return nil
	}
	return &replyKill{path: p, runPath: r}
}

// running is called before a request for msg runs.
func (k *replyKill) running(msg string) {
	if k == nil || k.runPath == "" {
		return
	}
	if b, err := os.ReadFile(k.runPath); err == nil && strings.TrimSpace(string(b)) == msg {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}

// committed counts a committed request whose reply is about to be written.
func (k *replyKill) committed() {
	if k == nil || k.path == "" {
		return
	}
	n := k.n.Add(1)
	b, err := os.ReadFile(k.path)
	if err != nil {
		return
	}
	if at, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n >= at {
		os.Remove(k.path) // one kill per file written: the next worker serves on
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}
