package supervisor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Errors of the worker side.
var (
	// ErrNotWorker: the process was not started by a supervisor.
	ErrNotWorker = errors.New("supervisor: not a worker (no " + FDEnv + " in the environment)")
	// ErrSupervisorGone: the handover socket ended.
	ErrSupervisorGone = errors.New("supervisor: the supervisor is gone")
	// ErrUpgradeRefused wraps the supervisor's reason for refusing an
	// upgrade (another one in progress, not an executable binary).
	ErrUpgradeRefused = errors.New("supervisor: upgrade refused")
)

// requestTimeout bounds a worker's wait for the answer to a question.
const requestTimeout = 10 * time.Second

// attached remembers that this process was a worker after Attach removed
// the handover variables from its environment.
var attached atomic.Bool

// IsWorker reports whether this process was started by a supervisor as
// its worker.
func IsWorker() bool { return attached.Load() || os.Getenv(FDEnv) != "" }

// Worker is the worker side of the handover socket.
type Worker struct {
	sock   *net.UnixConn
	ln     *listener
	seq    atomic.Uint64
	ready  atomic.Bool
	drain  chan struct{}
	gone   chan struct{} // closed when the socket ends
	onLost func(error)

	mu       sync.Mutex
	pending  map[uint64]chan message
	conns    map[uint64]*Conn // handed over, not yet closed or released
	draining bool
	closed   bool
}

// Attach takes over the handover socket named by HOTHOST_SUPERVISOR_FD and
// removes the handover variables from the environment, so that the
// worker's own children (plugin preflight) are not taken for workers.
//
// A worker must not outlive its supervisor: when the socket reaches end of
// file without Close, the process exits (status 1) after a line on stderr.
// The supervisor also starts it with Pdeathsig SIGKILL; this covers the
// rest (a supervisor that closed the socket and lives on).
func Attach() (*Worker, error) {
	v := os.Getenv(FDEnv)
	if v == "" {
		return nil, ErrNotWorker
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("supervisor: %s=%q: want a descriptor number, 3 or more", FDEnv, v)
	}
	c, err := unixConn(fd, "handover")
	if err != nil {
		return nil, err
	}
	addr := os.Getenv(ListenEnv)
	os.Unsetenv(FDEnv)
	os.Unsetenv(ListenEnv)
	attached.Store(true)
	return newWorker(c, addr, exitOnLost), nil
}

func exitOnLost(err error) {
	fmt.Fprintf(os.Stderr, "hothost worker %d: exiting: the supervisor is gone (%v); a worker never outlives it\n", os.Getpid(), err)
	os.Exit(1)
}

func newWorker(c *net.UnixConn, addr string, onLost func(error)) *Worker {
	w := &Worker{sock: c, drain: make(chan struct{}), gone: make(chan struct{}), onLost: onLost,
		pending: map[uint64]chan message{}, conns: map[uint64]*Conn{}}
	w.ln = &listener{w: w, addr: listenAddr(addr), wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.read()
	return w
}

// Listener returns the connections the supervisor hands over, as *Conn.
// Accept fails with an error wrapping ErrBadMessage when the supervisor sent
// something invalid (the listener stays usable), and with one wrapping
// net.ErrClosed once the worker drains or the listener is closed.
func (w *Worker) Listener() net.Listener { return w.ln }

// Ready tells the supervisor that the worker is ready for connections;
// until then the supervisor keeps them.
func (w *Worker) Ready() error {
	if !w.ready.CompareAndSwap(false, true) {
		return errors.New("supervisor: ready was already sent")
	}
	return send(w.sock, message{Type: kindReady}, nil, sendTimeout)
}

// Closed tells the supervisor that the worker is done with connection id:
// it is shut down for the client (the supervisor's copy would keep it
// open) and the supervisor closes its copy. Conn.Close calls it; calling
// it again, or for an unknown id, does nothing.
func (w *Worker) Closed(id uint64) {
	w.mu.Lock()
	c := w.conns[id]
	delete(w.conns, id)
	w.mu.Unlock()
	if c == nil {
		return
	}
	if raw, err := c.TCPConn.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RDWR) })
	}
	send(w.sock, message{Type: kindClosed, ID: id}, nil, sendTimeout) // a lost supervisor ends the process anyway
}

