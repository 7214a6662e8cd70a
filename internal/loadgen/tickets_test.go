package loadgen_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hothost/hothost/internal/loadgen"
	"github.com/hothost/hothost/ticket"
)

// ticketServer is a gameServer that wants tickets, closed after t.
func ticketServer(t *testing.T) *gameServer {
	t.Helper()
	s, stop, err := startGameServer(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return s
}

func TestLoadWithTickets(t *testing.T) {
	s := ticketServer(t)
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
	// The two workers share the request budget: one may spend it before
	// the other reached its last player.
	known := 0
	for _, a := range res.Accounts {
		if a.Known {
			known++
		}
	}
	ck := loadgen.Verify(context.Background(), s.addr(), res, 5*time.Second)
	if !ck.OK() || known < 2 || ck.Players != known || ck.Exact != known {
		t.Fatalf("verify: %s %v", ck, ck.Violations)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Each session logs in, then Verify once per player; every login was
	// accepted, so each carried a good ticket for its own player.
	if len(s.refusals) != 0 || s.logins < 2*known {
		t.Fatalf("%d logins, refused: %q", s.logins, s.refusals)
	}
}

// Without tickets a host that wants them refuses each worker once: a
// refusal is final, the worker does not redial it for the whole Reconnect
// window.
func TestLoadWithoutTicketsIsRefused(t *testing.T) {
	s := ticketServer(t)
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
	s := ticketServer(t)
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
