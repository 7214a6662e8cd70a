package loadgen_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hothost/hothost/internal/loadgen"
	"github.com/hothost/hothost/ticket"
)

var key = []byte("the key a test host shares, 32 b")

// coinServer is a stand-in for the example game on real TCP, enough for the
// ledger: login with a ticket checked by the ticket package, `work` (+10
// coins, v1), `balance`, `quit`. The host's own gateway is tested against
// the real host in host/.
type coinServer struct {
	ln net.Listener
	v  *ticket.Verifier

	mu       sync.Mutex
	coins    map[uint64]int64
	logins   int
	refusals []string
}

func newCoinServer(t *testing.T) *coinServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	v, err := ticket.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	s := &coinServer{ln: ln, v: v, coins: map[uint64]int64{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *coinServer) addr() string { return s.ln.Addr().String() }

func (s *coinServer) serve(c net.Conn) {
	defer c.Close()
	var player uint64
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		s.mu.Lock()
		var reply string
		switch {
		case len(w) == 0:
			reply = "err usage empty line"
		case w[0] == "login":
			reply, player = s.login(w[1:])
		case w[0] == "quit":
			reply = "ok bye"
		case player == 0:
			reply = "err nologin log in first"
		case w[0] == "work":
			s.coins[player] += 10
			reply = fmt.Sprintf("ok coins %d v1", s.coins[player])
		case w[0] == "balance":
			reply = fmt.Sprintf("ok coins %d", s.coins[player])
		default:
			reply = "err unknown " + w[0]
		}
		s.mu.Unlock()
		fmt.Fprintln(c, reply)
		if reply == "ok bye" {
			return
		}
	}
}

// login checks `login <id> <ticket>` at the wall clock, as the host will.
func (s *coinServer) login(args []string) (string, uint64) {
	s.logins++
	if len(args) == 0 {
		return "err usage login <player-id> <ticket>", 0
	}
	id, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil {
		return "err usage " + err.Error(), 0
	}
	tk := ""
	if len(args) > 1 {
		tk = args[1]
	}
	if err := s.v.Verify(tk, id, time.Now()); err != nil {
		s.refusals = append(s.refusals, err.Error())
		return "err auth " + err.Error(), 0
	}
	return "ok welcome", id
}

func TestLoadWithTickets(t *testing.T) {
	s := newCoinServer(t)
	res, err := loadgen.Run(context.Background(), loadgen.Config{
		Addr: s.addr, Conns: 2, Players: 6, Session: 7, Requests: 200, Seed: 1,
		Mix:     []loadgen.Weighted{{Cmd: "work", Weight: 3}, {Cmd: "balance", Weight: 1}},
		Tickets: loadgen.KeyTickets(key, time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 0 || len(res.Violations) != 0 || res.OK != 200 {
		t.Fatalf("run: %s", res.Summary())
	}
	ck := loadgen.Verify(context.Background(), s.addr(), res, 5*time.Second)
	if !ck.OK() || ck.Players != 6 || ck.Exact != 6 {
		t.Fatalf("verify: %s %v", ck, ck.Violations)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Each session logs in, then Verify once per player; every login was
	// accepted, so each carried a good ticket for its own player.
	if len(s.refusals) != 0 || s.logins < 6+6 {
		t.Fatalf("%d logins, refused: %q", s.logins, s.refusals)
	}
}

// Without tickets a host that wants them refuses each worker once: a
// refusal is final, the worker does not redial it for the whole Reconnect
// window.
func TestLoadWithoutTicketsIsRefused(t *testing.T) {
	s := newCoinServer(t)
	res, err := loadgen.Run(context.Background(), loadgen.Config{
		Addr: s.addr, Conns: 3, Duration: time.Minute, Reconnect: time.Hour, // ends at once unless it redials
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 3 || res.Codes["dial"] != 3 || !strings.Contains(res.Examples["dial"], "err auth no ticket") {
		t.Fatalf("want 3 refused logins: %s", res.Summary())
	}
	s.mu.Lock()
	logins := s.logins
	s.mu.Unlock()
	if logins != 3 {
		t.Fatalf("%d login attempts, want one per worker", logins)
	}
	if _, err := loadgen.Balance(context.Background(), s.addr(), 1, 5*time.Second); err == nil || !strings.Contains(err.Error(), "err auth") {
		t.Fatalf("Balance without a ticket: %v", err)
	}
}

func TestStartRefusesTicketsThatCannotMint(t *testing.T) {
	s := newCoinServer(t)
	for _, tickets := range []loadgen.Tickets{
		loadgen.KeyTickets(key[:16], time.Hour),
		loadgen.KeyTickets(key, time.Millisecond),
	} {
		if _, err := loadgen.Start(context.Background(), loadgen.Config{Addr: s.addr, Conns: 1, Requests: 1, Tickets: tickets}); err == nil ||
			!strings.HasPrefix(err.Error(), "loadgen: tickets: ticket") {
			t.Errorf("Start = %v, want the minting error", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logins != 0 {
		t.Fatalf("%d logins reached the server", s.logins)
	}
}

func ExampleKeyTickets() {
	// The host's key, as ticket.LoadKey reads it from <data>/ticket.key.
	key := []byte("the key a test host shares, 32 b")
	tickets := loadgen.KeyTickets(key, time.Hour)
	// loadgen.Config{..., Tickets: tickets} logs every session in with one.
	tk, err := tickets(42)
	if err != nil {
		fmt.Println(err)
		return
	}
	v, _ := ticket.NewVerifier(key)
	fmt.Println(v.Verify(tk, 42, time.Now()))
	// Output: <nil>
}
