// Package loadgen drives a hothost with real TCP clients and keeps a ledger
// of every acknowledged update, so a run can prove that nothing was lost:
// cmd/hotload is its command line, examples/chaos and examples/e2ebench use
// it for the swap and kill storms and the end-to-end figures.
//
// The ledger follows the example game: every reply that carries a player's
// coins (work, balance, buy, whoami, a funds refusal) is checked against the
// coins the ledger expects, and the ledger then moves on from the reply. A
// transport error leaves the command in flight "pending": the host may have
// committed it before the reply was lost (a kill -9 between commit and
// write). That is the one case a check allows, and only for that command's
// possible effect; every other difference is a violation.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hothost/hothost/client"
	"github.com/hothost/hothost/ticket"
)

// Weighted is one command of the mix and its relative weight.
type Weighted struct {
	Cmd    string
	Weight int
}

// DefaultMix is mostly updates, some reads, a purchase and a profile look.
var DefaultMix = []Weighted{{"work", 6}, {"balance", 2}, {"buy potion", 1}, {"whoami", 1}}

// ParseMix reads "work=6,balance=2,buy potion=1".
func ParseMix(s string) ([]Weighted, error) {
	var mix []Weighted
	for part := range strings.SplitSeq(s, ",") {
		cmd, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(w)
		if !ok || err != nil || n < 0 || strings.TrimSpace(cmd) == "" {
			return nil, fmt.Errorf("loadgen: mix entry %q: want command=weight", part)
		}
		mix = append(mix, Weighted{strings.TrimSpace(cmd), n})
	}
	return mix, nil
}

// Config describes one run.
type Config struct {
	// Addr returns the host's client address; it is called again at each
	// reconnect, so a driver that restarts the host on a new port can
	// point the workers at it.
	Addr func() string
	// Conns is the number of concurrent connections (workers).
	Conns int
	// Players is the number of distinct players (>= Conns); worker w plays
	// FirstPlayer+w, then +Conns, ..., Session requests per login.
	Players     int
	FirstPlayer uint64
	// Session is the requests per login when Players > Conns (default 200).
	Session int
	// Mix is the command mix (default DefaultMix).
	Mix []Weighted
	// Duration ends the run after this long; Requests after that many
	// requests in all. At least one must be set.
	Duration time.Duration
	Requests int64
	// Reconnect is how long a worker keeps redialing after a transport
	// error (a killed host). Zero: a transport error ends the worker.
	Reconnect time.Duration
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// WorkDeltas are the coins one `work` may add (default 10 for a v1
	// reply, 20 for v2: the example game's coin module).
	WorkDeltas map[string]int64
	// Progress, when set, gets a progress line every ProgressEvery
	// (default 1s).
	Progress      io.Writer
	ProgressEvery time.Duration
	// Seed seeds the command choice (0: random).
	Seed uint64
	// AllowCodes are error codes that are not failures (default "funds").
	AllowCodes []string
	// Tickets mints each login's ticket; nil logs in without one, which
	// only a host started with -insecure-login accepts.
	Tickets Tickets
}

// Tickets mints the login ticket of a player. It is called at every login,
// so a long run never holds an expired ticket.
type Tickets func(player uint64) (string, error)

// KeyTickets mints with key (the host's ticket key file, see
// ticket.LoadKey), each ticket valid for ttl from its login.
func KeyTickets(key []byte, ttl time.Duration) Tickets {
	return func(player uint64) (string, error) { return ticket.Mint(key, player, ttl, time.Now()) }
}

// login logs c in as player id, with a ticket if t is set. A refusal is an
// error too, with the reply.
func (t Tickets) login(c *client.Conn, id uint64) (client.Reply, error) {
	if t == nil {
		return c.Login(id)
	}
	tk, err := t(id)
	if err != nil {
		return client.Reply{}, fmt.Errorf("%w for player %d: %w", errMint, id, err)
	}
	return c.LoginTicket(id, tk)
}

// Account is the ledger of one player.
type Account struct {
	ID      uint64
	Known   bool   // Coins is the server's acknowledged value
	Coins   int64  // coins after the last acknowledged reply
	Updates int64  // acknowledged updates that changed coins
	Pending string // command whose reply was lost, "" if none
	// LostReplies counts the documented case: a command committed
	// whose reply a kill swallowed (seen at the next check).
	LostReplies int64
}

