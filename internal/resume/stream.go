package resume

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrTooLong is Next's error for a line longer than its max: the rest of
// the line is skipped, and Next goes on with the one after.
var ErrTooLong = errors.New("resume: line too long")

// Stream is one connection's session: its bytes in and out, accounted for
// in the table. Next and Record are for the connection's goroutine; Write
// for whoever holds the connection's write lock.
type Stream struct {
	t       *Table
	i       int
	h       *entryHdr
	conn    net.Conn
	ring    []byte
	out     []byte
	max     int
	in      uint64 // stream offset of the next byte to read (= kernel's consumed count)
	pos     uint64 // start of the next line to parse
	written uint64 // stream offset of the next byte to write
	skip    bool   // dropping the rest of a line longer than max
	resumed bool
	// inherited is how many bytes of the connection earlier workers read
	// (0 for a new one): only a request ending there can have their record.
	inherited uint64
	line      []byte // Next's result, reused
}

// Attach starts the session of conn. id names the connection across
// workers (the supervisor's id; 0 for one that has none: a fresh id is
// made). A connection whose id has an entry resumes it: Attach reads the
// kernel's byte counts, finishes the last write the dead worker cut short,
// and the requests it read but did not answer come first from Next. max
// bounds a request line (at most MaxFrame).
func (t *Table) Attach(conn net.Conn, id uint64, max int) (*Stream, error) {
	if max <= 0 || max > MaxFrame {
		return nil, fmt.Errorf("resume: line max %d out of 1..%d", max, MaxFrame)
	}
	if id == 0 {
		id = t.newID()
	}
	i, resumed, err := t.claim(id)
	if err != nil {
		return nil, err
	}
	s := &Stream{t: t, i: i, h: t.hdr(i), conn: conn, ring: t.ring(i), out: t.out(i), max: max, resumed: resumed}
	if !resumed {
		// Offsets are the kernel's, so that a worker after this one can
		// compare them with its counts. A connection a dead worker had
		// but never recorded (it died in between) may have been read
		// already; a socket with no counts (not TCP) starts at zero and
		// cannot be resumed.
		if read, written, err := kernelCounts(conn); err == nil {
			s.in, s.pos, s.written = read, read, written
			s.h.InDone = read
		}
		return s, nil
	}
	if err := s.resume(); err != nil {
		t.release(i)
		return nil, err
	}
	return s, nil
}

// resume lines the stream up with what the kernel says the dead worker
// read and wrote, and finishes its last write.
func (s *Stream) resume() error {
	read, written, err := kernelCounts(s.conn)
	if err != nil {
		return fmt.Errorf("resume: resume connection %#x: %w", s.h.ConnID, err)
	}
	h := s.h
	if h.InDone > read || read-h.InDone > uint64(len(s.ring)) {
		return fmt.Errorf("resume: resume connection %#x: answered up to byte %d, but the kernel says %d were read (ring %d)",
			h.ConnID, h.InDone, read, len(s.ring))
	}
	s.in, s.pos, s.written, s.inherited = read, h.InDone, written, read
	if n := uint64(h.OutN); n > 0 && h.OutStart+n > written {
		if h.OutStart > written || n > uint64(len(s.out)) {
			return fmt.Errorf("resume: resume connection %#x: last write was bytes %d+%d, the kernel says %d were written",
				h.ConnID, h.OutStart, n, written)
		}
		rest := s.out[written-h.OutStart : n]
		m, err := s.conn.Write(rest)
		s.written += uint64(m)
		if err != nil {
			return fmt.Errorf("resume: resume connection %#x: finish last write: %w", h.ConnID, err)
		}
	}
	if h.OutN > 0 && h.OutReq > h.InDone && h.OutReq <= read {
		h.InDone = h.OutReq // that write was the reply: its request is answered
		s.pos = h.InDone
	}
	return nil
}

// kernelCounts are the bytes the processes before consumed from conn and
// wrote to it, as the kernel counts them. Nobody reads conn meanwhile, but
// bytes may arrive: read SIOCINQ on both sides of TCP_INFO until it holds
// still.
func kernelCounts(conn net.Conn) (read, written uint64, err error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return 0, 0, fmt.Errorf("%T has no socket to ask", conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		for range 100 {
			inq, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
			if err != nil {
				serr = fmt.Errorf("SIOCINQ: %w", err)
				return
			}
			ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
			if err != nil {
				serr = fmt.Errorf("TCP_INFO: %w", err)
				return
			}
			outq, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
			if err != nil {
				serr = fmt.Errorf("SIOCOUTQ: %w", err)
				return
			}
			inq2, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
			if err != nil {
				serr = fmt.Errorf("SIOCINQ: %w", err)
				return
			}
			if inq == inq2 {
				read, written = ti.Bytes_received-uint64(inq), ti.Bytes_acked+uint64(outq)
				return
			}
		}
		serr = errors.New("bytes kept arriving while counting")
	})
	if err == nil {
		err = serr
	}
	return read, written, err
}

// ID is the connection's id.
func (s *Stream) ID() uint64 { return s.h.ConnID }

// Resumed reports whether the session was a previous worker's.
func (s *Stream) Resumed() bool { return s.resumed }

// Player is the player the connection logged in as (0: none yet).
func (s *Stream) Player() uint64 { return s.h.Player }

// SetPlayer records the login, for the worker after this one.
func (s *Stream) SetPlayer(p uint64) { s.t.setPlayer(s.i, p) }

// Close ends the session (the connection is done with). Its entry is kept
// for its replies until the table needs the room.
func (s *Stream) Close() { s.t.release(s.i) }

