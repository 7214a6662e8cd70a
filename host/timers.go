package host

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/state"
	"github.com/prometheus/client_golang/prometheus"
)

// Timers (abi.Call.After): a handler schedules a message for a player; the
// timer lives in the state segment beside the players (state/timers.go),
// so it survives swaps and restarts, kill -9 included, and it fires once:
// the firing handler's change and the timer's removal commit in one
// transaction (Store.RunTimer).
//
// One poller goroutine fires them in due order, one at a time. It sleeps
// until the earliest is due, woken early when a commit schedules an
// earlier one, and runs each due timer through transact, the request path
// of dispatch.go, on a session of its own that has no connection: the
// version that handles the message when it fires, the per-lane counts,
// the recover, the crash marks, the watchdog's fence and the pushes are a
// client request's. A timer whose message no active version handles, or
// whose handler fails (an error, a panic, a hang), is removed and logged
// with the reason; it is never retried. When the watchdog fences a timer's
// handler, a fresh poller takes over, as a fresh session takes a client's
// connection over. Timers of a player whose earlier handler is stuck wait
// until it ends (or a restart), as that player's requests are refused.

// TimerHoldEnv is a test seam: set to a file's path, it makes the poller
// fire nothing while that file exists. It logs "timers held" once timers
// are due, so a test can kill the host between a timer's due time and its
// firing, and decide when the restarted host fires it.
const TimerHoldEnv = "HOTHOST_TIMER_TEST_HOLD"

const (
	timerBatch    = 64                    // timers taken from the state per round
	timerRecheck  = time.Second           // how often timers skipped for a stuck player are looked at again
	timerMaxNap   = time.Minute           // the longest sleep: a wall clock step is noticed within it
	timerHoldPoll = 10 * time.Millisecond // how often the test seam's file is looked at
)

// abi states the timer limits to plugins; the state keeps them. They must
// agree (a negative constant converted to uint does not compile).
const _ = uint(abi.MaxTimerMsg-state.MaxTimerMsg) + uint(state.MaxTimerMsg-abi.MaxTimerMsg) +
	uint(abi.MaxTimerArgs-state.MaxTimerArgs) + uint(state.MaxTimerArgs-abi.MaxTimerArgs)

// timerPoller is the host's side of the timers.
type timerPoller struct {
	wake  chan struct{} // a commit scheduled a timer due before until
	stop  chan struct{} // closed when the drain begins
	until atomic.Int64  // Unix nanoseconds the poller sleeps until
	hold  string        // TimerHoldEnv's file, or ""

	mu     sync.Mutex
	cur    *session    // the session timers fire on; nil before the start and after the drain
	firing state.Timer // the timer cur fires, for a hand-over

	fired  prometheus.Counter
	failed *prometheus.CounterVec // reason
	lag    prometheus.Histogram
}

// txScheduler is a transaction as its call's abi.Scheduler: a conversion
// of *state.Tx[T], so that handing it to the call allocates nothing.
type txScheduler[T any] state.Tx[T]

func txTimers[T any](tx *state.Tx[T]) abi.Scheduler { return (*txScheduler[T])(tx) }

func (x *txScheduler[T]) At(player uint64, due time.Time, msg, args string) (uint64, error) {
	id, err := (*state.Tx[T])(x).At(player, due, msg, args)
	return uint64(id), abiTimerErr(err)
}

func (x *txScheduler[T]) Cancel(player, id uint64) error {
	return abiTimerErr((*state.Tx[T])(x).Cancel(player, state.TimerID(id)))
}

// abiTimerErr is a state timer error as the abi's sentinel that a plugin
// can test, with the state's words for what went wrong.
func abiTimerErr(err error) error {
	for _, m := range [...]struct{ st, abi error }{{state.ErrBadTimer, abi.ErrBadTimer}, {state.ErrBadPlayers, abi.ErrBadTimer},
		{state.ErrTimersFull, abi.ErrTimersFull}, {state.ErrTimerGone, abi.ErrTimerGone}} {
		if errors.Is(err, m.st) {
			return fmt.Errorf("%w: %s", m.abi, strings.TrimPrefix(err.Error(), m.st.Error()+": "))
		}
	}
	return err
}

