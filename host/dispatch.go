package host

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
	"github.com/hothost/hothost/state"
)

// The request path runs on the connection's goroutine: no hand-off to a
// lane goroutine and back, which was measured as the main per-request cost
// (two scheduler wake-ups, often across OS threads). Per-player order and
// one transaction at a time per lane come from the state store's lane
// lock; the bounded queue is a counting semaphore per lane; the reply is
// written only after Store.Run committed.
//
// Everything a request writes is its lane's or its session's: counters and
// latency buckets live in per-lane slices (lane.counts) summed when
// /metrics or the status page reads them, so no cache line is shared by
// all cores and written on every request.

// lane is the host's side of one state lane.
type lane struct {
	// queued counts the requests waiting for or holding the lane: the
	// mailbox bound, as a semaphore rather than a goroutine's channel.
	queued atomic.Int32
	// counts is indexed by loader serial (Entry.Serial). Only the holder
	// of the state lane writes it, and only after Guard.Claim (a fenced
	// call writes nothing); readers take the lane with Store.WithLane.
	counts []verCount
	_      [64]byte
}

// verCount is one version's requests on one lane.
type verCount struct {
	hist         latencyHist // its count is the calls: every call is timed
	errs, panics int64
	codes        map[string]int64 // replies by error code (rare: allocated on the first)
}

// errFenced is execute's answer to a session whose request the watchdog
// gave up on: the connection belongs to a fresh session now, and the
// goroutine stuck in the handler must not touch it.
var errFenced = errors.New("host: request fenced by the watchdog")

// execute runs one client request as a state transaction on the calling
// goroutine. The reply is built only after Run returned, that is after the
// commit. It returns errFenced, and no reply, when the watchdog gave up on
// the request while its handler ran.
func (h *Host[T, C]) execute(s *session, f Frame, start time.Time) (Reply, error) {
	table := h.loader.Current()
	idx, ok := table.Index(f.Cmd)
	if !ok {
		return h.unknownReply(f.Cmd), nil
	}
	if h.stuckCount.Load() > 0 {
		if sc, ok := h.stuckOf(s.player); ok {
			return errReply("stuck", "player %d's earlier %s is stuck in %s %s since %s; requests are refused until it ends or the server restarts",
				s.player, sc.Msg, sc.Module, sc.Version, sc.Since.Format(time.TimeOnly)), nil
		}
	}
	ln := &h.lanes[h.store.LaneOf(s.player)]
	if ln.queued.Add(1) > h.mailbox {
		ln.queued.Add(-1)
		h.metrics.busy.Inc()
		return errReply("busy", "too many requests queued for this player's lane; retry"), nil
	}
	defer ln.queued.Add(-1)

	c := &s.call
	c.Reset()
	c.Player, c.Msg, c.Args, c.Now, c.Config, c.Log = s.player, f.Cmd, f.Args, start, h.config.current().Value, h.log
	ids, err := h.otherPlayers(s, c, table.At(idx))
	if err != nil {
		return h.replyFor(c, err), nil
	}
	kept, err := h.transact(s, c, f, idx, ids, nil, start)
	switch {
	case errors.Is(err, errFenced):
		return Reply{}, errFenced
	case errors.Is(err, errNoHandler):
		return h.unknownReply(f.Cmd), nil
	case err == errKept:
		h.metrics.keptReplies.Inc()
		if kept == nil {
			return errReply("retry", "request #%s was done, but its reply was too long to keep; check and go on", s.tag), nil
		}
		return Reply{line: kept}, nil
	case len(ids) > 1 && errors.Is(err, state.ErrNotFound):
		return errReply("player", "%v", err), nil // a player the request names does not exist
	}
	reply := Reply{OK: true, line: s.keepBuf}
	if err != nil || s.stream == nil {
		reply = h.replyFor(c, err)
	} // else keep formatted this very line inside the transaction: it goes as is
	c.State, c.Config, c.Args = nil, nil, nil
	return reply, nil
}

