package host

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/internal/resume"
	"github.com/hothost/hothost/loader"
	"github.com/hothost/hothost/state"
	"github.com/hothost/hothost/ticket"
)

// session is one client connection: its codec, the logged-in player, and
// what the watchdog needs to see and fence its running request.
type session struct {
	conn    net.Conn
	codec   Codec
	release func() // gives back the connection slot
	player  uint64
	ids     [1]uint64 // player, as the one-player transaction's id list
	guard   *state.Guard
	// busy is startUnixMilli<<16 | serial+1 while a handler runs, else 0:
	// one word the watchdog and the status page read without a lock.
	busy atomic.Uint64
	call abi.Call // reused: one request at a time
	// entry and msg are the running request's, written before Store.Run;
	// the watchdog reads them only after its Fence succeeded, which orders
	// them (the compare-and-swap reads the word Run stored after them).
	entry loader.Entry
	msg   string
	// deadline is when the read deadline was last pushed out (to
	// deadline + IdleTimeout).
	deadline time.Time
	// handedOver is closed once the watchdog has fenced a request of this
	// session and handed the connection to a fresh one.
	handedOver chan struct{}
	wmu        sync.Mutex // one writer at a time: replies and pushes
	push       pushQueue
	// stream is the session kept in shared memory (stream.go), nil for a
	// connection the table does not account for; tag is the running
	// request's.
	stream  *resume.Stream
	tag     string
	keepBuf []byte
}

// writeReply writes r under the session's write lock (pushes share the
// connection).
func (s *session) writeReply(r Reply) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.codec.WriteReply(r)
}

func newSession(conn net.Conn, codec Codec, release func()) *session {
	return &session{conn: conn, codec: codec, release: release, guard: new(state.Guard), handedOver: make(chan struct{})}
}

// serveClients accepts client connections until the listener closes.
func (h *Host[T, C]) serveClients(ln net.Listener) {
	defer h.connsDone.Done()
	slots := make(chan struct{}, h.opts.MaxConns)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			h.log.Warn("accept", "err", err)
			time.Sleep(10 * time.Millisecond) // EMFILE and friends: back off instead of spinning
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			h.metrics.refused.Inc()
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			newLineCodec(conn, h.opts.MaxFrame).WriteReply(errReply("full", "too many connections (%d); retry later", h.opts.MaxConns))
			conn.Close()
			continue
		}
		s := newSession(conn, newLineCodec(conn, h.opts.MaxFrame), func() { <-slots })
		h.attachStream(s)
		if !h.track(s, nil) {
			conn.Close()
			s.release()
			continue
		}
		h.connsDone.Add(1)
		go h.runSession(s, nil)
	}
}

// runSession serves s until it ends, then closes the connection, unless
// the watchdog took the connection over from it (then a fresh session
// owns it, and this goroutine leaves without touching it). first, if set,
// is written before the first read: the reply to a fenced request.
func (h *Host[T, C]) runSession(s *session, first *Reply) {
	if first != nil && s.writeReply(*first) != nil {
		h.endSession(s)
		return
	}
	if h.serveConn(s) {
		h.endSession(s)
	} else {
		h.stuckEnded(s)
	}
}

func (h *Host[T, C]) endSession(s *session) {
	if s.player != 0 {
		h.players.remove(s.player, s)
	}
	h.track(nil, s)
	if s.stream != nil && !h.handoff.Load() {
		s.stream.Close() // handing over, the table keeps the session for the next worker
	}
	// A supervisor's connection (supervisor.Conn) tells the supervisor to
	// drop its copy, or, while the worker drains, only releases this
	// process's descriptor so the next worker gets it.
	s.conn.Close()
	s.release()
	h.connsDone.Done()
}

// track adds s, removes old, or replaces old with s (a watchdog takeover);
// adding fails once shutdown began.
func (h *Host[T, C]) track(s, old *session) bool {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	if old != nil {
		delete(h.conns, old)
	}
	if s != nil {
		if h.conns == nil || h.closing && old == nil {
			return false // shutting down: only a watchdog takeover replaces a session
		}
		h.conns[s] = struct{}{}
	}
	h.metrics.conns.Set(float64(len(h.conns)))
	return true
}

