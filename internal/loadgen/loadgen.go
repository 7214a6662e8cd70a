// Package loadgen drives a hothost with real TCP clients and keeps a ledger
// of every acknowledged update, so a run can prove that nothing was lost,
// created or destroyed: cmd/hotload is its command line, examples/chaos and
// examples/e2ebench use it for the swap and kill storms and the end-to-end
// figures.
//
// The ledger follows the example game: every reply that carries a player's
// coins (work, balance, buy, whoami, give, trade, a funds refusal) is
// checked against the coins the ledger holds, and the ledger then moves on
// by the reply's own change. Gives and trades move coins between the
// load's own players, so a reply may also include moves of other players
// that are still on their way (ledger.go). A transport error leaves the
// command in flight unplaced: the host may have committed it before the
// reply was lost (a kill -9 between commit and write). That is the one case
// a check allows, and only for that command's possible effect, which a
// later read places; every other difference is a violation. Load.Audit and
// Verify read every player and also check the total: the coins of all
// players are what they had plus what works earned minus what buys spent.
//
// It never changes the server but through the game's own commands, and
// never sends a give or trade to a player outside its own accounts.
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

// TradeMix is DefaultMix with coins moving between the load's players: a
// give and a trade of a potion (the example game's market module), each to
// a player of the load picked at random, of 1 to Config.MaxMove coins.
var TradeMix = append(DefaultMix[:len(DefaultMix):len(DefaultMix)], Weighted{"give", 1}, Weighted{"trade potion", 1})

// ParseMix reads "work=6,balance=2,buy potion=1,give=1,trade potion=1".
// A give or trade names no player or amount: the load picks them.
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
	// NoTagRetry leaves a request whose reply a cut connection lost to the
	// ledger's reads. By default, when Reconnect is set, it is sent again
	// with its tag on the new connection, and its reply is taken as if it
	// had come the first time (the host keeps the replies of tagged
	// requests: it answers a committed one, it runs another).
	NoTagRetry bool
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// WorkDeltas are the coins one `work` may add (default 10 for a v1
	// reply, 20 for v2: the example game's coin module).
	WorkDeltas map[string]int64
	// Prices are the coins a buy of each item may cost (default the
	// example game's shop: potion 5, shield 40, sword 50). The prices
	// that replies show are learned as well; one of these is needed only
	// to place a buy whose reply was lost before any reply showed its
	// item's price.
	Prices map[string]int64
	// Progress, when set, gets a progress line every ProgressEvery
	// (default 1s).
	Progress      io.Writer
	ProgressEvery time.Duration
	// Seed seeds the command choice (0: random).
	Seed uint64
	// MaxMove is the most coins one give moves and one trade costs
	// (default 10); each picks from 1 to MaxMove.
	MaxMove int64
	// AllowCodes are error codes that are not failures (default "funds";
	// an "item" refusal of a trade, whose seller holds none, never is).
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

// Load is a running load.
type Load struct {
	cfg    Config
	hist   Hist
	start  time.Time
	cancel context.CancelFunc
	wg     sync.WaitGroup
	led    *ledger
	// gate: each request (and the read after a login) holds it shared,
	// an audit holds it alone, so that it reads a server nothing changes.
	gate sync.RWMutex

	issued, ok, fails, transport, reconnects, retried, pushes atomic.Int64

	mu       sync.Mutex
	codes    map[string]int64
	firstErr map[string]string // one example reply per error code
	allowed  map[string]bool
	end      time.Time
}

