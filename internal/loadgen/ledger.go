package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// The ledger: what the load holds every player's coins to be, and the
// changes of coins it cannot place yet.
//
// Each player is played by one worker, so its own replies come one at a
// time. But other players' gives and trades change its coins meanwhile: a
// reply may or may not include a move whose own reply the ledger has not
// seen yet, or saw only after this request left. Such moves are the
// unknowns of the reply's check: the reply must equal the ledger's value
// plus some choice of them (solve), and a move that every fitting choice
// includes has committed, whatever its own reply says later. A change
// whose reply a cut connection lost (a work, a buy, a give, a trade) stays
// an unknown until a read places it: its owner's next read (which also
// places it as not committed), any read that fits only with it, or an
// audit, which reads every player while the load is paused and solves the
// players that lost moves tie together at once.
//
// The total is checked apart from who holds what: a move changes no total,
// so all players must hold the coins they had when first seen, plus every
// work's earnings, minus every buy's price (the lost ones among them
// placed). A give or trade that created or destroyed a coin breaks it.

// Account is the ledger of one player.
type Account struct {
	ID    uint64
	Known bool // Coins is anchored on a value the server showed
	// Coins is what the player holds by every change known to have
	// committed: its own replies, and the moves of others known to have
	// committed (a reply acknowledged them, or a read showed them).
	Coins   int64
	Updates int64 // own coin changes acknowledged, and own lost ones placed as committed
	// Pending is an own command whose reply was lost and which no read
	// has placed yet, "" if none.
	Pending string
	// LostReplies counts the documented case: a command committed
	// whose reply a kill swallowed (placed by a later read).
	LostReplies int64
	Moves       int64 // gives and trades this player sent that committed

	// open is the effects touching this player that no read placed yet,
	// and those placed since its last read.
	open []*effect
}

type effectKind uint8

const (
	kindWork effectKind = iota
	kindBuy
	kindMove // a give or a trade: coins from one player to another
)

type effectState uint8

const (
	unplaced effectState = iota // in flight, or its reply was lost
	committed
	failed
)

// effect is one change of coins: a move from the moment it is sent until
// it is placed, or a work or buy whose reply was lost.
type effect struct {
	cmd   string
	kind  effectKind
	item  string   // a buy's item: its price is looked up when solved
	owner *Account // whose command it is
	other *Account // a move's other player, else nil
	vals  []int64  // a move: the owner's delta if it commits (the other's is its negation)
	lost  bool     // the owner's reply was lost
	state effectState
	val   int64  // the owner's delta, once committed
	at    uint64 // the ledger's sequence number when placed
	// applied: the placed value is in the owner's / the other's Coins.
	applied [2]bool
}

// deltaFor is what the committed effect did to a.
func (e *effect) deltaFor(a *Account) int64 {
	if a == e.owner {
		return e.val
	}
	return -e.val
}

func (e *effect) String() string {
	how := "in flight"
	if e.lost {
		how = "reply lost"
	}
	return fmt.Sprintf("player %d %q (%s)", e.owner.ID, e.cmd, how)
}

// ledger is the run's accounts and what it knows of the coins in all.
type ledger struct {
	mu sync.Mutex
	// seq counts placements; a request notes it when it leaves, and a
	// reply is sure to include every commit placed before that.
	seq      atomic.Uint64
	accounts map[uint64]*Account
	known    []*Account         // in the order they became known: the targets of moves
	work     map[string]int64   // a work reply's version tag -> the coins it adds
	workVals []int64            // the distinct values of work
	prices   map[string][]int64 // item -> the prices its buys showed

	start         int64 // coins of every known player when first seen
	earned, spent int64 // by works, by buys (placed)
	moved, moves  int64 // coins moved by committed gives and trades, and how many
	placed        int64 // lost replies placed by a read
	unchecked     int64 // reads with too many unknowns to check
	ambiguous     int64 // lost changes an audit could place more than one way
	violations    []string
	found         *[]string // while an audit runs: its own violations
}

func newLedger(first uint64, players int, work, prices map[string]int64) *ledger {
	led := &ledger{accounts: map[uint64]*Account{}, work: work, prices: map[string][]int64{}}
	for item, p := range prices {
		led.learnPrice(item, p)
	}
	for i := range players {
		id := first + uint64(i)
		led.accounts[id] = &Account{ID: id}
	}
	for _, v := range work {
		if v != 0 && !slices.Contains(led.workVals, v) {
			led.workVals = append(led.workVals, v)
		}
	}
	slices.Sort(led.workVals)
	return led
}

