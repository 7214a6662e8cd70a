package supervisor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The handover socket is a SOCK_SEQPACKET socket pair: one message is one
// packet, so a message is never split or merged and needs no framing. Each
// is a small JSON object carrying the protocol version; a conn message also
// carries the connection's descriptor (SCM_RIGHTS).
//
//	supervisor -> worker   conn {conns: [{id, remote, handovers}, ...]} + their descriptors, in order
//	                       drain
//	                       reply {seq, error | status}    (to upgrade, status? and shutdown)
//	worker -> supervisor   ready
//	                       closed {id}
//	                       upgrade {seq, binary}
//	                       status? {seq}
//	                       shutdown {seq}

// ProtocolVersion is the version of the handover messages. A message of
// another version is refused, naming both: supervisor and worker can be
// different builds during an upgrade, so a change of the messages bumps it.
// A new message type does not: a side that does not know it refuses that
// message by name and goes on with the others (a worker asking an older
// supervisor to shut down gets no answer and says so), whereas a new
// version would make an older supervisor refuse every message of the new
// worker an upgrade starts.
const ProtocolVersion = 1

// ErrBadMessage is wrapped by every error about a message that is not a
// valid handover message for the side that received it.
var ErrBadMessage = errors.New("supervisor: bad handover message")

// maxMessage bounds one packet. A status reply is the largest message:
// a few kB, the stderr tails included.
const maxMessage = 64 << 10

// maxBatch is the most connections one conn message carries. Handing
// connections over one message each costs a context switch apiece: a Unix
// datagram socket queues only net.unix.max_dgram_qlen (10) messages.
const maxBatch = 64

// maxFDs is room for more descriptors than any valid message carries, so
// that a message with too many is seen (and its descriptors closed) rather
// than truncated by the kernel.
const maxFDs = maxBatch + 4

const (
	kindConn     = "conn"
	kindDrain    = "drain"
	kindReply    = "reply"
	kindReady    = "ready"
	kindClosed   = "closed"
	kindUpgrade  = "upgrade"
	kindStatus   = "status?"
	kindShutdown = "shutdown"
)

// sender names who sent a message: each side accepts only the other's.
type sender int

const (
	fromSupervisor sender = iota
	fromWorker
)

func (s sender) String() string {
	if s == fromSupervisor {
		return "supervisor"
	}
	return "worker"
}

// message is every handover message; which fields are set depends on Type.
type message struct {
	V      int        `json:"v"`
	Type   string     `json:"type"`
	ID     uint64     `json:"id,omitempty"`     // closed
	Conns  []connInfo `json:"conns,omitempty"`  // conn: one per descriptor, in order
	Binary string     `json:"binary,omitempty"` // upgrade
	Seq    uint64     `json:"seq,omitempty"`    // upgrade, status?, shutdown, reply
	Error  string     `json:"error,omitempty"`  // reply
	Status *Status    `json:"status,omitempty"` // reply to status?
}

// connInfo describes one connection handed over.
type connInfo struct {
	ID        uint64 `json:"id"`
	Remote    string `json:"remote"`
	Handovers int    `json:"handovers"` // workers that had the connection before
}

func badMessage(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadMessage, fmt.Sprintf(format, args...))
}

// decode parses and validates one packet received from `from` with nfds
// descriptors attached.
func decode(b []byte, nfds int, from sender) (message, error) {
	var m message
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return message{}, badMessage("from the %v: not a JSON message object: %v (%q)", from, err, clip(b))
	}
	if dec.More() {
		return message{}, badMessage("from the %v: data after the message (%q)", from, clip(b))
	}
	if m.V != ProtocolVersion {
		return message{}, badMessage("from the %v: protocol version %d, this side speaks %d (%q)", from, m.V, ProtocolVersion, clip(b))
	}
	wantFDs := 0
	var bad string
	switch m.Type {
	case kindConn, kindDrain, kindReply:
		if from != fromSupervisor {
			bad = "only the supervisor sends " + m.Type
			break
		}
		switch {
		case m.Type == kindConn:
			bad = checkConns(m.Conns)
			wantFDs = len(m.Conns)
		case m.Type == kindReply && m.Seq == 0:
			bad = "reply without a seq"
		}
	case kindReady, kindClosed, kindUpgrade, kindStatus, kindShutdown:
		if from != fromWorker {
			bad = "only a worker sends " + m.Type
			break
		}
		switch {
		case m.Type == kindClosed && m.ID == 0:
			bad = "closed without an id"
		case (m.Type == kindUpgrade || m.Type == kindStatus || m.Type == kindShutdown) && m.Seq == 0:
			bad = m.Type + " without a seq"
		}
	case "":
		bad = "no message type"
	default:
		bad = fmt.Sprintf("unknown message type %q", m.Type)
	}
	if bad == "" && nfds != wantFDs {
		bad = fmt.Sprintf("%s with %d descriptors, want %d", m.Type, nfds, wantFDs)
	}
	if bad != "" {
		return message{}, badMessage("from the %v: %s (%q)", from, bad, clip(b))
	}
	return m, nil
}