// Drain is closed when the supervisor asks the worker to drain: take no
// more requests, finish the ones in flight, close the state cleanly and
// exit 0. Connections are then released, not closed (Conn.Close does that
// by itself from now on): the next worker serves them.
func (w *Worker) Drain() <-chan struct{} { return w.drain }

// Upgrade asks the supervisor to replace this worker with one started from
// binary ("" for the current binary's path again). It returns when the
// supervisor has accepted or refused; this worker is then drained.
func (w *Worker) Upgrade(binary string) error {
	r, err := w.request(message{Type: kindUpgrade, Binary: binary})
	if err != nil {
		return err
	}
	if r.Error != "" {
		return fmt.Errorf("%w: %s", ErrUpgradeRefused, r.Error)
	}
	return nil
}

// Shutdown asks the supervisor to stop for good, as SIGTERM to it does: it
// stops accepting, drains this worker (which then closes its state and
// returns), closes every client connection and exits. A worker that only
// exited would be replaced.
func (w *Worker) Shutdown() error {
	r, err := w.request(message{Type: kindShutdown})
	if err != nil {
		return err
	}
	if r.Error != "" {
		return fmt.Errorf("supervisor: shutdown refused: %s", r.Error)
	}
	return nil
}

// Status asks the supervisor for its status.
func (w *Worker) Status() (Status, error) {
	r, err := w.request(message{Type: kindStatus})
	if err != nil {
		return Status{}, err
	}
	if r.Status == nil {
		return Status{}, badMessage("from the supervisor: a status reply without a status")
	}
	return *r.Status, nil
}

// Close closes the handover socket and the listener; the process is
// expected to exit. Connections still open are released, not closed.
func (w *Worker) Close() error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.ln.Close()
	return w.sock.Close()
}

func (w *Worker) request(m message) (message, error) {
	m.Seq = w.seq.Add(1)
	ch := make(chan message, 1)
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return message{}, fmt.Errorf("supervisor: %s: the worker is closed", m.Type)
	}
	w.pending[m.Seq] = ch
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.pending, m.Seq)
		w.mu.Unlock()
	}()
	if err := send(w.sock, m, nil, sendTimeout); err != nil {
		return message{}, err
	}
	t := time.NewTimer(requestTimeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r, nil
	case <-w.gone:
		return message{}, fmt.Errorf("%w: no answer to %s", ErrSupervisorGone, m.Type)
	case <-t.C:
		return message{}, fmt.Errorf("supervisor: no answer to %s within %v", m.Type, requestTimeout)
	}
}

func (w *Worker) read() {
	r := newReceiver(w.sock, fromSupervisor)
	for {
		m, fds, err := r.next()
		if errors.Is(err, ErrBadMessage) {
			w.ln.fail(err)
			continue
		}
		if err != nil {
			w.lost(err)
			return
		}
		switch m.Type {
		case kindConn:
			w.receiveAll(m.Conns, fds)
		case kindDrain:
			w.startDrain()
		case kindReply:
			w.mu.Lock()
			ch := w.pending[m.Seq]
			w.mu.Unlock()
			if ch == nil {
				w.ln.fail(badMessage("from the supervisor: a reply to seq %d, which is not waiting", m.Seq))
				continue
			}
			ch <- m
		}
	}
}

func (w *Worker) lost(err error) {
	close(w.gone)
	w.mu.Lock()
	closed := w.closed
	w.closed = true
	w.mu.Unlock()
	w.ln.Close()
	if !closed {
		w.onLost(err)
	}
}

// receiveAll receives a batch of connections, on every CPU: making a
// net.Conn of a descriptor takes a dozen system calls, and a new worker
// takes all the connections of the old one at once.
func (w *Worker) receiveAll(cs []connInfo, fds []int) {
	n := min(len(cs), runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() {
			for i := k; i < len(cs); i += n {
				w.receive(cs[i], fds[i])
			}
		})
	}
	wg.Wait()
}