// startTimers registers the timer metrics and starts the poller; it counts
// in connsDone like a session, so that the drain waits for it.
func (h *Host[T, C]) startTimers() {
	p := &h.timers
	p.wake, p.stop, p.hold = make(chan struct{}, 1), make(chan struct{}), os.Getenv(TimerHoldEnv)
	p.until.Store(math.MaxInt64)
	p.fired = prometheus.NewCounter(prometheus.CounterOpts{Name: "hothost_timers_fired_total",
		Help: "Timers whose handler committed."})
	p.failed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hothost_timers_failed_total",
		Help: "Timers removed without effect: unhandled (no active version handles the message), refused, failed, panic, hung, player (gone)."},
		[]string{"reason"})
	p.lag = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hothost_timer_lag_seconds",
		Help: "From a timer's due time to the start of its firing.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)})
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hothost_timers_pending", Help: "Timers pending in the state."},
		func() float64 { n, _ := h.store.PendingTimers(); return float64(n) })
	h.metrics.reg.MustRegister(p.fired, p.failed, p.lag, pending)
	h.connsDone.Add(1)
	go h.runTimers(newSession(nil, nil, func() {}), nil)
}

// stopTimers ends the poller once the timer it fires (if any) is done:
// timers due from then on fire after the restart.
func (h *Host[T, C]) stopTimers() { close(h.timers.stop) }

// timersScheduled wakes the poller if a call that just committed
// scheduled a timer due before the poller's wake-up.
func (h *Host[T, C]) timersScheduled(c *abi.Call) {
	if due, ok := c.Scheduled(); ok && due.UnixNano() < h.timers.until.Load() {
		select {
		case h.timers.wake <- struct{}{}:
		default:
		}
	}
}

// running appends the poller's session to sessions, for the watchdog.
func (p *timerPoller) running(sessions []*session) []*session {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil {
		sessions = append(sessions, p.cur)
	}
	return sessions
}

// runTimers is the poller, firing timers on s until the drain. hung, when
// set, is a timer whose handler the watchdog fenced: removed first.
func (h *Host[T, C]) runTimers(s *session, hung *state.Timer) {
	p := &h.timers
	p.mu.Lock()
	p.cur = s
	p.mu.Unlock()
	if hung != nil {
		h.timerFailed(*hung, "hung", fmt.Errorf("its handler ran past the handler timeout %v and was fenced", h.opts.HandlerTimeout))
	}
	skipped := 0 // timers of stuck players in the last round
	for h.waitTimers(skipped) {
		due := h.store.DueTimers(time.Now(), timerBatch+skipped)
		skipped = 0
		for _, t := range due {
			if h.stopping() {
				break
			}
			if h.stuckCount.Load() > 0 {
				if _, stuck := h.stuckOf(t.Player); stuck {
					skipped++
					continue
				}
			}
			if !h.fireTimer(s, t) {
				h.stuckEnded(s) // fenced: a fresh poller took over
				return
			}
		}
	}
	p.mu.Lock()
	p.cur = nil
	p.mu.Unlock()
	h.connsDone.Done()
}

func (h *Host[T, C]) stopping() bool {
	select {
	case <-h.timers.stop:
		return true
	default:
		return h.draining.Load()
	}
}

// waitTimers sleeps until a timer is due, and reports false once the
// poller is to end. skipped timers of stuck players are due already; the
// poller then looks again every timerRecheck.
func (h *Host[T, C]) waitTimers(skipped int) bool {
	p := &h.timers
	held := false
	for {
		if h.stopping() {
			<-p.stop // an admin drain refuses requests until the shutdown: timers wait likewise
			return false
		}
		// A commit from here on of a timer due before until wakes the
		// poller; one before is seen by nextDue.
		p.until.Store(math.MaxInt64)
		now := time.Now()
		next, ok := h.nextDue(skipped)
		if ok && !next.After(now) {
			if !p.held() {
				return true
			}
			if !held {
				h.log.Warn("timers held by the test seam", "env", TimerHoldEnv, "file", p.hold)
				held = true
			}
			next = now.Add(timerHoldPoll)
		}
		nap := timerMaxNap
		if ok {
			nap = min(nap, next.Sub(now))
		}
		if skipped > 0 {
			nap = min(nap, timerRecheck)
		}
		p.until.Store(now.Add(nap).UnixNano())
		t := time.NewTimer(nap)
		select {
		case <-p.wake:
		case <-t.C:
			if skipped > 0 {
				t.Stop()
				return true
			}
		case <-p.stop:
		}
		t.Stop()
	}
}

// nextDue is when the earliest pending timer is due, passing over skipped
// ones (the earliest, of stuck players).
func (h *Host[T, C]) nextDue(skipped int) (time.Time, bool) {
	if skipped == 0 {
		return h.store.NextDue()
	}
	ts := h.store.DueTimers(time.Unix(0, math.MaxInt64), skipped+1)
	if len(ts) <= skipped {
		return time.Time{}, false
	}
	return ts[skipped].Due, true
}

// held reports whether the test seam holds the timers.
func (p *timerPoller) held() bool {
	if p.hold == "" {
		return false
	}
	_, err := os.Stat(p.hold)
	return err == nil
}