// maxViolations is how many violation texts a run keeps.
const maxViolations = 100

func (led *ledger) violate(format string, args ...any) {
	v := fmt.Sprintf(format, args...)
	if len(led.violations) < maxViolations {
		led.violations = append(led.violations, v)
	}
	if led.found != nil && len(*led.found) < maxViolations {
		*led.found = append(*led.found, v)
	}
}

func (led *ledger) learnPrice(item string, price int64) {
	if price > 0 && !slices.Contains(led.prices[item], price) {
		led.prices[item] = append(led.prices[item], price)
	}
}

// target picks a known player other than a, nil if there is none.
func (led *ledger) target(a *Account, rng *rand.Rand) *Account {
	if len(led.known) < 2 {
		return nil
	}
	for {
		if o := led.known[rng.IntN(len(led.known))]; o != a {
			return o
		}
	}
}

// send registers a move before it leaves: from then on the other player's
// reads may include it.
func (led *ledger) send(e *effect) {
	e.other.open = append(e.other.open, e)
}

// place records that e committed with the owner's delta val and applies
// it to each side that is not waiting for its own reply to apply it.
func (led *ledger) place(e *effect, val int64) {
	e.state, e.val, e.at = committed, val, led.seq.Add(1)
	switch e.kind {
	case kindWork:
		led.earned += val
	case kindBuy:
		led.spent -= val
	case kindMove:
		led.moved += max(val, -val)
		led.moves++
		e.owner.Moves++
		led.apply(e, 1)
	}
	if e.lost {
		led.committedLost(e)
	}
}

// committedLost applies a committed change whose reply was lost to its
// owner, and counts it.
func (led *ledger) committedLost(e *effect) {
	led.apply(e, 0)
	e.owner.Updates++
	e.owner.LostReplies++
	led.placed++
}

// apply adds e's committed value to its owner (side 0) or other player
// (side 1), once.
func (led *ledger) apply(e *effect, side int) {
	if e.applied[side] {
		return
	}
	e.applied[side] = true
	if side == 0 {
		e.owner.Coins += e.val
	} else {
		e.other.Coins -= e.val
	}
}

// fail records that e never committed.
func (led *ledger) fail(e *effect) {
	e.state, e.at = failed, led.seq.Add(1)
}

// acked is a move's own reply: committed with the owner's delta val. The
// caller's read of the owner applies the owner's side.
func (led *ledger) acked(e *effect, val int64) {
	e.applied[0] = true
	e.owner.Updates++
	switch e.state {
	case unplaced:
		led.place(e, val)
	case failed:
		led.violate("%v: acknowledged, but an earlier read placed it as not committed", e)
	}
}

// refused is a move's own error reply: it did not commit.
func (led *ledger) refused(e *effect) {
	switch e.state {
	case unplaced:
		led.fail(e)
	case committed:
		led.violate("%v: refused, but player %d's read showed it committed", e, e.other.ID)
	}
}

// lost is a move whose reply a cut connection lost.
func (led *ledger) lost(e *effect) {
	e.lost = true
	if e.state == committed { // the other player's read already showed it
		led.committedLost(e)
		return
	}
	e.owner.open = append(e.owner.open, e)
	e.owner.Pending = e.cmd
}

// lostOwn is a work or a buy whose reply was lost.
func (led *ledger) lostOwn(a *Account, kind effectKind, cmd, item string) {
	a.open = append(a.open, &effect{cmd: cmd, kind: kind, item: item, owner: a, lost: true})
	a.Pending = cmd
}

// moveVals are the nonzero deltas move e may have brought a.
func moveVals(e *effect, a *Account) []int64 {
	if a == e.owner {
		return e.vals
	}
	return []int64{-e.vals[0]}
}