// Load is a running load.
type Load struct {
	cfg    Config
	hist   Hist
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup

	issued, ok, fails, transport, reconnects atomic.Int64

	mu         sync.Mutex
	codes      map[string]int64
	accounts   map[uint64]*Account
	violations []string
	firstErr   map[string]string // one example reply per error code
	allowed    map[string]bool
	end        time.Time
}

// Result is what a run measured and found.
type Result struct {
	Elapsed    time.Duration
	Requests   int64 // replies received (ok or err)
	OK         int64
	Failed     int64            // err replies with a code not allowed, and workers that gave up dialing
	Transport  int64            // requests whose reply never came (connection lost)
	Reconnects int64            // successful redials after a transport error
	Codes      map[string]int64 // err replies by code, and "transport"
	Examples   map[string]string
	P50, P99   time.Duration
	P999, Max  time.Duration
	Throughput float64 // replies per second
	Accounts   map[uint64]*Account
	Violations []string // ledger differences (at most 100 kept)
	Hist       *Counts

	workDeltas map[string]int64
	tickets    Tickets
}

// Start begins a load in the background; Stop ends it.
func Start(ctx context.Context, cfg Config) (*Load, error) {
	if cfg.Addr == nil || cfg.Conns < 1 {
		return nil, errors.New("loadgen: need an address and at least one connection")
	}
	if cfg.Duration <= 0 && cfg.Requests <= 0 {
		return nil, errors.New("loadgen: need a duration or a request count")
	}
	cfg.Players = max(cfg.Players, cfg.Conns)
	if cfg.FirstPlayer == 0 {
		cfg.FirstPlayer = 1
	}
	if cfg.Session <= 0 {
		cfg.Session = 200
	}
	if len(cfg.Mix) == 0 {
		cfg.Mix = DefaultMix
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.WorkDeltas == nil {
		cfg.WorkDeltas = map[string]int64{"v1": 10, "v2": 20}
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = time.Second
	}
	if cfg.AllowCodes == nil {
		cfg.AllowCodes = []string{"funds"}
	}
	total := 0
	for _, w := range cfg.Mix {
		total += w.Weight
	}
	if total <= 0 {
		return nil, errors.New("loadgen: the mix has no weight")
	}
	if cfg.Tickets != nil {
		// A key or ttl that cannot mint fails here, not as a failed
		// login per worker.
		if _, err := cfg.Tickets(cfg.FirstPlayer); err != nil {
			return nil, fmt.Errorf("loadgen: tickets: %w", err)
		}
	}
	l := &Load{cfg: cfg, start: time.Now(), codes: map[string]int64{}, accounts: map[uint64]*Account{},
		firstErr: map[string]string{}, allowed: map[string]bool{}}
	for _, c := range cfg.AllowCodes {
		l.allowed[c] = true
	}
	for i := range cfg.Players {
		id := cfg.FirstPlayer + uint64(i)
		l.accounts[id] = &Account{ID: id}
	}
	runCtx, cancel := context.WithCancel(ctx)
	if cfg.Duration > 0 {
		runCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
	}
	l.cancel = cancel
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	for w := range cfg.Conns {
		l.wg.Add(1)
		go l.worker(runCtx, w, rand.New(rand.NewPCG(seed, uint64(w))))
	}
	if cfg.Progress != nil {
		l.wg.Add(1)
		go l.progress(runCtx)
	}
	return l, nil
}

// Run runs a load to its end (duration or request count) and returns the result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	l, err := Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return l.Wait(), nil
}

// Wait waits for the load to end by itself and returns the result.
func (l *Load) Wait() *Result {
	l.wg.Wait()
	l.cancel()
	return l.result()
}

// Stop ends the load: each worker finishes the request it has in flight.
func (l *Load) Stop() *Result {
	l.cancel()
	return l.Wait()
}

// Acked is the number of replies received so far.
func (l *Load) Acked() int64 { return l.ok.Load() + l.fails.Load() }

// Failed is the number of failures so far.
func (l *Load) Failed() int64 { return l.fails.Load() }

// Hist is the live latency histogram.
func (l *Load) Hist() *Hist { return &l.hist }

// Violations so far.
func (l *Load) Violations() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.violations...)
}