// transact runs c, whose message is entry idx of the handler table, as one
// transaction over ids (the caller first), or, with fire set, as the
// firing of that timer (timers.go), and delivers the handler's pushes
// after the commit. It returns errFenced when the watchdog gave up on it,
// and errKept with the kept reply when f's tag was done already.
func (h *Host[T, C]) transact(s *session, c *abi.Call, f Frame, idx int, ids []uint64, fire *state.Timer, start time.Time) (kept []byte, err error) {
	var e loader.Entry
	body := func(tx *state.Tx[T]) (err error) {
		// The table is loaded once the lanes are held, so that a request
		// queued behind a version's fence or rollback runs on the version
		// that replaced it; the whole request runs on this one table.
		e = h.loader.Current().At(idx)
		if !e.Valid() {
			return errNoHandler
		}
		li, serial := s.guard.Lane(), e.Serial()
		s.entry, s.msg = e, c.Msg // published to the watchdog by the busy store below
		s.busy.Store(uint64(start.UnixMilli())<<16 | uint64(min(serial+1, 0xffff)))
		h.marks.Set(li, s.player, start.UnixNano(), e.Module(), e.Version(), c.Msg)
		// The one recover of the request, shared by the handler and the
		// transaction around it.
		defer func() {
			r := recover()
			if !s.guard.Claim() {
				err = errFenced // the lanes are someone else's now: write nothing of them
				return
			}
			h.marks.Clear(li)
			s.busy.Store(0)
			if r != nil {
				err = e.Panicked(r)
			}
			if err == errKept {
				return
			}
			if d := time.Since(start); !h.lanes[li].count(serial, err, d) {
				h.lanes[li].countSlow(serial, err, d)
			}
			if err == nil && s.stream != nil {
				h.keep(s, c, f, tx.Commits())
			}
		}()
		if s.tag != "" && s.stream != nil {
			if line, ok := h.sessions.FindTag(s.player, s.tag); ok {
				kept = line
				return errKept // under the lane: no transaction of the player runs meanwhile
			}
		}
		vs := tx.Values()
		c.State = vs[0]
		if others := vs[1:]; len(others) > 0 {
			states := make([]any, len(others))
			for i, o := range others {
				states[i] = o
			}
			c.SetOthers(ids[1:], states)
		}
		c.SetScheduler(txTimers(tx))
		return e.Handler()(c)
	}
	if fire != nil {
		err = h.store.RunTimer(*fire, s.guard, body)
	} else {
		err = h.store.RunTx(ids, s.guard, body)
	}
	switch {
	case errors.Is(err, errFenced), errors.Is(err, state.ErrFenced):
		return nil, errFenced
	case err == errKept:
		return kept, err
	}
	if pushes := c.Pushes(); err == nil && len(pushes) > 0 {
		msgs := make([]pushMsg, len(pushes))
		for i, p := range pushes {
			msgs[i] = pushMsg{player: p.Player, text: p.Text}
		}
		h.deliver(msgs) // after the commit, never before
	}
	if err == nil {
		h.timersScheduled(c)
	}
	return nil, err
}

// errKept: the request's tag names one the player already did; it is
// answered with the kept reply, and its transaction commits nothing.
var errKept = errors.New("host: request already done")

// keep records the reply of s's request before its transaction commits
// (stream.go): a worker that takes over after a crash answers with it
// rather than run the request again, and so does a retried tag. The
// caller holds the player's lane, and the transaction commits.
func (h *Host[T, C]) keep(s *session, c *abi.Call, f Frame, seq uint32) {
	s.keepBuf = appendReply(s.keepBuf[:0], Reply{OK: true, Text: c.ReplyText(), Tag: f.Tag})
	s.stream.Record(s.player, seq+1, f.End, f.Tag, s.keepBuf)
}

// errNoHandler: the message lost its handler between lookup and lane (a
// version that dropped it was activated meanwhile).
var errNoHandler = errors.New("host: no handler")

// otherPlayers asks the handling module (entry e, of the table the request
// looked its message up in) which other players a call touches (abi.Module.Others), before the transaction: the
// caller first, then those, at most abi.MaxPlayers in all. A single-player
// message gives just the caller. The module's function is plugin code: a
// panic in it is an internal error like a handler's.
func (h *Host[T, C]) otherPlayers(s *session, c *abi.Call, e loader.Entry) (ids []uint64, err error) {
	others := e.Others()
	if others == nil {
		return s.ids[:1:1], nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = e.Panicked(r)
		}
	}()
	more, err := others(c)
	if err != nil {
		return nil, err
	}
	if len(more)+1 > abi.MaxPlayers {
		return nil, abi.Fail("players", "%s touches %d players; one transaction touches at most %d", c.Msg, len(more)+1, abi.MaxPlayers)
	}
	return append([]uint64{s.player}, more...), nil
}