// pileOf is a's own works and buys whose replies were lost and that no
// read placed; false if one cannot be solved (a buy of an item whose price
// the ledger does not know), which an audit reports (with report set).
func (led *ledger) pileOf(a *Account, report bool) (*pile, bool) {
	p := &pile{}
	for _, e := range a.open {
		if e.state != unplaced || e.owner != a || e.kind == kindMove {
			continue
		}
		vals := led.workVals
		if e.kind == kindBuy {
			vals = nil
			for _, price := range led.prices[e.item] {
				vals = append(vals, -price)
			}
			if len(vals) == 0 {
				if report {
					led.violate("%v cannot be placed: no reply showed the price of %s (Config.Prices)", e, e.item)
				}
				return nil, false
			}
		}
		p.effects, p.vals = append(p.effects, e), append(p.vals, vals)
	}
	return p, true
}

// placePile places a's pile as having added s in all.
func (led *ledger) placePile(p *pile, s int64) {
	for i, v := range p.split(s) {
		if v != 0 {
			led.place(p.effects[i], v)
		} else {
			led.fail(p.effects[i])
		}
	}
}

// observe checks coins, which a read of a's own (a reply, or a balance)
// showed after a change of d of its own, against the ledger; sent is the
// sequence number when the read left. It places what the read tells, then
// adds d to a.
func (led *ledger) observe(a *Account, sent uint64, coins, d int64, what string) {
	if !a.Known {
		a.Known, a.Coins = true, coins-d
		led.start += coins - d
		led.known = append(led.known, a)
	}
	defer led.prune(a)
	defer func() { a.Coins += d }()
	base := a.Coins + d
	var terms []term
	var refs []*effect // per term: the unplaced move, nil for one placed since the read left, and for the pile
	for _, e := range a.open {
		switch {
		case e.state == failed:
		case e.state == committed:
			if e.at > sent { // placed while the read was out: it may not be in it
				v := e.deltaFor(a)
				base -= v
				terms, refs = append(terms, term{b: -1, vals: []int64{v}}), append(refs, nil)
			}
		case e.kind == kindMove:
			terms, refs = append(terms, term{b: -1, vals: moveVals(e, a)}), append(refs, e)
		}
	}
	p, ok := led.pileOf(a, false)
	if !ok {
		led.unchecked++
		return
	}
	var sums []int64
	if len(p.effects) > 0 {
		sums = p.sums()
		terms, refs = append(terms, term{b: -1, vals: sums}), append(refs, nil)
	}
	var g agreement
	switch {
	case !solve([]int64{coins - base}, terms, g.add):
		led.unchecked++
		return
	case g.n == 0:
		led.violate("player %d %s: the server shows %d coins, the ledger holds %d%s", a.ID, what, coins, base, unknownsText(refs, p))
		// Later checks of a measure from what the server showed; the
		// total is not moved: the next audit checks it apart.
		a.Coins += coins - base
		return
	}
	for t, e := range refs {
		switch k := g.first[t]; {
		case e == nil || !g.same[t]:
		case k > 0:
			led.place(e, ownerValue(e, a, terms[t].vals[k-1]))
		case a == e.owner && e.lost:
			led.fail(e) // its owner's read: the cut request never committed
		}
	}
	if last := len(terms) - 1; len(p.effects) > 0 && g.same[last] {
		var s int64
		if k := g.first[last]; k > 0 {
			s = sums[k-1]
		}
		led.placePile(p, s) // its owner's read: what did not commit never will
	}
}

// ownerValue is the owner's delta of move e when it brought a v.
func ownerValue(e *effect, a *Account, v int64) int64 {
	if a == e.owner {
		return v
	}
	return -v
}

func unknownsText(refs []*effect, p *pile) string {
	var s []string
	for _, e := range refs {
		if e != nil {
			s = append(s, e.String())
		}
	}
	for _, e := range p.effects {
		s = append(s, e.String())
	}
	if len(s) == 0 {
		return ""
	}
	return " plus any of: " + strings.Join(s, ", ")
}

// prune drops the effects placed before now from a's list, and sets
// a.Pending to its last own lost command not placed.
func (led *ledger) prune(a *Account) {
	a.Pending = ""
	keep := a.open[:0]
	for _, e := range a.open {
		if e.state == unplaced {
			keep = append(keep, e)
			if e.owner == a {
				a.Pending = e.cmd
			}
		}
	}
	clear(a.open[len(keep):])
	a.open = keep
}