// receive makes a *Conn of a handed-over descriptor and queues it for
// Accept.
func (w *Worker) receive(m connInfo, fd int) {
	f := os.NewFile(uintptr(fd), "client "+m.Remote)
	nc, err := net.FileConn(f)
	f.Close()
	tc, ok := nc.(*net.TCPConn)
	if err == nil && !ok {
		nc.Close()
		err = fmt.Errorf("a %T", nc)
	}
	if err != nil {
		// Nobody can serve it: the supervisor closes its copy, the client
		// sees a close rather than silence.
		w.ln.fail(badMessage("from the supervisor: connection %d from %s is not a TCP connection: %v", m.ID, m.Remote, err))
		send(w.sock, message{Type: kindClosed, ID: m.ID}, nil, sendTimeout)
		return
	}
	c := &Conn{TCPConn: tc, id: m.ID, handovers: m.Handovers, w: w}
	w.mu.Lock()
	if w.draining || w.closed {
		w.mu.Unlock()
		tc.Close() // the next worker takes it
		return
	}
	w.conns[m.ID] = c
	w.mu.Unlock()
	w.ln.push(c)
}

func (w *Worker) startDrain() {
	w.mu.Lock()
	already := w.draining
	w.draining = true
	w.mu.Unlock()
	if !already {
		close(w.drain)
		w.ln.releaseQueued()
	}
}

// leaving reports whether connections are to be released rather than
// closed: the worker drains, or is done with its supervisor.
func (w *Worker) leaving() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.draining || w.closed
}

func (w *Worker) forget(id uint64) {
	w.mu.Lock()
	delete(w.conns, id)
	w.mu.Unlock()
}

// Conn is a client connection handed over by the supervisor.
type Conn struct {
	*net.TCPConn
	id        uint64
	handovers int
	w         *Worker
}

// ID is the connection's id, unique across supervisor restarts and the
// same in every worker that serves it.
func (c *Conn) ID() uint64 { return c.id }

// Handovers is how many workers had the connection before this one; 0 for
// a new connection.
func (c *Conn) Handovers() int { return c.handovers }

// Close ends the connection for the client (Worker.Closed), unless the
// worker drains or is closed: then it is released (Release).
func (c *Conn) Close() error {
	if c.w.leaving() {
		return c.Release()
	}
	c.w.Closed(c.id)
	return c.TCPConn.Close()
}

// Release closes this process's descriptor only: the client stays
// connected, and the supervisor hands the connection to the next worker.
func (c *Conn) Release() error {
	c.w.forget(c.id)
	return c.TCPConn.Close()
}

// listener is Worker.Listener: a queue the reader fills.
type listener struct {
	w    *Worker
	addr net.Addr
	wake chan struct{} // capacity 1: something was queued
	done chan struct{} // closed by Close

	mu     sync.Mutex
	q      []*Conn
	errs   []error
	closed bool
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		switch {
		case l.closed:
			l.mu.Unlock()
			return nil, fmt.Errorf("supervisor: listener: %w", net.ErrClosed)
		case len(l.errs) > 0:
			err := l.errs[0]
			l.errs = l.errs[1:]
			l.mu.Unlock()
			return nil, err
		case len(l.q) > 0:
			c := l.q[0]
			l.q[0] = nil
			l.q = l.q[1:]
			l.mu.Unlock()
			return c, nil
		}
		l.mu.Unlock()
		if l.w.leaving() {
			return nil, fmt.Errorf("supervisor: the worker drains: %w", net.ErrClosed)
		}
		select {
		case <-l.wake:
		case <-l.done:
		case <-l.w.drain:
		}
	}
}

func (l *listener) push(c *Conn) {
	l.mu.Lock()
	l.q = append(l.q, c)
	l.mu.Unlock()
	l.signal()
}

func (l *listener) fail(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
	l.signal()
}

func (l *listener) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// releaseQueued releases the connections nobody accepted yet.
func (l *listener) releaseQueued() {
	l.mu.Lock()
	q := l.q
	l.q = nil
	l.mu.Unlock()
	for _, c := range q {
		c.Release()
	}
}

func (l *listener) Close() error {
	l.mu.Lock()
	already := l.closed
	l.closed = true
	l.mu.Unlock()
	if !already {
		close(l.done)
		l.releaseQueued()
	}
	return nil
}

func (l *listener) Addr() net.Addr { return l.addr }

// listenAddr is the supervisor's client address as the worker knows it.
type listenAddr string

func (a listenAddr) Network() string { return "tcp" }
func (a listenAddr) String() string  { return string(a) }