// Result is what a run measured and found.
type Result struct {
	Elapsed    time.Duration
	Requests   int64 // replies received (ok or err)
	OK         int64
	Failed     int64            // err replies with a code not allowed, and workers that gave up dialing
	Transport  int64            // requests whose reply never came (connection lost)
	Reconnects int64            // successful redials after a transport error
	Retried    int64            // requests cut by the transport, sent again with their tag and answered
	Pushes     int64            // pushes received (gives and trades tell the other player)
	Codes      map[string]int64 // err replies by code, and "transport"
	Examples   map[string]string
	P50, P99   time.Duration
	P999, Max  time.Duration
	Throughput float64 // replies per second
	Accounts   map[uint64]*Account
	Violations []string // ledger differences (at most 100 kept)
	Hist       *Counts

	led     *ledger
	tickets Tickets
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
	if cfg.Prices == nil {
		cfg.Prices = map[string]int64{"potion": 5, "shield": 40, "sword": 50}
	}
	if cfg.MaxMove <= 0 {
		cfg.MaxMove = 10
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
		if err := checkMove(w.Cmd); err != nil {
			return nil, err
		}
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
	l := &Load{cfg: cfg, start: time.Now(), codes: map[string]int64{}, firstErr: map[string]string{}, allowed: map[string]bool{},
		led: newLedger(cfg.FirstPlayer, cfg.Players, cfg.WorkDeltas, cfg.Prices)}
	for _, c := range cfg.AllowCodes {
		l.allowed[c] = true
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

// checkMove refuses a give or trade the load cannot keep the ledger of:
// it picks their player and amount itself.
func checkMove(cmd string) error {
	f := strings.Fields(cmd)
	switch {
	case len(f) == 0:
		return fmt.Errorf("loadgen: empty command in the mix")
	case f[0] == "give" && len(f) != 1:
		return fmt.Errorf("loadgen: mix command %q: write `give`: the load picks the player and the coins", cmd)
	case f[0] == "trade" && len(f) != 2:
		return fmt.Errorf("loadgen: mix command %q: write `trade <item>`: the load picks the player and the price", cmd)
	}
	return nil
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
	l.led.mu.Lock()
	defer l.led.mu.Unlock()
	return append([]string(nil), l.led.violations...)
}

// Audit pauses the load between requests (each worker finishes the one it
// has in flight), reads every known player's coins from the server at
// addr, checks them and their total against the ledger, places every
// change whose reply was lost, and lets the load go on. A driver calls it
// after restarting a killed host, once the load runs again.
func (l *Load) Audit(ctx context.Context, addr string) *Check {
	l.gate.Lock()
	defer l.gate.Unlock()
	return l.led.audit(ctx, l.cfg.Tickets.reader(addr, l.cfg.Timeout))
}

// reader reads a player's coins at addr, logged in with a ticket from t.
func (t Tickets) reader(addr string, timeout time.Duration) func(context.Context, uint64) (int64, error) {
	return func(ctx context.Context, id uint64) (int64, error) { return t.Balance(ctx, addr, id, timeout) }
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
		Transport: l.transport.Load(), Reconnects: l.reconnects.Load(), Retried: l.retried.Load(), Pushes: l.pushes.Load(), Codes: map[string]int64{},
		Examples: map[string]string{}, P50: c.Quantile(0.50), P99: c.Quantile(0.99), P999: c.Quantile(0.999), Max: l.hist.Max(),
		Accounts: map[uint64]*Account{}, Hist: c, led: l.led, tickets: l.cfg.Tickets,
	}
	r.Throughput = float64(r.Requests) / el.Seconds()
	for k, v := range l.codes {
		r.Codes[k] = v
	}
	for k, v := range l.firstErr {
		r.Examples[k] = v
	}
	l.led.mu.Lock()
	defer l.led.mu.Unlock()
	r.Violations = append([]string(nil), l.led.violations...)
	for id, a := range l.led.accounts {
		cp := *a
		cp.open = nil
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
		a := l.led.accounts[mine[i%len(mine)]]
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
		if !l.request(ctx, &c, a, rng) {
			return l.cfg.Reconnect > 0 && ctx.Err() == nil
		}
	}
	// A clean logout between sessions.
	c.Do("quit")
	return true
}

// request sends one command of the mix on c as a's player and checks its
// reply; false if the connection was lost.
func (l *Load) request(ctx context.Context, cp **client.Conn, a *Account, rng *rand.Rand) bool {
	l.gate.RLock()
	defer l.gate.RUnlock()
	req := l.prepare(a, l.pick(rng), rng)
	t0 := time.Now()
	c := *cp
	r, err := c.Do(req.line)
	if err != nil {
		c2, r2, ok := l.retryTag(ctx, a, c.LastTag(), req.line)
		if !ok {
			l.lost(a, req, err)
			return false
		}
		c.Close()
		*cp, c, r = c2, c2, r2
	}
	l.hist.Record(time.Since(t0))
	l.reply(a, req, r)
	// Pushes come in with the replies (the client buffers them); only
	// this goroutine reads c, so what is buffered can be taken.
	var n int64
	for ; len(c.Pushes()) > 0; n++ {
		<-c.Pushes()
	}
	l.pushes.Add(n)
	return true
}

// retryTag sends a request whose reply a cut connection lost once more,
// with its tag, on a new connection (when the load reconnects at all): the
// host answers with the reply it kept if the request had committed, or
// runs it now, never twice. So the ledger learns its outcome for sure.
func (l *Load) retryTag(ctx context.Context, a *Account, tag, line string) (*client.Conn, client.Reply, bool) {
	if l.cfg.Reconnect <= 0 || l.cfg.NoTagRetry || ctx.Err() != nil {
		return nil, client.Reply{}, false
	}
	c, err := l.dial(ctx, a)
	if err != nil {
		return nil, client.Reply{}, false
	}
	r, err := c.DoTag(tag, line)
	if err != nil {
		c.Close()
		return nil, client.Reply{}, false
	}
	l.retried.Add(1)
	return c, r, true
}

// request is one command on its way.
type request struct {
	line, verb, item string
	sent             uint64  // the ledger's sequence number when it left
	move             *effect // a give or trade
}

// prepare turns a command of the mix into the line to send. A give or a
// trade gets a known other player and an amount, and the ledger learns of
// it before it leaves; while no other player is known it is a balance.
func (l *Load) prepare(a *Account, cmd string, rng *rand.Rand) request {
	f := strings.Fields(cmd)
	req := request{line: cmd, verb: f[0]}
	switch req.verb {
	case "buy":
		if len(f) > 1 {
			req.item = f[1]
		}
	case "give", "trade":
		led := l.led
		led.mu.Lock()
		defer led.mu.Unlock()
		o := led.target(a, rng)
		if o == nil {
			req.line, req.verb = "balance", "balance"
			break
		}
		n := 1 + rng.Int64N(l.cfg.MaxMove)
		if req.verb == "give" {
			req.line = fmt.Sprintf("give %d %d", o.ID, n)
			n = -n
		} else {
			req.item = f[1]
			req.line = fmt.Sprintf("trade %d %s %d", o.ID, req.item, n)
		}
		req.move = &effect{cmd: req.line, kind: kindMove, owner: a, other: o, vals: []int64{n}}
		led.send(req.move)
	}
	req.sent = l.led.seq.Load()
	return req
}

// dial connects, logs in and, if the ledger does not know the player's
// coins for sure, reads them (placing a lost command's effect).
// Transport errors are retried until cfg.Reconnect has passed.
func (l *Load) dial(ctx context.Context, a *Account) (*client.Conn, error) {
	deadline := time.Now().Add(l.cfg.Reconnect)
	retried := false
	for {
		l.gate.RLock()
		c, err := l.tryDial(a)
		l.gate.RUnlock()
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
	l.led.mu.Lock()
	sure := a.Known && a.Pending == ""
	l.led.mu.Unlock()
	if sure {
		return c, nil
	}
	sent := l.led.seq.Load()
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
	l.led.mu.Lock()
	l.led.observe(a, sent, coins, 0, "balance after login")
	l.led.mu.Unlock()
	return c, nil
}

// lost is a request whose reply the transport lost: its effect, if it has
// one, is unplaced until a read places it.
func (l *Load) lost(a *Account, req request, err error) {
	l.transport.Add(1)
	l.countErr("transport", err.Error())
	led := l.led
	led.mu.Lock()
	defer led.mu.Unlock()
	switch {
	case req.move != nil:
		led.lost(req.move)
	case req.verb == "work":
		led.lostOwn(a, kindWork, req.line, "")
	case req.verb == "buy":
		led.lostOwn(a, kindBuy, req.line, req.item)
	}
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
func (l *Load) reply(a *Account, req request, r client.Reply) {
	led := l.led
	if !r.OK {
		l.countErr(r.Code, req.line+" -> "+r.String())
		// A trade of an item the seller lacks is the game's refusal,
		// like too few coins; the load does not track inventories.
		if l.allowed[r.Code] || (r.Code == "item" && req.verb == "trade") {
			l.ok.Add(1)
		} else {
			l.fails.Add(1)
		}
		led.mu.Lock()
		defer led.mu.Unlock()
		if req.move != nil {
			led.refused(req.move)
		}
		if r.Code == "funds" { // "potion costs 5, you have 3", "you have 3 coins, not 5"
			if p, ok := intAfter(r.Text, "costs"); ok && req.verb == "buy" {
				led.learnPrice(req.item, p)
			}
			if have, ok := intAfter(r.Text, "have"); ok {
				led.observe(a, req.sent, have, 0, req.line)
			}
		}
		return
	}
	l.ok.Add(1)
	coins, ok := intAfter(r.Text, "coins")
	if !ok {
		return // name, inventory: no coins in the reply
	}
	led.mu.Lock()
	defer led.mu.Unlock()
	var d int64
	switch req.verb {
	case "work":
		w := strings.Fields(r.Text)
		v, known := l.cfg.WorkDeltas[w[len(w)-1]]
		if !known {
			led.violate("player %d %q: reply %q ends in a version Config.WorkDeltas does not know", a.ID, req.line, r.Text)
			a.Coins = coins // the next audit's total says what this work earned
			return
		}
		d = v
		led.earned += d
		a.Updates++
	case "buy":
		price, _ := intAfter(r.Text, "for")
		led.learnPrice(req.item, price)
		d = -price
		led.spent += price
		a.Updates++
	case "give", "trade":
		d = req.move.vals[0]
		led.acked(req.move, d)
	}
	led.observe(a, req.sent, coins, d, req.line)
}

// intAfter is the integer after the last word key of text ("gave 5 coins
// to 3; coins 12": coins is 12), without trailing punctuation.
func intAfter(text, key string) (int64, bool) {
	w := strings.Fields(text)
	for i := len(w) - 2; i >= 0; i-- {
		if w[i] == key {
			n, err := strconv.ParseInt(strings.TrimRight(w[i+1], ",;."), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
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

// Verify reads every known player's coins from the server (one connection
// per player, `balance`, logged in as the run did) and compares them and
// their total with the ledger of r, placing every change whose reply was
// lost. r's load must have ended.
func Verify(ctx context.Context, addr string, r *Result, timeout time.Duration) *Check {
	return r.led.audit(ctx, r.tickets.reader(addr, timeout))
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
	fmt.Fprintf(&b, "ok %d, failed %d, lost to the transport %d, reconnects %d, retried by tag %d, pushes %d", r.OK, r.Failed, r.Transport, r.Reconnects, r.Retried, r.Pushes)
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

// Ledger copies every known player's coins as the ledger holds them. Each
// value was acknowledged, or shown by a read, before Ledger returned.
func (l *Load) Ledger() map[uint64]int64 {
	l.led.mu.Lock()
	defer l.led.mu.Unlock()
	m := make(map[uint64]int64, len(l.led.accounts))
	for id, a := range l.led.accounts {
		if a.Known {
			m[id] = a.Coins
		}
	}
	return m
}