// Check is the comparison of the server's state with the ledger: at the
// end of a run (Verify), or while the load is paused (Load.Audit).
type Check struct {
	Players     int   // players compared
	Exact       int   // server == ledger, every lost change of theirs placed one way only
	LostReplies int64 // committed updates whose reply was lost (the allowed case), over the run
	Coins       int64 // coins on the server, all players
	Updates     int64 // acknowledged coin updates, all players
	// Total is the coins the ledger expects in all: what the players had
	// when first seen, plus Earned, minus Spent. TotalOK: the server's
	// Coins can be that, some choice of the lost works and buys placed.
	Total, Earned, Spent int64
	TotalOK              bool
	Moved, Moves         int64 // coins moved between players by committed gives and trades, and how many
	Placed               int64 // lost replies placed by reads, over the run
	Ambiguous            int64 // lost changes placed one of several ways that fit (the total holds either way)
	Unchecked            int64 // reads with too many unknowns to check one by one, over the run (audits check them)
	Violations           []string
}

// OK reports whether the server matched the ledger.
func (c *Check) OK() bool { return len(c.Violations) == 0 }

func (c *Check) String() string {
	total := "exact"
	if !c.TotalOK {
		total = "WRONG"
	}
	return fmt.Sprintf("%d players: %d exact, %d committed updates with a lost reply, %d acknowledged updates, %d coins, %d violations; "+
		"total %s: %d coins = %d at start + %d earned - %d spent; %d coins moved in %d gives and trades; %d lost replies placed by reads, %d ambiguous, %d reads unchecked",
		c.Players, c.Exact, c.LostReplies, c.Updates, c.Coins, len(c.Violations),
		total, c.Total, c.Total-c.Earned+c.Spent, c.Earned, c.Spent, c.Moved, c.Moves, c.Placed, c.Ambiguous, c.Unchecked)
}

// audit reads every known player's coins with read while nothing else
// runs, checks the total and every player, places every lost change, and
// rebases each player on what the server showed.
func (led *ledger) audit(ctx context.Context, read func(ctx context.Context, id uint64) (int64, error)) *Check {
	led.mu.Lock()
	accs := slices.Clone(led.known)
	led.mu.Unlock()
	server := make([]int64, len(accs))
	errs := make([]error, len(accs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, a := range accs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			server[i], errs[i] = read(ctx, a.ID)
		}()
	}
	wg.Wait()

	led.mu.Lock()
	defer led.mu.Unlock()
	ck := &Check{}
	led.found = &ck.Violations
	defer func() { led.found = nil }()
	idx := map[*Account]int{}
	readAll := true
	for i, a := range accs {
		if errs[i] != nil {
			led.violate("player %d: %v", a.ID, errs[i])
			readAll = false
			continue
		}
		idx[a] = i
		ck.Coins += server[i]
	}
	ck.TotalOK = readAll && led.checkTotal(ck.Coins)
	exact := led.placeAll(accs, idx, server)
	for i, a := range accs {
		if _, ok := idx[a]; !ok {
			continue
		}
		ck.Players++
		ck.Updates += a.Updates
		ck.LostReplies += a.LostReplies
		switch {
		case a.Coins != server[i]:
			led.violate("player %d: the server shows %d coins, the ledger holds %d (%d acknowledged updates)", a.ID, server[i], a.Coins, a.Updates)
			a.Coins = server[i]
		case exact[a]:
			ck.Exact++
		}
		led.prune(a)
	}
	ck.Total = led.start + led.earned - led.spent
	ck.Earned, ck.Spent, ck.Moved, ck.Moves = led.earned, led.spent, led.moved, led.moves
	ck.Placed, ck.Ambiguous, ck.Unchecked = led.placed, led.ambiguous, led.unchecked
	sort.Strings(ck.Violations)
	return ck
}

// checkTotal checks the coins of all players against the start, the
// earnings and the spending; a lost work or buy may or may not be in it,
// a move is in it either way.
func (led *ledger) checkTotal(coins int64) bool {
	want := led.start + led.earned - led.spent
	all := &pile{}
	for _, a := range led.known {
		p, ok := led.pileOf(a, false)
		if !ok {
			led.violate("total: not checkable while player %d has a lost buy of unknown price", a.ID)
			return false
		}
		all.effects, all.vals = append(all.effects, p.effects...), append(all.vals, p.vals...)
	}
	if coins == want || slices.Contains(all.sums(), coins-want) {
		return true
	}
	var lost []string
	for _, e := range all.effects {
		lost = append(lost, e.String())
	}
	led.violate("total: the server holds %d coins, the ledger %d (%d at start + %d earned - %d spent)%s: coins were created or destroyed",
		coins, want, led.start, led.earned, led.spent, strings.Join(append([]string{""}, lost...), "; lost: "))
	led.start += coins - want // later audits check what happens from here
	return false
}

