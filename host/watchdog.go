package host

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// The watchdog gives every request a deadline (Options.HandlerTimeout).
// Go cannot stop a goroutine, so a handler past its deadline is not
// killed: its transaction is fenced (it can never commit, and its lane is
// handed to a fresh hold at once), its version is marked bad and rolled
// back like a failed probation, its client gets `err timeout` from a fresh
// session that takes the connection over, and the stuck goroutine is left
// to run, listed in the status page and the hothost_stuck_handlers gauge,
// until it returns or the process restarts. Its player's requests are
// refused with `err stuck` meanwhile: they could otherwise overtake it.

// StuckCall is a fenced request whose handler is still running.
type StuckCall struct {
	Player  uint64    `json:"player"`
	Module  string    `json:"module"`
	Version string    `json:"version"`
	Msg     string    `json:"msg"`
	Since   time.Time `json:"since"` // when the request started
	Note    string    `json:"note"`
}

type stuckSet struct {
	mu    sync.Mutex
	calls map[uint64]StuckCall // by player: a player has at most one
}

func (h *Host[T, C]) stuckOf(player uint64) (StuckCall, bool) {
	h.stuck.mu.Lock()
	defer h.stuck.mu.Unlock()
	sc, ok := h.stuck.calls[player]
	return sc, ok
}

// Stuck lists the fenced handlers still running.
func (h *Host[T, C]) Stuck() []StuckCall {
	h.stuck.mu.Lock()
	defer h.stuck.mu.Unlock()
	out := make([]StuckCall, 0, len(h.stuck.calls))
	for _, sc := range h.stuck.calls {
		out = append(out, sc)
	}
	return out
}

// watch checks every running request's age until ctx is done.
func (h *Host[T, C]) watch(ctx context.Context) {
	t := time.NewTicker(max(h.opts.HandlerTimeout/8, 5*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.fenceOverdue(now, h.opts.HandlerTimeout)
		}
	}
}

// fenceOverdue fences every request that has run longer than limit; with
// limit 0, every request still running (the end of a drain: then no
// version is blamed, since nothing says its request would not have ended).
func (h *Host[T, C]) fenceOverdue(now time.Time, limit time.Duration) int {
	h.connMu.Lock()
	sessions := make([]*session, 0, len(h.conns))
	for s := range h.conns {
		sessions = append(sessions, s)
	}
	h.connMu.Unlock()
	sessions = h.timers.running(sessions) // the timer poller's (timers.go)
	n := 0
	for _, s := range sessions {
		b := s.busy.Load()
		if b == 0 {
			continue
		}
		started := time.UnixMilli(int64(b >> 16))
		if now.Sub(started) < limit {
			continue
		}
		tok, ok := s.guard.Running()
		// busy unchanged after reading the token: the token is the same
		// request's, so Fence acts on the request that is overdue or on none.
		if !ok || s.busy.Load() != b {
			continue
		}
		// The version is taken out of service while the watchdog still
		// holds the lane: the requests queued behind the stuck one run on
		// the version restored, not on the one that hung.
		if h.store.Fence(s.guard, tok, func() { h.hung(s, started, now.Sub(started), limit > 0) }) {
			n++
		}
	}
	return n
}

// hung deals with a request the watchdog just fenced.
func (h *Host[T, C]) hung(s *session, started time.Time, ran time.Duration, blame bool) {
	mod, ver, player := s.entry.Module(), s.entry.Version(), s.player
	reason := fmt.Sprintf("%s %s %s ran %v for player %d", mod, ver, s.msg, ran.Round(time.Millisecond), player)
	sc := StuckCall{Player: player, Module: mod, Version: ver, Msg: s.msg, Since: started,
		Note: "fenced: it can never commit; its goroutine runs until it returns, and a restart reclaims its CPU"}
	h.stuck.mu.Lock()
	h.stuck.calls[player] = sc
	h.stuckCount.Add(1)
	h.stuck.mu.Unlock()
	h.metrics.stuck.Inc()
	if !blame {
		h.log.Warn("request still running at the end of the drain: fenced", "module", mod, "version", ver, "msg", s.msg,
			"player", player, "ran", ran)
	} else {
		h.metrics.timeouts.WithLabelValues(mod, ver).Inc()
		h.log.Error("handler past its deadline: fenced, version marked bad", "module", mod, "version", ver, "msg", s.msg,
			"player", player, "ran", ran, "timeout", h.opts.HandlerTimeout)
		if err := h.loader.MarkBad(mod, ver, reason); err != nil {
			h.log.Error("mark hung version bad", "module", mod, "version", ver, "err", err)
		}
	}
	if s.conn == nil { // the timer poller's session: a fresh poller takes over (timers.go)
		h.timerHung(s, blame)
		return
	}
	// A fresh session takes the connection over; the stuck goroutine will
	// find its request fenced when (if) the handler returns, and leaves.
	ns := newSession(s.conn, s.codec, s.release)
	ns.player, ns.ids[0], ns.deadline, ns.stream = player, player, s.deadline, s.stream
	reply := errReply("timeout", "%s ran longer than %v; nothing was changed. Requests of player %d are refused until it ends",
		s.msg, h.opts.HandlerTimeout, player)
	reply.Tag = s.tag
	close(s.handedOver)
	h.players.remove(player, s)
	h.players.add(player, ns)
	if !h.track(ns, s) { // shutting down: nothing to hand over to
		ns.writeReply(reply)
		h.endSession(ns)
		return
	}
	go h.runSession(ns, &reply)
}

// stuckEnded is called by the goroutine of a fenced request once its
// handler returned at last.
func (h *Host[T, C]) stuckEnded(s *session) {
	<-s.handedOver // hung registered it
	h.stuck.mu.Lock()
	if _, ok := h.stuck.calls[s.player]; ok {
		delete(h.stuck.calls, s.player)
		h.stuckCount.Add(-1)
		h.metrics.stuck.Dec()
	}
	h.stuck.mu.Unlock()
	h.log.Info("stuck handler returned; its player is served again", "player", s.player, "module", s.entry.Module(),
		"version", s.entry.Version(), "msg", s.msg)
}
