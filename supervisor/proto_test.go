package supervisor

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// pair is a worker attached to one end of a real handover socket, and the
// other end, where the test plays the supervisor.
func pair(t *testing.T) (*Worker, *net.UnixConn, <-chan error) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := unixConn(fds[0], "worker end")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := unixConn(fds[1], "supervisor end")
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan error, 1)
	w := newWorker(wc, "127.0.0.1:7070", func(err error) { lost <- err })
	t.Cleanup(func() { w.Close(); sc.Close() })
	return w, sc, lost
}

func sendRaw(t *testing.T, c *net.UnixConn, b []byte, fds ...int) {
	t.Helper()
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := c.WriteMsgUnix(b, oob, nil); err != nil {
		t.Fatal(err)
	}
}

// tcpPair returns both ends of a real TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// rawFD is the descriptor of a socket, for sending (the kernel duplicates
// it into the message).
func rawFD(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	raw.Control(func(f uintptr) { fd = int(f) })
	return fd
}

func TestWorkerRefusesBadMessages(t *testing.T) {
	w, sup, _ := pair(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	big := `{"v":1,"type":"drain","x":"` + strings.Repeat("a", maxMessage) + `"}`
	for _, tc := range []struct {
		msg  string
		fd   int
		want string
	}{
		{`hello`, -1, "not a JSON message object"},
		{`{"v":1,"type":"drain"} {}`, -1, "data after the message"},
		{`{"v":2,"type":"drain"}`, -1, "protocol version 2, this side speaks 1"},
		{`{"type":"drain"}`, -1, "protocol version 0"},
		{`{"v":1}`, -1, "no message type"},
		{`{"v":1,"type":"explode"}`, -1, `unknown message type "explode"`},
		{`{"v":1,"type":"drain","colour":"red"}`, -1, `unknown field "colour"`},
		{`{"v":1,"type":"ready"}`, -1, "only a worker sends ready"},
		{`{"v":1,"type":"conn","conns":[{"id":7,"remote":"1.2.3.4:5"}]}`, -1, "conn with 0 descriptors, want 1"},
		{`{"v":1,"type":"conn"}`, int(pr.Fd()), "conn with 0 connections, want 1 to 64"},
		{`{"v":1,"type":"conn","conns":[{"remote":"1.2.3.4:5"}]}`, int(pr.Fd()), "conn: connection 0 has no id"},
		{`{"v":1,"type":"conn","conns":[{"id":7}]}`, int(pr.Fd()), "conn: connection 0 (id 7) has no remote address"},
		{`{"v":1,"type":"conn","conns":[{"id":7,"remote":"x","handovers":-1}]}`, int(pr.Fd()), "conn: connection 0 (id 7) has -1 handovers"},
		{`{"v":1,"type":"conn","conns":[{"id":7,"remote":"x","port":1}]}`, int(pr.Fd()), `unknown field "port"`},
		{`{"v":1,"type":"drain"}`, int(pr.Fd()), "drain with 1 descriptors, want 0"},
		{`{"v":1,"type":"reply"}`, -1, "reply without a seq"},
		{`{"v":1,"type":"reply","seq":99}`, -1, "a reply to seq 99, which is not waiting"},
		{big, -1, "a message longer than 65536 bytes"},
		// A valid message whose descriptor is no TCP connection.
		{`{"v":1,"type":"conn","conns":[{"id":7,"remote":"x"}]}`, int(pr.Fd()), "connection 7 from x is not a TCP connection"},
	} {
		if tc.fd >= 0 {
			sendRaw(t, sup, []byte(tc.msg), tc.fd)
		} else {
			sendRaw(t, sup, []byte(tc.msg))
		}
		_, err := w.Listener().Accept()
		if !errors.Is(err, ErrBadMessage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60s: Accept error %v, want ErrBadMessage naming %q", tc.msg, err, tc.want)
		}
	}
	// The refused connection was given back: the supervisor closes it.
	m, _, err := newReceiver(sup, fromWorker).next()
	if err != nil || m.Type != kindClosed || m.ID != 7 {
		t.Fatalf("after a connection that is not TCP: %+v, %v; want closed 7", m, err)
	}

	// The listener is still usable: a valid connection comes through.
	client, server := tcpPair(t)
	sendRaw(t, sup, []byte(`{"v":1,"type":"conn","conns":[{"id":42,"remote":"`+client.LocalAddr().String()+`","handovers":2}]}`), rawFD(t, server))
	nc, err := w.Listener().Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*Conn)
	if c.ID() != 42 || c.Handovers() != 2 {
		t.Errorf("conn id %d, handovers %d; want 42, 2", c.ID(), c.Handovers())
	}
	if _, err := io.WriteString(c, "hi\n"); err != nil {
		t.Fatal(err)
	}
	// Close ends it for the client though another descriptor (the test's
	// server end, standing for the supervisor's copy) is open, and says so.
	c.Close()
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "hi\n" {
		t.Errorf("client read %q, %v; want hi and end of file", got, err)
	}
	m, _, err = newReceiver(sup, fromWorker).next()
	if err != nil || m.Type != kindClosed || m.ID != 42 {
		t.Errorf("after Close: %+v, %v; want closed 42", m, err)
	}
}