// checkConns says what is wrong with a conn message's connections, if
// anything.
func checkConns(cs []connInfo) string {
	if len(cs) == 0 || len(cs) > maxBatch {
		return fmt.Sprintf("conn with %d connections, want 1 to %d", len(cs), maxBatch)
	}
	for i, c := range cs {
		switch {
		case c.ID == 0:
			return fmt.Sprintf("conn: connection %d has no id", i)
		case c.Remote == "":
			return fmt.Sprintf("conn: connection %d (id %d) has no remote address", i, c.ID)
		case c.Handovers < 0:
			return fmt.Sprintf("conn: connection %d (id %d) has %d handovers", i, c.ID, c.Handovers)
		}
	}
	return ""
}

// clip keeps an error message about a bad packet readable.
func clip(b []byte) []byte {
	if len(b) > 200 {
		return append(b[:200:200], "..."...)
	}
	return b
}

// send writes m as one packet, with fds attached. A zero timeout waits as
// long as it takes.
func send(c *net.UnixConn, m message, fds []int, timeout time.Duration) error {
	m.V = ProtocolVersion
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("supervisor: encode %s: %w", m.Type, err)
	}
	if len(b) > maxMessage {
		return fmt.Errorf("supervisor: %s message of %d bytes exceeds %d", m.Type, len(b), maxMessage)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if timeout > 0 {
		c.SetWriteDeadline(time.Now().Add(timeout))
		defer c.SetWriteDeadline(time.Time{})
	}
	if _, _, err := c.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("supervisor: send %s: %w", m.Type, err)
	}
	return nil
}

// receiver reads packets from one handover socket.
type receiver struct {
	c    *net.UnixConn
	from sender
	buf  []byte
	oob  []byte
}

func newReceiver(c *net.UnixConn, from sender) *receiver {
	return &receiver{c: c, from: from, buf: make([]byte, maxMessage+1), oob: make([]byte, unix.CmsgSpace(maxFDs*4))}
}

// next returns the next valid message and its descriptors. An error
// wrapping ErrBadMessage leaves the socket usable: the caller reports it
// and reads on. Any other error (io.EOF: the peer is gone) ends the socket.
func (r *receiver) next() (message, []int, error) {
	n, oobn, flags, _, err := r.c.ReadMsgUnix(r.buf, r.oob)
	if err != nil {
		return message{}, nil, err
	}
	if n == 0 && oobn == 0 {
		return message{}, nil, io.EOF // a zero-length packet is the peer's close: no message is empty
	}
	fds, perr := parseRights(r.oob[:oobn])
	switch {
	case perr != nil:
		err = badMessage("from the %v: control data: %v", r.from, perr)
	case flags&unix.MSG_CTRUNC != 0:
		err = badMessage("from the %v: more descriptors than %d (control data truncated)", r.from, maxFDs)
	case flags&unix.MSG_TRUNC != 0 || n > maxMessage:
		err = badMessage("from the %v: a message longer than %d bytes", r.from, maxMessage)
	}
	var m message
	if err == nil {
		m, err = decode(r.buf[:n], len(fds), r.from)
	}
	if err != nil {
		closeAll(fds)
		return message{}, nil, err
	}
	return m, fds, nil
}

func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	var bad error
	for _, cm := range cmsgs {
		got, err := unix.ParseUnixRights(&cm)
		if err != nil {
			bad = fmt.Errorf("control message level %d type %d: %w", cm.Header.Level, cm.Header.Type, err)
			continue
		}
		fds = append(fds, got...)
	}
	if bad != nil {
		closeAll(fds)
		return nil, bad
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// socketPair makes the handover socket: the supervisor's end as a
// *net.UnixConn, the worker's as a file to pass as its fd 3. Both are
// close-on-exec; exec.Cmd's ExtraFiles clears that for the worker's end.
func socketPair() (*net.UnixConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("supervisor: handover socket pair: %w", err)
	}
	mine, err := unixConn(fds[0], "handover")
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	return mine, os.NewFile(uintptr(fds[1]), "handover-worker"), nil
}

// unixConn wraps a descriptor of a Unix SOCK_SEQPACKET socket (taking it
// over) after checking that it is one.
func unixConn(fd int, name string) (*net.UnixConn, error) {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close() // FileConn works on its own duplicate
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("supervisor: descriptor %d (%s) is not a socket: %w", fd, name, err)
	}
	if typ != unix.SOCK_SEQPACKET {
		return nil, fmt.Errorf("supervisor: descriptor %d (%s) is a socket of type %d, want SOCK_SEQPACKET", fd, name, typ)
	}
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("supervisor: descriptor %d (%s): %w", fd, name, err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("supervisor: descriptor %d (%s) is a %T, want a Unix socket", fd, name, nc)
	}
	return uc, nil
}