// count adds one call of version serial to the lane if it is the common
// one (no error, a version the lane has counted before), and reports
// whether it was; the caller counts any other with countSlow. The caller
// holds the lane (after Guard.Claim). Split so that count stays small
// enough to inline into the request path.
func (ln *lane) count(serial int, err error, d time.Duration) bool {
	if uint(serial) >= uint(len(ln.counts)) || err != nil {
		return false
	}
	ln.counts[serial].hist.observe(d)
	return true
}

// countSlow adds one call of version serial to the lane, as count does,
// for any call: one with an error, or the lane's first of that version.
func (ln *lane) countSlow(serial int, err error, d time.Duration) {
	if serial < 0 {
		return
	}
	if serial >= len(ln.counts) {
		ln.counts = append(ln.counts, make([]verCount, serial+1-len(ln.counts))...)
	}
	vc := &ln.counts[serial]
	vc.hist.observe(d)
	if err == nil {
		return
	}
	vc.errs++
	code := replyCode(err)
	if code == "internal" {
		vc.panics++
	}
	if vc.codes == nil {
		vc.codes = map[string]int64{}
	}
	vc.codes[code]++
}

// replyCode is the error code a handler's error reaches the client as.
func replyCode(err error) string {
	var ae *abi.Error
	switch {
	case errors.As(err, &ae):
		return ae.Code
	case errors.Is(err, loader.ErrPanic), errors.Is(err, state.ErrPanic):
		return "internal"
	case errors.Is(err, state.ErrBadPlayers):
		return "usage"
	case errors.Is(err, state.ErrNotFound):
		return "nologin"
	}
	return "failed"
}

func (h *Host[T, C]) replyFor(c *abi.Call, err error) Reply {
	if err == nil {
		return Reply{OK: true, Text: c.ReplyText()}
	}
	var ae *abi.Error
	switch code := replyCode(err); {
	case errors.As(err, &ae):
		return errReply(ae.Code, "%s", ae.Msg)
	case code == "internal":
		h.log.Error("handler panicked; player unchanged", "player", c.Player, "msg", c.Msg, "err", err)
		return errReply("internal", "the handler failed; nothing was changed")
	case code == "nologin":
		return errReply("nologin", "player %d has no state; log in again", c.Player)
	case code == "usage":
		return errReply("usage", "%v", err)
	default:
		h.log.Warn("request failed", "player", c.Player, "msg", c.Msg, "err", err)
		return errReply("failed", "%v", err)
	}
}

// login creates the player on first login and runs the game's login hook,
// on the calling goroutine like every request.
func (h *Host[T, C]) login(player uint64, now time.Time) Reply {
	created, err := h.store.Ensure(player)
	if err != nil {
		h.log.Error("login failed", "player", player, "err", err)
		return errReply("login", "%v", err)
	}
	if h.game.Login != nil {
		if err := h.store.Update(player, func(p *T) error { h.game.Login(p, now); return nil }); err != nil {
			return errReply("login", "%v", err)
		}
	}
	if created {
		h.log.Debug("new player", slog.Uint64("player", player))
		return okReply("welcome %d (new player)", player)
	}
	return okReply("welcome %d", player)
}

// help lists the commands: the host's own and those the active versions
// handle, each with its module's one-line usage. One line per command,
// joined by " | " so that it stays one reply line.
func (h *Host[T, C]) help() string {
	t := h.loader.Current()
	lines := []string{h.loginUsage() + ": log in", "ping: check the connection", "help: this list", "quit: close the connection"}
	for _, msg := range t.Messages() {
		e, _ := t.Lookup(msg)
		u := e.Usage()
		if u == "" {
			u = msg
		}
		lines = append(lines, fmt.Sprintf("%s [%s %s]", u, e.Module(), e.Version()))
	}
	return strings.Join(lines, " | ")
}

// unknownReply counts and answers a message no active version handles.
func (h *Host[T, C]) unknownReply(cmd string) Reply {
	h.unknown.Add(1)
	return errReply("unknown", "no command %q (try: %s)", cmd, commandList(h.loader.Current()))
}

// commandList names the messages the active versions handle, for `err unknown`.
func commandList(t *loader.Table) string {
	msgs := t.Messages()
	if len(msgs) == 0 {
		return "no handlers loaded"
	}
	return "help, ping, quit, " + strings.Join(msgs, ", ")
}