func (l *Load) result() *Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.end.IsZero() {
		l.end = time.Now()
	}
	el := l.end.Sub(l.start)
	c := l.hist.Snapshot()
	r := &Result{
		Elapsed: el, Requests: l.ok.Load() + l.fails.Load(), OK: l.ok.Load(), Failed: l.fails.Load(),
		Transport: l.transport.Load(), Reconnects: l.reconnects.Load(), Codes: map[string]int64{}, Examples: map[string]string{},
		P50: c.Quantile(0.50), P99: c.Quantile(0.99), P999: c.Quantile(0.999), Max: l.hist.Max(),
		Accounts: map[uint64]*Account{}, Violations: append([]string(nil), l.violations...), Hist: c,
		workDeltas: l.cfg.WorkDeltas, tickets: l.cfg.Tickets,
	}
	r.Throughput = float64(r.Requests) / el.Seconds()
	for k, v := range l.codes {
		r.Codes[k] = v
	}
	for k, v := range l.firstErr {
		r.Examples[k] = v
	}
	for id, a := range l.accounts {
		cp := *a
		r.Accounts[id] = &cp
	}
	return r
}

func (l *Load) pick(rng *rand.Rand) string {
	total := 0
	for _, w := range l.cfg.Mix {
		total += w.Weight
	}
	n := rng.IntN(total)
	for _, w := range l.cfg.Mix {
		if n < w.Weight {
			return w.Cmd
		}
		n -= w.Weight
	}
	return l.cfg.Mix[0].Cmd
}

// budget takes one request from the request budget.
func (l *Load) budget() bool {
	return l.cfg.Requests <= 0 || l.issued.Add(1) <= l.cfg.Requests
}

func (l *Load) worker(ctx context.Context, w int, rng *rand.Rand) {
	defer l.wg.Done()
	var mine []uint64
	for id := l.cfg.FirstPlayer + uint64(w); id < l.cfg.FirstPlayer+uint64(l.cfg.Players); id += uint64(l.cfg.Conns) {
		mine = append(mine, id)
	}
	session := l.cfg.Session
	if len(mine) == 1 {
		session = 0 // one player: never log out
	}
	for i := 0; ctx.Err() == nil; i++ {
		a := l.accounts[mine[i%len(mine)]]
		if !l.session(ctx, a, session, rng) {
			return
		}
	}
}

// session logs in as a's player and runs requests until n are done (0:
// no limit), ctx ends or the budget is spent. It reports whether the
// worker should go on.
func (l *Load) session(ctx context.Context, a *Account, n int, rng *rand.Rand) bool {
	c, err := l.dial(ctx, a)
	if err != nil {
		return false
	}
	defer c.Close()
	for i := 0; n == 0 || i < n; i++ {
		if ctx.Err() != nil || !l.budget() {
			return false
		}
		cmd := l.pick(rng)
		t0 := time.Now()
		r, err := c.Do(cmd)
		if err != nil {
			l.lost(a, cmd, err)
			return l.cfg.Reconnect > 0 && ctx.Err() == nil
		}
		l.hist.Record(time.Since(t0))
		l.reply(a, cmd, r)
	}
	// A clean logout between sessions.
	c.Do("quit")
	return true
}