// serveConn runs one client session: login first, then commands, each
// answered before the next frame is read. Nothing the client sends can do
// more than end its own session. It returns false if the watchdog fenced a
// request of this session: the connection is no longer this goroutine's.
func (h *Host[T, C]) serveConn(s *session) bool {
	bad := 0
	// now is when the last request began (one clock read a request): the
	// idle deadline counts from there, at most one request's run earlier
	// than from the read.
	now := time.Now()
	for {
		if h.handoff.Load() {
			return true
		}
		h.pushDeadline(s, now)
		f, err := s.codec.ReadFrame()
		if errors.Is(err, ErrBadFrame) {
			bad++
			h.metrics.badFrames.Inc()
			if bad >= h.opts.MaxBadFrames {
				s.writeReply(errReply("frame", "%v; %d bad frames, closing", err, bad))
				return true
			}
			if s.writeReply(errReply("frame", "%v", err)) != nil {
				return true
			}
			continue
		}
		if err != nil {
			if h.handoff.Load() {
				return true // woken to stop: the next worker reads on
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				s.writeReply(errReply("idle", "no request for %v, closing", h.opts.IdleTimeout))
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				h.log.Debug("client read", "remote", s.conn.RemoteAddr(), "err", err)
			}
			return true
		}
		if h.handoff.Load() {
			return true // read but not begun: the next worker answers it (it is in the session's ring)
		}
		now = time.Now()
		var reply Reply
		if s.stream != nil && s.player != 0 {
			if r, line, done := h.answeredBefore(s, f); done {
				if line != nil {
					r = Reply{line: line}
				}
				r.Tag = f.Tag
				if s.writeReply(r) != nil {
					return true
				}
				continue
			}
		}
		s.tag = f.Tag
		switch {
		case f.Cmd == "quit":
			s.writeReply(Reply{OK: true, Text: "bye", Tag: f.Tag})
			return true
		case f.Cmd == "ping":
			reply = okReply("pong")
		case f.Cmd == "help":
			reply = okReply("%s", h.help())
		case h.draining.Load() && h.handoff.Load():
			return true // as above: handing over began since
		case h.draining.Load():
			reply = errReply("draining", "server is shutting down; reconnect shortly")
		case f.Cmd == "login":
			reply = h.clientLogin(s, f)
		case s.player == 0:
			reply = errReply("nologin", "log in first: %s", h.loginUsage())
		default:
			h.replyKill.running(f.Cmd)
			if reply, err = h.execute(s, f, now); err != nil {
				return false // fenced: the watchdog answered and handed the connection on
			}
			if reply.OK {
				h.replyKill.committed()
			}
		}
		reply.Tag = f.Tag
		if err := s.writeReply(reply); err != nil {
			return true
		}
	}
}

// pushDeadline sets the idle read deadline at most once per eighth of the
// idle timeout rather than before every read (each call reprograms a
// runtime timer): a connection is closed after between 7/8 and all of
// IdleTimeout without a request.
func (h *Host[T, C]) pushDeadline(s *session, now time.Time) {
	if now.Sub(s.deadline) >= h.opts.IdleTimeout/8 {
		s.conn.SetReadDeadline(now.Add(h.opts.IdleTimeout))
		s.deadline = now
	}
}

// clientLogin checks `login <player-id> <ticket>`: the ticket is a signed
// token (package ticket) naming the player, verified with the host's key.
// Failed logins cost the client's address a token of its rate limit; a
// client out of tokens is refused before its ticket is even read. With
// Options.InsecureLogin the ticket is not required (and not checked).
func (h *Host[T, C]) clientLogin(s *session, f Frame) Reply {
	if len(f.Args) < 1 || len(f.Args) > 2 {
		return errReply("usage", "%s", h.loginUsage())
	}
	id, err := parsePlayerID(f.Args[0])
	if err != nil {
		return errReply("usage", "%v", err)
	}
	if s.player != 0 && s.player != id {
		return errReply("usage", "already logged in as %d on this connection", s.player)
	}
	now := time.Now()
	if !h.opts.InsecureLogin {
		addr := s.conn.RemoteAddr().String()
		if ok, wait := h.logins.Allow(addr, now); !ok {
			h.metrics.authFailures.WithLabelValues("limited").Inc()
			return errReply("auth", "too many failed logins from your address; retry in %v", wait.Round(time.Second))
		}
		tk := ""
		if len(f.Args) == 2 {
			tk = f.Args[1]
		}
		if err := h.tickets.Verify(tk, id, now); err != nil {
			h.logins.Failed(addr, now)
			h.metrics.authFailures.WithLabelValues(authReason(err)).Inc()
			return errReply("auth", "%v", err)
		}
	}
	r := h.login(id, now)
	if r.OK && s.player == 0 {
		s.player, s.ids[0] = id, id
		h.players.add(id, s)
		if s.stream != nil {
			s.stream.SetPlayer(id)
		}
	}
	return r
}

func (h *Host[T, C]) loginUsage() string {
	if h.opts.InsecureLogin {
		return "login <player-id>"
	}
	return "login <player-id> <ticket>"
}

// authReason is a failed login's label for hothost_auth_failures_total.
func authReason(err error) string {
	for _, c := range []struct {
		err  error
		name string
	}{{ticket.ErrMissing, "missing"}, {ticket.ErrMalformed, "malformed"}, {ticket.ErrSignature, "signature"},
		{ticket.ErrExpired, "expired"}, {ticket.ErrNotYetValid, "not_yet_valid"}, {ticket.ErrOtherPlayer, "other_player"},
		{ticket.ErrAlgorithm, "algorithm"}} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "other"
}
