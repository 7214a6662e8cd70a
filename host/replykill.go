package host

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// ReplyKillEnv names a file, for tests of the handover (examples/chaos):
// while it exists and holds a number N, the host kills itself with SIGKILL
// right after its Nth committed request of this process, before the reply
// is written. That is the one instant bytes cannot settle: the request is
// done and its client does not know. The next worker must answer it from
// the reply kept with the commit, and not run it again.
const ReplyKillEnv = "HOTHOST_TEST_REPLY_KILL"

// replyKill is the seam ReplyKillEnv arms; nil when it is not set.
type replyKill struct {
	path string
	n    atomic.Int64
}

func newReplyKill() *replyKill {
	if p := os.Getenv(ReplyKillEnv); p != "" {
		return &replyKill{path: p}
	}
	return nil
}

// committed counts a committed request whose reply is about to be written.
func (k *replyKill) committed() {
	if k == nil {
		return
	}
	n := k.n.Add(1)
	b, err := os.ReadFile(k.path)
	if err != nil {
		return
	}
	if at, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n >= at {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}
