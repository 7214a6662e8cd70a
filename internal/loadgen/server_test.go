package loadgen_test

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hothost/hothost/ticket"
)

var key = []byte("the key a test host shares, 32 b")

// gameServer is a stand-in for the example game on real TCP, enough for
// the ledger: login (with a ticket checked by the ticket package, or
// without one if it has no verifier), `work` (+10 coins, v1), `balance`,
// `buy potion` (5 coins), `give <player> <coins>`, `trade <player> potion
// <price>` with a push to the other player, `whoami`, `quit`, with the
// example game's reply texts. One lock makes every command atomic. The
// host's own gateway and the real plugins are tested against the real
// host in host/ and examples/chaos; this server lets the ledger's tests
// cut connections exactly where they want and plant bugs.
type gameServer struct {
	ln net.Listener
	v  *ticket.Verifier

	mu       sync.Mutex
	players  map[uint64]*player
	sessions map[uint64][]*conn
	logins   int
	refusals []string
	// cut, when set, is asked before each work, buy, give or trade
	// whether to close the connection without a reply, before the
	// command commits or after. cuts counts each.
	cut  func(verb string) cutAt
	cuts map[cutAt]int
	// Bugs the ledger must catch: give credits leak more coins than it
	// debits; a give cut after its commit keeps only its debit.
	leak      int64
	halfOnCut bool
	// conns are the live connections; a kill forgets them all.
	conns    map[*conn]bool
	killed   chan struct{} // set: kill right after the next coin change commits
	commands int
	waiters  map[int][]chan struct{}
}

type cutAt int

const (
	noCut cutAt = iota
	cutBefore
	cutAfter
)

type player struct {
	coins   int64
	potions int
	kept    map[string]string // replies of tagged commands, as the host keeps them
}

// conn is one client connection; pushes from other connections' commands
// are written under its lock too.
type conn struct {
	mu sync.Mutex
	c  net.Conn
}

func (c *conn) write(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(c.c, line)
}

// startGameServer serves on a new loopback port until stop is called.
// With withTickets, logins need a ticket minted with key.
func startGameServer(withTickets bool) (s *gameServer, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	s = &gameServer{ln: ln, players: map[uint64]*player{}, sessions: map[uint64][]*conn{}, cuts: map[cutAt]int{},
		conns: map[*conn]bool{}, waiters: map[int][]chan struct{}{}}
	if withTickets {
		if s.v, err = ticket.NewVerifier(key); err != nil {
			ln.Close()
			return nil, nil, err
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			cn := &conn{c: c}
			s.mu.Lock()
			s.conns[cn] = true
			s.mu.Unlock()
			go s.serve(cn)
		}
	}()
	return s, func() { ln.Close() }, nil
}

func (s *gameServer) addr() string { return s.ln.Addr().String() }

// coins is every player's coins, and their sum.
func (s *gameServer) coins() (map[uint64]int64, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[uint64]int64{}
	var total int64
	for id, p := range s.players {
		m[id] = p.coins
		total += p.coins
	}
	return m, total
}

func (s *gameServer) serve(c *conn) {
	defer c.c.Close()
	var id uint64
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.leave(id, c)
		delete(s.conns, c)
	}()
	sc := bufio.NewScanner(c.c)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		tag := ""
		if len(w) > 0 && strings.HasPrefix(w[0], "#") {
			tag, w = w[0], w[1:]
		}
		s.mu.Lock()
		reply, cut := s.tagged(c, &id, tag, w)
		s.mu.Unlock()
		if cut {
			return
		}
		if tag != "" {
			reply = tag + " " + reply
		}
		c.write(reply)
		if reply == "ok bye" {
			return
		}
	}
}

func (s *gameServer) leave(id uint64, c *conn) {
	list := s.sessions[id]
	for i, x := range list {
		if x == c {
			s.sessions[id] = append(list[:i], list[i+1:]...)
			return
		}
	}
}

// killAfterCommit arranges a host's kill -9 right after the next coin
// change commits: every connection is cut at once, with that change's
// reply never written and the commands waiting for the lock never run;
// then it serves again (restarted). The channel is closed once it happened.
func (s *gameServer) killAfterCommit() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killed = make(chan struct{})
	return s.killed
}

func (s *gameServer) kill() {
	for c := range s.conns {
		c.c.Close()
	}
	clear(s.conns)
	close(s.killed)
	s.killed = nil
}

// after returns a channel closed once n more commands ran.
func (s *gameServer) after(n int) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.waiters[s.commands+n] = append(s.waiters[s.commands+n], ch)
	return ch
}

// tagged is handle with the host's tags: a command a player already did
// under tag is answered with its reply and not run again (the retry of a
// command whose reply a cut lost).
func (s *gameServer) tagged(c *conn, id *uint64, tag string, w []string) (reply string, cut bool) {
	p := s.players[*id]
	if p != nil && tag != "" {
		if r, ok := p.kept[tag]; ok {
			return r, false
		}
	}
	reply, cut = s.handle(c, id, w)
	if p = s.players[*id]; p != nil && tag != "" && strings.HasPrefix(reply, "ok") && len(w) > 0 && w[0] != "login" {
		if p.kept == nil {
			p.kept = map[string]string{}
		}
		p.kept[tag] = reply // kept even when cut: the host records it inside the commit
	}
	return reply, cut
}

