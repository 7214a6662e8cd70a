package host

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader"
	"github.com/hothost/hothost/state"
)

// request is one frame on its way through a lane. A connection owns one
// request and reuses it: it waits for each reply before reading on.
type request struct {
	player uint64
	frame  Frame
	login  bool
	done   chan Reply
}

// lane runs the requests of the players hashed onto it, one at a time, in
// arrival order. Its Call is reused: only the lane goroutine touches it.
type lane struct {
	ch   chan *request
	call abi.Call
}

// laneOf hashes a player onto a lane. The multiply spreads sequential ids.
func (h *Host[T, C]) laneOf(player uint64) *lane {
	return h.lanes[(player*0x9E3779B97F4A7C15)>>32%uint64(len(h.lanes))]
}

// submit queues r on its player's lane and waits for the reply. A full
// mailbox answers busy at once rather than queueing without bound.
func (h *Host[T, C]) submit(r *request) Reply {
	if h.draining.Load() {
		return errReply("draining", "server is shutting down; reconnect shortly")
	}
	select {
	case h.laneOf(r.player).ch <- r:
	default:
		h.metrics.busy.Inc()
		return errReply("busy", "too many requests queued for this player's lane; retry")
	}
	return <-r.done
}

func (h *Host[T, C]) runLane(ln *lane) {
	defer h.lanesDone.Done()
	for r := range ln.ch {
		r.done <- h.execute(ln, r)
	}
}

// execute runs one request as a state transaction. The reply is built only
// after Update returned, that is after the commit.
func (h *Host[T, C]) execute(ln *lane, r *request) Reply {
	start := time.Now()
	if r.login {
		return h.login(r.player, start)
	}
	table := h.loader.Current() // one atomic load: the whole request runs on this table
	e, ok := table.Lookup(r.frame.Cmd)
	if !ok {
		h.metrics.requests.WithLabelValues("", "", "unknown").Inc()
		return errReply("unknown", "no command %q (try: %s)", r.frame.Cmd, commandList(table))
	}
	cfg := h.config.current()
	c := &ln.call
	c.Reset()
	c.Player, c.Msg, c.Args, c.Now, c.Config, c.Log = r.player, r.frame.Cmd, r.frame.Args, start, cfg.Value, h.log
	err := h.store.Update(r.player, func(p *T) error {
		c.State = p
		return e.Call(c)
	})
	reply := h.replyFor(c, err)
	c.State, c.Config = nil, nil
	code := "ok"
	if !reply.OK {
		code = reply.Code
	}
	h.metrics.observe(e.Module(), e.Version(), code, time.Since(start))
	return reply
}

func (h *Host[T, C]) replyFor(c *abi.Call, err error) Reply {
	var ae *abi.Error
	switch {
	case err == nil:
		return okReply("%s", c.ReplyText())
	case errors.As(err, &ae):
		return errReply(ae.Code, "%s", ae.Msg)
	case errors.Is(err, loader.ErrPanic), errors.Is(err, state.ErrPanic):
		h.log.Error("handler panicked; player unchanged", "player", c.Player, "msg", c.Msg, "err", err)
		return errReply("internal", "the handler failed; nothing was changed")
	case errors.Is(err, state.ErrNotFound):
		return errReply("nologin", "player %d has no state; log in again", c.Player)
	default:
		h.log.Warn("request failed", "player", c.Player, "msg", c.Msg, "err", err)
		return errReply("failed", "%v", err)
	}
}

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

func commandList(t *loader.Table) string {
	mods := t.Modules()
	if len(mods) == 0 {
		return "no handlers loaded"
	}
	return fmt.Sprintf("modules %v", mods)
}