func TestSupervisorSideRefusesBadMessages(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		nfds int
		want string
	}{
		{`{"v":1,"type":"conn","conns":[{"id":1,"remote":"x"}]}`, 1, "only the supervisor sends conn"},
		{`{"v":1,"type":"drain"}`, 0, "only the supervisor sends drain"},
		{`{"v":1,"type":"closed"}`, 0, "closed without an id"},
		{`{"v":1,"type":"upgrade","binary":"x"}`, 0, "upgrade without a seq"},
		{`{"v":1,"type":"status?"}`, 0, "status? without a seq"},
		{`{"v":1,"type":"shutdown"}`, 0, "shutdown without a seq"},
		{`{"v":1,"type":"ready"}`, 1, "ready with 1 descriptors, want 0"},
		{`[1,2]`, 0, "not a JSON message object"},
	} {
		_, err := decode([]byte(tc.msg), tc.nfds, fromWorker)
		if !errors.Is(err, ErrBadMessage) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "from the worker") {
			t.Errorf("%s: %v, want ErrBadMessage from the worker naming %q", tc.msg, err, tc.want)
		}
	}
	for _, msg := range []string{`{"v":1,"type":"ready"}`, `{"v":1,"type":"closed","id":3}`, `{"v":1,"type":"upgrade","seq":1}`, `{"v":1,"type":"status?","seq":2}`, `{"v":1,"type":"shutdown","seq":3}`} {
		if _, err := decode([]byte(msg), 0, fromWorker); err != nil {
			t.Errorf("%s: %v", msg, err)
		}
	}
}

// TestBadMessageFromWorkerProcess: a worker process that sends a malformed
// message is named in the status and keeps serving.
func TestBadMessageFromWorkerProcess(t *testing.T) {
	s := serve(t, Config{Env: []string{"ECHO_MODE=garbage"}})
	st := waitStatus(t, s, "a bad message", func(st Status) bool { return st.BadMessages > 0 })
	if st.BadMessages != 1 || !strings.Contains(st.LastBad, "closed without an id") {
		t.Errorf("bad messages %d, last %q; want 1, naming a closed without an id", st.BadMessages, st.LastBad)
	}
	if _, err := dial(t, s.Addr()).ask(); err != nil {
		t.Errorf("the worker no longer serves: %v", err)
	}
}

// TestWorkerExitsWithoutSupervisor: the end of the handover socket is
// the end of the worker (Attach's hook exits the process).
func TestWorkerExitsWithoutSupervisor(t *testing.T) {
	w, sup, lost := pair(t)
	sup.Close()
	if err := <-lost; !errors.Is(err, io.EOF) {
		t.Errorf("lost: %v, want end of file", err)
	}
	if _, err := w.Status(); err == nil {
		t.Error("Status without a supervisor: no error")
	}
	if _, err := w.Listener().Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept without a supervisor: %v, want net.ErrClosed", err)
	}
}
