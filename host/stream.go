package host

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/hothost/hothost/internal/resume"
)

// Sessions in shared memory: each TCP client connection's bytes in and out
// are accounted for in the session table (internal/resume), so that when
// this worker dies, the next one, handed the same connections by the
// supervisor, answers every request exactly once. Requests this worker
// read but did not answer come back from the table's ring; a reply it
// committed but did not send comes back from the session's records.

// Handed is what the host needs from a connection a supervisor handed it:
// its id across workers. A connection without it is this worker's own.
type Handed interface {
	ID() uint64
}

// streamCodec is the line protocol on a session kept in the table.
type streamCodec struct {
	st  *resume.Stream
	cur uint64 // end of the request being answered
	buf []byte
	max int
}

func (c *streamCodec) ReadFrame() (Frame, error) {
	line, end, err := c.st.Next()
	if errors.Is(err, resume.ErrTooLong) {
		c.cur = end
		return Frame{End: end}, fmt.Errorf("%w: longer than %d bytes", ErrBadFrame, c.max)
	}
	if err != nil {
		return Frame{}, err
	}
	c.cur = end
	f, err := ParseFrame(line, c.max)
	f.End = end
	return f, err
}

func (c *streamCodec) WriteReply(r Reply) error {
	c.buf = appendReply(c.buf[:0], r)
	return c.st.Write(c.buf, c.cur)
}

func (c *streamCodec) WritePush(text string) error {
	c.buf = appendPush(c.buf[:0], text)
	return c.st.Write(c.buf, 0)
}

// attachStream gives s a session in the table, resuming the one a dead
// worker left for its connection; without a table, or for a connection
// the table cannot account for, s keeps the plain line codec.
func (h *Host[T, C]) attachStream(s *session) {
	if h.sessions == nil {
		return
	}
	if _, ok := s.conn.(syscall.Conn); !ok {
		return
	}
	var id uint64
	if hc, ok := s.conn.(Handed); ok {
		id = hc.ID()
	}
	st, err := h.sessions.Attach(s.conn, id, h.opts.MaxFrame)
	if err != nil {
		h.metrics.resumeFailed.Inc()
		h.log.Error("connection served without a kept session: a crash of this worker may cut it", "remote", s.conn.RemoteAddr(), "err", err)
		return
	}
	s.stream, s.codec = st, &streamCodec{st: st, max: h.opts.MaxFrame, buf: make([]byte, 0, 256)}
	if !st.Resumed() {
		return
	}
	h.metrics.resumed.Inc()
	if p := st.Player(); p != 0 {
		s.player, s.ids[0] = p, p
		h.players.add(p, s)
	}
}

// answeredBefore handles a request a previous worker already dealt with:
// one it committed (answered from its record) and one that two workers
// died running (answered `err retry`, not run a third time). It reports
// whether f is answered.
func (h *Host[T, C]) answeredBefore(s *session, f Frame) (Reply, []byte, bool) {
	if line, ok := s.stream.Kept(f.End); ok {
		h.metrics.keptReplies.Inc()
		h.log.Info("request the previous worker committed: answered with its kept reply, not run again", "player", s.player, "cmd", f.Cmd)
		if line == nil {
			return errReply("retry", "your request was done, but its reply was too long to keep across the restart; check and go on"), nil, true
		}
		return Reply{}, line, true
	}
	if s.stream.Begin(f.End) >= 2 {
		h.metrics.retried.Inc()
		h.log.Warn("request two workers died running: answered err retry, not run a third time", "player", s.player, "cmd", f.Cmd)
		return errReply("retry", "the server failed twice while running this request; it was not run again: check and retry"), nil, true
	}
	return Reply{}, nil, false
}

// openSessions opens the session table beside the state segment. Replies
// a dead worker recorded for transactions that never committed are dropped
// here, before anything runs (the state store recovered already).
func (h *Host[T, C]) openSessions() error {
	t, rep, err := resume.Open(h.sessionsPath(), 2*h.opts.MaxConns, h.store.Commits)
	if err != nil {
		return fmt.Errorf("host: %w", err)
	}
	if rep.Invalid != nil {
		h.log.Error("session table of the previous worker unusable; made a new one: its connections are served as new ones", "err", rep.Invalid)
	}
	if rep.Live > 0 || rep.Dropped > 0 {
		h.log.Info("sessions of the previous worker", "waiting", rep.Live, "ended", rep.Closed, "uncommitted_replies_dropped", rep.Dropped)
	}
	h.sessions = t
	return nil
}

// closeSessions unmaps the session table. A host that stopped for good
// (not handing over to a next worker) closed every connection: nothing is
// left to resume, and the table's file goes with them.
//
// A handler goroutine the watchdog fenced may still run (Go cannot stop
// it) and may have read the table before it was fenced: then the mapping
// is left to go with the process rather than unmapped under it.
func (h *Host[T, C]) closeSessions() {
	if h.stuckCount.Load() == 0 {
		h.sessions.Close()
	}
	if !h.handoff.Load() {
		os.Remove(h.sessionsPath())
	}
}

// sessionsPath is the session table's file, beside the state segment.
func (h *Host[T, C]) sessionsPath() string { return h.store.Path() + ".sessions" }
