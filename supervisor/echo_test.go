package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary is also the tests' worker and, for the test that kills
// a supervisor, a supervisor process:
//
//   - started by a supervisor (IsWorker), it serves the echo protocol: a
//     line "<text>\n" is answered "<ECHO_VERSION> <pid> <text> <handovers>\n",
//     where the text "prev-exit" is answered with $HOTHOST_PREV_EXIT, "status"
//     with the supervisor's status as the worker sees it (pid, conns), and
//     "upgrade <binary>" with the outcome of asking for that upgrade;
//     ECHO_MODE=crash exits 7 at once, hang never says ready, garbage sends
//     a malformed message first;
//   - with ECHO_SUPERVISE set, it supervises itself on 127.0.0.1:0, prints
//     the address on stdout and writes its status to $ECHO_STATUS.
func TestMain(m *testing.M) {
	if IsWorker() {
		os.Exit(echoWorker())
	}
	if os.Getenv("ECHO_SUPERVISE") != "" {
		os.Exit(echoSupervisor())
	}
	os.Exit(m.Run())
}

func echoWorker() int {
	version := os.Getenv("ECHO_VERSION")
	if version == "" {
		version = "v1"
	}
	switch os.Getenv("ECHO_MODE") {
	case "crash":
		fmt.Fprintln(os.Stderr, "echo worker: crashing on purpose")
		return 7
	case "garbage":
		unix.Write(3, []byte(`{"v":1,"type":"closed"}`)) // no id: refused, named
	}
	w, err := Attach()
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo worker:", err)
		return 2
	}
	if os.Getenv("ECHO_MODE") == "hang" {
		select {}
	}
	ln := w.Listener()
	var (
		draining atomic.Bool
		mu       sync.Mutex
		live     = map[*Conn]bool{}
		serving  sync.WaitGroup
	)
	go func() {
		<-w.Drain()
		draining.Store(true)
		mu.Lock()
		for c := range live {
			c.SetReadDeadline(deadlinePast) // wakes a waiting read; a request in hand is finished first
		}
		mu.Unlock()
	}()
	if err := w.Ready(); err != nil {
		fmt.Fprintln(os.Stderr, "echo worker:", err)
		return 2
	}
	for {
		nc, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "echo worker: accept:", err)
			continue
		}
		c := nc.(*Conn)
		mu.Lock()
		live[c] = true
		if draining.Load() {
			c.SetReadDeadline(deadlinePast)
		}
		mu.Unlock()
		serving.Add(1)
		go func() {
			defer serving.Done()
			echo(c, version, w)
			mu.Lock()
			delete(live, c)
			mu.Unlock()
			c.Close() // a release once draining
		}()
	}
	serving.Wait()
	w.Close()
	return 0
}

// echo answers lines until the client leaves or the worker drains. A line
// is peeked, answered, and only then consumed: a worker killed in between
// leaves it to the next one, which answers it again (the client drops the
// duplicate), so no request is ever lost.
func echo(c *Conn, version string, w *Worker) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 512)
	for {
		var n int
		var rerr error
		err := raw.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_PEEK)
			switch {
			case rerr == unix.EAGAIN:
				return false
			case rerr != nil || n == 0 || bytes.IndexByte(buf[:n], '\n') >= 0:
				return true
			case n == len(buf):
				rerr = errors.New("line too long")
				return true
			}
			return false // half a line: wait for the rest
		})
		if err == nil {
			err = rerr
		}
		if err != nil || n == 0 {
			return
		}
		line := buf[:bytes.IndexByte(buf[:n], '\n')+1]
		reply := fmt.Sprintf("%s %d %s %d\n", version, os.Getpid(), command(strings.TrimSpace(string(line)), w), c.Handovers())
		if _, err := io.WriteString(c, reply); err != nil {
			return
		}
		// Consume what was answered. Not with c.Read: once draining, the
		// read deadline is past, and the line must go anyway.
		raw.Control(func(fd uintptr) { unix.Read(int(fd), line) })
	}
}

func command(text string, w *Worker) string {
	switch {
	case text == "prev-exit":
		return os.Getenv(PrevExitEnv)
	case text == "status":
		st, err := w.Status()
		if err != nil {
			return "status error: " + err.Error()
		}
		return fmt.Sprintf("status worker %d conns %d", st.Worker, st.Conns)
	case text == "shutdown":
		if err := w.Shutdown(); err != nil {
			return "shutdown error: " + err.Error()
		}
		return "shutdown started"
	case strings.HasPrefix(text, "upgrade "):
		if err := w.Upgrade(strings.TrimPrefix(text, "upgrade ")); err != nil {
			return "upgrade error: " + err.Error()
		}
		return "upgrade started"
	}
	return text
}

// deadlinePast wakes a blocked read at once.
var deadlinePast = time.Unix(1, 0)

func echoSupervisor() int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := New(Config{Listen: "127.0.0.1:0", Binary: exe, StatusFile: os.Getenv("ECHO_STATUS")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println(s.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := s.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
