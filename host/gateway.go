package host

import (
	"errors"
	"io"
	"net"
	"os"
	"time"
)

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
		if !h.track(conn, true) {
			conn.Close()
			<-slots
			continue
		}
		h.connsDone.Add(1)
		go func() {
			defer func() { h.track(conn, false); conn.Close(); <-slots; h.connsDone.Done() }()
			h.serveConn(conn)
		}()
	}
}

// track adds or removes a live connection; adding fails once shutdown began.
func (h *Host[T, C]) track(conn net.Conn, add bool) bool {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	if !add {
		delete(h.conns, conn)
		h.metrics.conns.Set(float64(len(h.conns)))
		return true
	}
	if h.conns == nil {
		return false
	}
	h.conns[conn] = struct{}{}
	h.metrics.conns.Set(float64(len(h.conns)))
	return true
}

// serveConn runs one client session: login first, then commands, each
// answered before the next frame is read. Nothing the client sends can do
// more than end its own session.
func (h *Host[T, C]) serveConn(conn net.Conn) {
	codec := newLineCodec(conn, h.opts.MaxFrame)
	req := &request{done: make(chan Reply, 1)}
	bad := 0
	for {
		conn.SetReadDeadline(time.Now().Add(h.opts.IdleTimeout))
		f, err := codec.ReadFrame()
		if errors.Is(err, ErrBadFrame) {
			bad++
			h.metrics.badFrames.Inc()
			if bad >= h.opts.MaxBadFrames {
				codec.WriteReply(errReply("frame", "%v; %d bad frames, closing", err, bad))
				return
			}
			if codec.WriteReply(errReply("frame", "%v", err)) != nil {
				return
			}
			continue
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				codec.WriteReply(errReply("idle", "no request for %v, closing", h.opts.IdleTimeout))
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				h.log.Debug("client read", "remote", conn.RemoteAddr(), "err", err)
			}
			return
		}
		var reply Reply
		switch {
		case f.Cmd == "quit":
			codec.WriteReply(okReply("bye"))
			return
		case f.Cmd == "ping":
			reply = okReply("pong")
		case f.Cmd == "login":
			reply = h.clientLogin(req, f)
		case req.player == 0:
			reply = errReply("nologin", "log in first: login <player-id>")
		default:
			req.frame, req.login = f, false
			reply = h.submit(req)
		}
		if err := codec.WriteReply(reply); err != nil {
			return
		}
	}
}

func (h *Host[T, C]) clientLogin(req *request, f Frame) Reply {
	if len(f.Args) != 1 {
		return errReply("usage", "login <player-id>")
	}
	id, err := parsePlayerID(f.Args[0])
	if err != nil {
		return errReply("usage", "%v", err)
	}
	if req.player != 0 && req.player != id {
		return errReply("usage", "already logged in as %d on this connection", req.player)
	}
	prev := req.player
	req.player, req.frame, req.login = id, f, true
	r := h.submit(req)
	if !r.OK {
		req.player = prev
	}
	return r
}