// fireTimer runs timer t on s, and reports false if the watchdog fenced
// its handler: then a fresh poller has taken over, and this goroutine
// leaves once the handler returns.
func (h *Host[T, C]) fireTimer(s *session, t state.Timer) bool {
	p := &h.timers
	p.mu.Lock()
	p.firing = t
	p.mu.Unlock()
	start := time.Now()
	s.player, s.ids[0] = t.Player, t.Player
	c := &s.call
	c.Reset()
	c.Player, c.Msg, c.Args, c.Now, c.Config, c.Log = t.Player, t.Msg, strings.Fields(t.Args), start, h.config.current().Value, h.log
	c.SetTimer(abi.Timer{ID: uint64(t.ID), Due: t.Due})
	err := errNoHandler
	if idx, ok := h.loader.Current().Index(t.Msg); ok {
		_, err = h.transact(s, c, Frame{Cmd: t.Msg}, idx, s.ids[:1], &t, start)
	}
	c.State, c.Config, c.Args = nil, nil, nil
	var ae *abi.Error
	switch {
	case errors.Is(err, errFenced):
		return false
	case err == nil:
		p.fired.Inc()
		p.lag.Observe(start.Sub(t.Due).Seconds())
	case errors.Is(err, state.ErrTimerGone), errors.Is(err, state.ErrClosed):
		// its player cancelled it meanwhile, or the host is closing
	case errors.Is(err, errNoHandler):
		h.timerFailed(t, "unhandled", fmt.Errorf("no active version handles %q", t.Msg))
	case errors.Is(err, state.ErrNotFound):
		h.timerFailed(t, "player", err)
	case errors.As(err, &ae):
		h.timerFailed(t, "refused", err)
	case replyCode(err) == "internal":
		h.timerFailed(t, "panic", err)
	default:
		h.timerFailed(t, "failed", err)
	}
	return true
}

// errTimerDropped is the failure a timer is removed with when its handler
// did not run, or did not end.
var errTimerDropped = errors.New("host: timer removed")

// timerFailed removes timer t (if its firing did not already) and logs why
// it had no effect.
func (h *Host[T, C]) timerFailed(t state.Timer, reason string, why error) {
	err := h.store.RunTimer(t, nil, func(*state.Tx[T]) error { return errTimerDropped })
	if !errors.Is(err, errTimerDropped) && !errors.Is(err, state.ErrTimerGone) && !errors.Is(err, state.ErrNotFound) {
		h.log.Error("timer could not be removed; it stays pending", "player", t.Player, "msg", t.Msg, "timer", uint64(t.ID), "err", err)
		return
	}
	h.timers.failed.WithLabelValues(reason).Inc()
	level := h.log.Error
	if reason == "refused" {
		level = h.log.Warn // the handler's own decision, with its reason
	}
	level("timer removed without effect", "reason", reason, "player", t.Player, "msg", t.Msg, "args", t.Args,
		"due", t.Due, "timer", uint64(t.ID), "err", why)
}

// timerHung takes the poller over from s, whose timer's handler the
// watchdog just fenced; it runs while the watchdog holds the lane, so it
// starts the work and does none of it. At the end of a drain (blame
// false) the timer stays pending, to fire after the restart.
func (h *Host[T, C]) timerHung(s *session, blame bool) {
	p := &h.timers
	p.mu.Lock()
	t := p.firing
	p.cur = nil
	p.mu.Unlock()
	close(s.handedOver)
	if !blame {
		h.connsDone.Done() // for the fenced poller, which leaves without
		return
	}
	go h.runTimers(newSession(nil, nil, func() {}), &t)
}

// TimerInfo is a pending timer as the admin API lists it.
type TimerInfo struct {
	ID   uint64    `json:"id,string"` // as abi.Call.After returned it (a string: it may exceed 2^53)
	Due  time.Time `json:"due"`
	Msg  string    `json:"msg"`
	Args string    `json:"args"`
}

// playerTimers answers GET /v1/player/timers?id=N: the player's pending
// timers, the earliest first.
func (h *Host[T, C]) playerTimers(r *http.Request) (any, error) {
	id, err := playerParam(r, true)
	if err != nil {
		return nil, err
	}
	if _, err := h.store.Get(id); err != nil {
		return nil, err
	}
	ts := h.store.Timers(id)
	out := make([]TimerInfo, len(ts))
	for i, t := range ts {
		out[i] = TimerInfo{ID: uint64(t.ID), Due: t.Due, Msg: t.Msg, Args: t.Args}
	}
	return map[string]any{"id": id, "timers": out}, nil
}