// dial connects, logs in and, if the ledger does not know the player's
// coins for sure, reads them (checking a pending command's effect).
// Transport errors are retried until cfg.Reconnect has passed.
func (l *Load) dial(ctx context.Context, a *Account) (*client.Conn, error) {
	deadline := time.Now().Add(l.cfg.Reconnect)
	retried := false
	for {
		c, err := l.tryDial(a)
		if err == nil {
			if retried {
				l.reconnects.Add(1)
			}
			return c, nil
		}
		if final(err) || l.cfg.Reconnect <= 0 || time.Now().After(deadline) || ctx.Err() != nil {
			if ctx.Err() == nil {
				l.countErr("dial", err.Error())
				l.fails.Add(1)
			}
			return nil, err
		}
		retried = true
		select { // redial pace while the host is down; bounded by deadline
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

type replyError struct{ r client.Reply }

func (e *replyError) Error() string { return e.r.String() }

// errMint means Tickets could not mint a ticket.
var errMint = errors.New("loadgen: cannot mint a ticket")

// final reports whether a failed login would fail again the same way: the
// server refused it, or there is no ticket to send.
func final(err error) bool {
	var re *replyError
	return errors.As(err, &re) || errors.Is(err, errMint) || errors.Is(err, client.ErrTicket)
}

func (l *Load) tryDial(a *Account) (*client.Conn, error) {
	c, err := client.Dial(l.cfg.Addr(), l.cfg.Timeout)
	if err != nil {
		return nil, err
	}
	c.Timeout = l.cfg.Timeout
	r, err := l.cfg.Tickets.login(c, a.ID)
	if err != nil {
		c.Close()
		if r.Code == "" || r.Code == "draining" || r.Code == "full" {
			return nil, err // transport or a passing refusal: worth a redial
		}
		return nil, &replyError{r}
	}
	if a.Known && a.Pending == "" {
		return c, nil
	}
	r, err = c.Do("balance")
	if err != nil {
		c.Close()
		return nil, err
	}
	coins, ok := r.Int("coins")
	if !r.OK || !ok {
		c.Close()
		return nil, &replyError{r}
	}
	l.settle(a, coins, "after reconnect")
	return c, nil
}

// settle checks the server's coins against the ledger after a lost reply
// (or learns them the first time) and rebases the ledger on them.
func (l *Load) settle(a *Account, coins int64, when string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.Known {
		switch {
		case coins == a.Coins:
		case a.Pending != "" && possible(l.cfg.WorkDeltas, a.Pending, coins-a.Coins):
			a.LostReplies++
			a.Updates++
		default:
			if len(l.violations) < 100 {
				l.violations = append(l.violations, fmt.Sprintf("player %d %s: server has %d coins, ledger %d (pending %q)",
					a.ID, when, coins, a.Coins, a.Pending))
			}
		}
	}
	a.Known, a.Coins, a.Pending = true, coins, ""
}

// possible reports whether cmd can change coins by delta.
func possible(workDeltas map[string]int64, cmd string, delta int64) bool {
	switch strings.Fields(cmd)[0] {
	case "work":
		for _, d := range workDeltas {
			if d == delta {
				return true
			}
		}
	case "buy":
		return delta < 0
	}
	return false
}

func (l *Load) lost(a *Account, cmd string, err error) {
	l.transport.Add(1)
	l.countErr("transport", err.Error())
	l.mu.Lock()
	a.Pending = cmd
	l.mu.Unlock()
}

func (l *Load) countErr(code, example string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.codes[code]++
	if _, ok := l.firstErr[code]; !ok {
		l.firstErr[code] = example
	}
}

// reply checks one reply against the ledger and moves the ledger on.
func (l *Load) reply(a *Account, cmd string, r client.Reply) {
	if !r.OK {
		l.countErr(r.Code, cmd+" -> "+r.String())
		if l.allowed[r.Code] {
			l.ok.Add(1)
		} else {
			l.fails.Add(1)
		}
		if r.Code == "funds" { // "potion costs 5, you have 3"
			if s, ok := r.Field("have"); ok {
				if have, err := strconv.ParseInt(s, 10, 64); err == nil {
					l.expect(a, cmd, have, 0, false)
				}
			}
		}
		return
	}
	l.ok.Add(1)
	coins, ok := r.Int("coins")
	if !ok {
		return // name, inventory: no coins in the reply
	}
	verb := strings.Fields(cmd)[0]
	switch verb {
	case "work":
		w := strings.Fields(r.Text)
		d, known := l.cfg.WorkDeltas[w[len(w)-1]]
		l.expect(a, cmd, coins, d, !known)
	case "buy":
		price, _ := r.Int("for")
		l.expect(a, cmd, coins, -price, false)
	default:
		l.expect(a, cmd, coins, 0, false)
	}
}

// expect checks that coins is the ledger's value plus delta (any positive
// delta if anyDelta) and moves the ledger to coins.
func (l *Load) expect(a *Account, cmd string, coins, delta int64, anyDelta bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.Known {
		want := a.Coins + delta
		if coins != want && !(anyDelta && coins > a.Coins) {
			if len(l.violations) < 100 {
				l.violations = append(l.violations, fmt.Sprintf("player %d %q: reply says %d coins, ledger expects %d (%d %+d)",
					a.ID, cmd, coins, want, a.Coins, delta))
			}
		}
	}
	if delta != 0 || anyDelta {
		a.Updates++
	}
	a.Known, a.Coins = true, coins
}

func (l *Load) progress(ctx context.Context) {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.ProgressEvery)
	defer t.Stop()
	prev, prevN, prevT := l.hist.Snapshot(), l.Acked(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cur, n := l.hist.Snapshot(), l.Acked()
			win := cur.Sub(prev)
			fmt.Fprintf(l.cfg.Progress, "[hotload] %6.1fs %9d replies %8.0f/s  p50 %-9v p99 %-9v failed %d reconnects %d violations %d\n",
				now.Sub(l.start).Seconds(), n, float64(n-prevN)/now.Sub(prevT).Seconds(),
				us(win.Quantile(0.5)), us(win.Quantile(0.99)), l.fails.Load(), l.reconnects.Load(), len(l.Violations()))
			prev, prevN, prevT = cur, n, now
		}
	}
}

// Check is the end-of-run comparison of the server's state with the ledger.
type Check struct {
	Players     int   // players compared
	Exact       int   // server == ledger
	LostReplies int64 // committed updates whose reply was lost (the allowed case), over the run
	Coins       int64 // coins on the server, all players
	Updates     int64 // acknowledged coin updates, all players
	Violations  []string
}

// OK reports whether the server matched the ledger.
func (c *Check) OK() bool { return len(c.Violations) == 0 }

func (c *Check) String() string {
	return fmt.Sprintf("%d players: %d exact, %d committed updates with a lost reply, %d acknowledged updates, %d coins, %d violations",
		c.Players, c.Exact, c.LostReplies, c.Updates, c.Coins, len(c.Violations))
}

// Verify reads every player's coins from the server (one connection per
// player, `balance`, logged in as the run did) and compares them with the
// ledger of r.
func Verify(ctx context.Context, addr string, r *Result, timeout time.Duration) *Check {
	ids := make([]uint64, 0, len(r.Accounts))
	for id := range r.Accounts {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	ck := &Check{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, id := range ids {
		a := r.Accounts[id]
		if !a.Known {
			continue // never got an answer for this player
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			got, err := r.tickets.Balance(ctx, addr, id, timeout)
			mu.Lock()
			defer mu.Unlock()
			ck.Players++
			ck.Updates += a.Updates
			ck.LostReplies += a.LostReplies
			switch {
			case err != nil:
				ck.Violations = append(ck.Violations, fmt.Sprintf("player %d: %v", id, err))
			case got == a.Coins:
				ck.Exact++
				ck.Coins += got
			case a.Pending != "" && possible(r.workDeltas, a.Pending, got-a.Coins):
				ck.LostReplies++
				ck.Coins += got
			default:
				ck.Coins += got
				ck.Violations = append(ck.Violations, fmt.Sprintf("player %d: server has %d coins, ledger %d (%d acknowledged updates)",
					id, got, a.Coins, a.Updates))
			}
		}()
	}
	wg.Wait()
	sort.Strings(ck.Violations)
	return ck
}

// Balance reads one player's coins on a connection of its own, logged in
// without a ticket (see Tickets.Balance).
func Balance(ctx context.Context, addr string, id uint64, timeout time.Duration) (int64, error) {
	return Tickets(nil).Balance(ctx, addr, id, timeout)
}

// Balance reads one player's coins on a connection of its own, logged in
// with a ticket from t (without one if t is nil).
func (t Tickets) Balance(ctx context.Context, addr string, id uint64, timeout time.Duration) (int64, error) {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	c, err := client.Dial(addr, timeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.Timeout = timeout
	if _, err := t.login(c, id); err != nil {
		return 0, err
	}
	r, err := c.Do("balance")
	if err != nil {
		return 0, err
	}
	coins, ok := r.Int("coins")
	if !r.OK || !ok {
		return 0, fmt.Errorf("balance of player %d: %s", id, r)
	}
	return coins, nil
}

// Summary is a few lines for a person: throughput, latency, errors.
func (r *Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d replies in %v: %.0f/s; latency p50 %v p99 %v p99.9 %v max %v\n",
		r.Requests, r.Elapsed.Round(time.Millisecond), r.Throughput, us(r.P50), us(r.P99), us(r.P999), us(r.Max))
	fmt.Fprintf(&b, "ok %d, failed %d, lost to the transport %d, reconnects %d", r.OK, r.Failed, r.Transport, r.Reconnects)
	codes := make([]string, 0, len(r.Codes))
	for c := range r.Codes {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, "\n  err %-10s %8d  e.g. %s", c, r.Codes[c], r.Examples[c])
	}
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "\n  VIOLATION %s", v)
	}
	return b.String()
}

// us rounds a latency for display.
func us(d time.Duration) time.Duration { return d.Round(time.Microsecond) }

// Ledger copies every known player's acknowledged coins. Each value was
// acknowledged before Ledger returned.
func (l *Load) Ledger() map[uint64]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[uint64]int64, len(l.accounts))
	for id, a := range l.accounts {
		if a.Known {
			m[id] = a.Coins
		}
	}
	return m
}