// placeAll places every unplaced change touching the players read (idx:
// their index in server), solving together the players that lost moves
// tie. It returns the players whose every change was placed one way only.
func (led *ledger) placeAll(accs []*Account, idx map[*Account]int, server []int64) map[*Account]bool {
	exact := map[*Account]bool{}
	// Union-find over the players, joined by the moves between them.
	parent := map[*Account]*Account{}
	var find func(a *Account) *Account
	find = func(a *Account) *Account {
		if p, ok := parent[a]; ok && p != a {
			r := find(p)
			parent[a] = r
			return r
		}
		parent[a] = a
		return a
	}
	for _, a := range accs {
		exact[a] = true
		for _, e := range a.open {
			if e.state == unplaced && e.kind == kindMove {
				parent[find(e.owner)] = find(e.other)
			}
		}
	}
	groups := map[*Account][]*Account{}
	var roots []*Account
	for _, a := range accs {
		if len(a.open) == 0 {
			continue
		}
		r := find(a)
		if groups[r] == nil {
			roots = append(roots, r)
		}
		groups[r] = append(groups[r], a)
	}
	for _, r := range roots {
		led.placeGroup(groups[r], idx, server, exact)
	}
	return exact
}

// placeGroup solves one group of players tied by unplaced moves (and each
// one's pile of lost works and buys) and places each unknown: the way
// every solution agrees on, else the first solution's way (counted
// ambiguous). No solution is a violation.
func (led *ledger) placeGroup(players []*Account, idx map[*Account]int, server []int64, exact map[*Account]bool) {
	local := map[*Account]int{}
	targets := make([]int64, len(players))
	for i, a := range players {
		j, ok := idx[a]
		if !ok {
			return // a player of the group was not read: its violation is said
		}
		local[a], targets[i] = i, server[j]-a.Coins
	}
	var terms []term
	var moves []*effect
	for _, a := range players {
		for _, e := range a.open {
			if e.state == unplaced && e.kind == kindMove && e.owner == a {
				terms = append(terms, term{a: local[a], b: local[e.other], vals: e.vals})
				moves = append(moves, e)
			}
		}
	}
	piles := make([]*pile, len(players))
	sums := make([][]int64, len(players))
	for i, a := range players {
		p, ok := led.pileOf(a, true)
		if !ok {
			return
		}
		if piles[i] = p; len(p.effects) > 0 {
			sums[i] = p.sums()
			terms = append(terms, term{a: i, b: -1, vals: sums[i]})
		}
	}
	var g agreement
	complete := solve(targets, terms, g.add)
	if !complete || g.n == 0 {
		why := "no way of placing them fits"
		if !complete {
			why = "too many to place"
		}
		var ids, es []string
		for i, a := range players {
			ids = append(ids, fmt.Sprint(a.ID))
			for _, e := range piles[i].effects {
				es = append(es, e.String())
			}
		}
		for _, e := range moves {
			es = append(es, e.String())
		}
		led.violate("players %s: %s: %s", strings.Join(ids, ", "), why, strings.Join(es, ", "))
		for _, a := range players {
			for _, e := range a.open {
				if e.state == unplaced {
					led.fail(e) // the players are rebased on the server after
				}
			}
		}
		return
	}
	unsure := func(t int, as ...*Account) {
		if !g.same[t] {
			led.ambiguous++
			for _, a := range as {
				exact[a] = false
			}
		}
	}
	for t, e := range moves {
		unsure(t, e.owner, e.other)
		if k := g.first[t]; k > 0 {
			led.place(e, e.vals[k-1])
			led.apply(e, 0)
		} else {
			led.fail(e)
		}
	}
	t := len(moves)
	for i, p := range piles {
		if len(p.effects) == 0 {
			continue
		}
		unsure(t, players[i])
		var s int64
		if k := g.first[t]; k > 0 {
			s = sums[i][k-1]
		}
		led.placePile(p, s)
		t++
	}
}