// Next returns the next request line (without its newline) and its end
// offset in the stream: the requests the previous worker read but did not
// answer first, then new ones from the connection. The line is valid until
// the next call. A line longer than max returns ErrTooLong, with the offset
// of its end once skipped; a read error is returned as is.
func (s *Stream) Next() (line []byte, end uint64, err error) {
	for {
		if n, ok := s.find(); ok {
			end = s.pos + n + 1
			line = s.copyOut(s.pos, n)
			s.pos = end
			if s.skip {
				s.skip = false
				return nil, end, ErrTooLong
			}
			if n > uint64(s.max) {
				return nil, end, ErrTooLong
			}
			return line, end, nil
		}
		if !s.skip && s.in-s.pos > uint64(s.max) {
			s.skip = true
		}
		if s.skip {
			// Nothing of the line is kept: it is answered as a whole once
			// its end arrives, and a worker that resumes it mid-line
			// answers its tail as a bad request.
			s.pos = s.in
			atomic.StoreUint64(&s.h.InDone, s.in)
		}
		if err := s.fill(); err != nil {
			return nil, 0, err
		}
	}
}

// find looks for a newline in the unparsed bytes and returns its distance
// from s.pos.
func (s *Stream) find() (uint64, bool) {
	r := uint64(len(s.ring))
	for off := s.pos; off < s.in; {
		a := off % r
		b := min(r, a+(s.in-off))
		if k := bytes.IndexByte(s.ring[a:b], '\n'); k >= 0 {
			return off - s.pos + uint64(k), true
		}
		off += b - a
	}
	return 0, false
}

// copyOut copies n bytes at stream offset off out of the ring.
func (s *Stream) copyOut(off, n uint64) []byte {
	s.line = s.line[:0]
	r := uint64(len(s.ring))
	for n > 0 {
		a := off % r
		b := min(r, a+n)
		s.line = append(s.line, s.ring[a:b]...)
		n -= b - a
		off += b - a
	}
	return s.line
}

// fill reads from the connection into the ring's free room, which holds
// every byte not yet answered.
func (s *Stream) fill() error {
	r := uint64(len(s.ring))
	used := s.in - atomic.LoadUint64(&s.h.InDone)
	if used >= r {
		return fmt.Errorf("resume: ring full (%d bytes unanswered)", used)
	}
	a := s.in % r
	b := min(r, a+(r-used))
	n, err := s.conn.Read(s.ring[a:b])
	s.in += uint64(n)
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// Begin marks the request ending at end as being run, and reports how many
// workers started it before (0 for a new one). Call it before running a
// request that may change state.
func (s *Stream) Begin(end uint64) (before int) {
	h := s.h
	if h.TryOff == end && h.Tries > 0 {
		before = int(h.Tries)
	} else {
		h.TryOff, h.Tries = end, 0
	}
	h.Tries++
	return before
}

// Kept returns the reply a previous worker committed for the request of
// this connection that ends at end, if there is one: it is answered with
// that, not run again. ok with a nil reply: committed, reply too long to
// keep.
func (s *Stream) Kept(end uint64) (reply []byte, ok bool) {
	if end > s.inherited {
		return nil, false // read by this worker: its records are its own, and it answers before it reads on
	}
	for k := range records {
		r := s.t.rec(s.i, k)
		if atomic.LoadUint32(&r.Kind)&recUntagged != 0 && r.ReqEnd == end && r.Player == s.h.Player {
			return r.reply(), true
		}
	}
	return nil, false
}

// Record keeps reply as the answer of the request ending at end (tagged
// tag, or "") that player's transaction is about to commit; seq is the
// player's commit count once it has (state.Store.Commits + 1). Call it
// inside the transaction, after the handler and before the commit.
func (s *Stream) Record(player uint64, seq uint32, end uint64, tag string, reply []byte) {
	h := s.h
	k := int(h.NextRec % records)
	r := s.t.rec(s.i, k)
	h.NextRec++
	atomic.StoreUint32(&r.Kind, recNone) // a crash from here leaves no record
	kind := uint32(recUntagged)
	if tag != "" {
		kind |= recTagged
	}
	r.Seq, r.Player, r.ReqEnd = seq, player, end
	r.TagLen = uint8(copy(r.Tag[:], tag))
	if len(reply) > len(r.Reply) {
		kind |= recTooLong
		reply = nil
	}
	r.Len = uint16(copy(r.Reply[:], reply))
	clear(r.Reply[r.Len:])
	r.Sum = r.sum()
	atomic.StoreUint32(&r.Kind, kind)
	fp := uint32(0)
	if tag != "" {
		fp = s.t.tagPrint(tag)
	}
	s.t.tags[s.i*records+k].Store(fp)
}

// Write writes b to the connection through the output slot, so that a
// worker that resumes the session after a crash finishes it. reqEnd is the
// end of the request b answers (0 for a push): once written, the request
// counts as answered. The caller holds the connection's write lock.
func (s *Stream) Write(b []byte, reqEnd uint64) error {
	h := s.h
	for len(b) > 0 {
		n := min(len(b), len(s.out))
		atomic.StoreUint32(&h.OutN, 0)
		copy(s.out, b[:n])
		h.OutStart = s.written
		h.OutReq = 0
		if n == len(b) {
			h.OutReq = reqEnd
		}
		atomic.StoreUint32(&h.OutN, uint32(n))
		m, err := s.conn.Write(b[:n])
		s.written += uint64(m)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	if reqEnd != 0 {
		atomic.StoreUint64(&h.InDone, reqEnd)
	}
	return nil
}