// handle runs one command under s.mu; cut means close without a reply.
func (s *gameServer) handle(c *conn, id *uint64, w []string) (reply string, cut bool) {
	if !s.conns[c] {
		return "", true // a connection the kill cut
	}
	s.commands++
	for _, ch := range s.waiters[s.commands] {
		close(ch)
	}
	delete(s.waiters, s.commands)
	switch {
	case len(w) == 0:
		return "err usage empty line", false
	case w[0] == "login":
		s.leave(*id, c)
		reply, *id = s.login(w[1:])
		if *id != 0 {
			s.sessions[*id] = append(s.sessions[*id], c)
		}
		return reply, false
	case w[0] == "quit":
		return "ok bye", false
	case *id == 0:
		return "err nologin log in first", false
	}
	at := noCut
	if s.cut != nil && changes(w[0]) {
		at = s.cut(w[0])
		s.cuts[at]++
	}
	if at == cutBefore {
		return "", true
	}
	p := s.players[*id]
	switch w[0] {
	case "work":
		p.coins += 10
		reply = fmt.Sprintf("ok coins %d level 0 v1", p.coins)
	case "balance":
		reply = fmt.Sprintf("ok coins %d xp 0 level 0", p.coins)
	case "whoami":
		reply = fmt.Sprintf("ok player %d name  coins %d level 0 logins 1", *id, p.coins)
	case "buy":
		reply = s.buy(p, w[1:])
	case "give", "trade":
		reply = s.move(*id, p, w, at == cutAfter)
	default:
		reply = "err unknown no command " + w[0]
	}
	if s.killed != nil && changes(w[0]) && strings.HasPrefix(reply, "ok") {
		s.kill()
		return reply, true // committed, never written
	}
	return reply, at == cutAfter
}

// changes reports whether verb may change coins.
func changes(verb string) bool {
	return verb == "work" || verb == "buy" || verb == "give" || verb == "trade"
}

func (s *gameServer) buy(p *player, args []string) string {
	if len(args) != 1 || args[0] != "potion" {
		return "err item no such item"
	}
	if p.coins < 5 {
		return fmt.Sprintf("err funds potion costs 5, you have %d", p.coins)
	}
	p.coins -= 5
	p.potions++
	return fmt.Sprintf("ok bought potion for 5 coins %d", p.coins)
}

// move is give and trade, as plugins/market answers them.
func (s *gameServer) move(from uint64, p *player, w []string, cut bool) string {
	if len(w) < 3 {
		return "err usage " + w[0] + " <player> ..."
	}
	to, err := strconv.ParseUint(w[1], 10, 64)
	q, ok := s.players[to]
	if err != nil || !ok || to == from {
		return fmt.Sprintf("err player no player %q", w[1])
	}
	n, err := strconv.ParseInt(w[len(w)-1], 10, 64)
	if err != nil || n <= 0 {
		return "err usage amount"
	}
	if w[0] == "give" {
		if p.coins < n {
			return fmt.Sprintf("err funds you have %d coins, not %d", p.coins, n)
		}
		p.coins -= n
		if !(cut && s.halfOnCut) {
			q.coins += n + s.leak
		}
		s.push(to, fmt.Sprintf("push you received %d coins from %d", n, from))
		return fmt.Sprintf("ok gave %d coins to %d; coins %d", n, to, p.coins)
	}
	if p.potions == 0 {
		return "err item you have no potion"
	}
	if q.coins < n {
		return fmt.Sprintf("err funds player %d has %d coins, not %d", to, q.coins, n)
	}
	p.potions--
	q.potions++
	q.coins -= n
	p.coins += n
	s.push(to, fmt.Sprintf("push you bought potion from %d for %d coins", from, n))
	return fmt.Sprintf("ok sold potion to %d for %d coins; coins %d", to, n, p.coins)
}

// push writes to every session of player to, after the commit.
func (s *gameServer) push(to uint64, line string) {
	for _, c := range s.sessions[to] {
		go c.write(line)
	}
}

// login checks `login <id> [<ticket>]` at the wall clock, as the host
// will, and creates the player at its first login.
func (s *gameServer) login(args []string) (string, uint64) {
	s.logins++
	if len(args) == 0 {
		return "err usage login <player-id> <ticket>", 0
	}
	id, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil {
		return "err usage " + err.Error(), 0
	}
	if s.v != nil {
		tk := ""
		if len(args) > 1 {
			tk = args[1]
		}
		if err := s.v.Verify(tk, id, time.Now()); err != nil {
			s.refusals = append(s.refusals, err.Error())
			return "err auth " + err.Error(), 0
		}
	}
	if s.players[id] == nil {
		s.players[id] = &player{}
	}
	return "ok welcome", id
}
