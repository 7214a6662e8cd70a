package client_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hothost/hothost/client"
	"github.com/hothost/hothost/ticket"
)

var (
	key = []byte("the key a test host shares, 32 b")
	t0  = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
)

// gateway is a line server on real TCP that checks logins the way the host
// does: `login <id> <ticket>`, verified with the ticket package. It answers
// `ping` too, and sends every line it read to lines.
func gateway(lines chan<- string) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	v, err := ticket.NewVerifier(key)
	if err != nil {
		return "", nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if lines != nil {
						lines <- sc.Text()
					}
					// The reply carries the request's tag (`#t1 ping` -> `#t1 ok pong`).
					line, tag := sc.Text(), ""
					if t, ok := strings.CutPrefix(line, "#"); ok {
						tag, line, _ = strings.Cut(t, " ")
						tag = "#" + tag + " "
					}
					fmt.Fprintln(c, tag+answer(v, line))
				}
			}()
		}
	}()
	return ln.Addr().String(), func() { ln.Close() }, nil
}

func answer(v *ticket.Verifier, line string) string {
	w := strings.Fields(line)
	switch {
	case len(w) == 1 && w[0] == "ping":
		return "ok pong"
	case len(w) < 2 || len(w) > 3 || w[0] != "login":
		return "err usage login <player-id> <ticket>"
	}
	id, err := strconv.ParseUint(w[1], 10, 64)
	if err != nil {
		return "err usage " + err.Error()
	}
	tk := ""
	if len(w) == 3 {
		tk = w[2]
	}
	if err := v.Verify(tk, id, t0); err != nil {
		return "err auth " + err.Error()
	}
	return "ok welcome player " + w[1]
}

func TestLoginTicket(t *testing.T) {
	lines := make(chan string, 16)
	addr, stop, err := gateway(lines)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	c, err := client.Dial(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	tk, err := ticket.Mint(key, 42, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.LoginTicket(43, tk); err == nil || r.Code != "auth" || !strings.Contains(err.Error(), "another player") {
		t.Fatalf("login 43 with 42's ticket: %v, %v", r, err)
	}
	if got := <-lines; got != "#"+c.LastTag()+" login 43 "+tk {
		t.Fatalf("server read %q", got)
	}
	if r, err := c.LoginTicket(42, tk); err != nil || r.Text != "welcome player 42" {
		t.Fatalf("login 42: %v, %v", r, err)
	}
	<-lines
	if r, err := c.Login(42); err == nil || r.Code != "auth" || !strings.Contains(err.Error(), "no ticket") {
		t.Fatalf("login without a ticket: %v, %v", r, err)
	}
	<-lines

	// A ticket that would end the line or add words is never sent: the
	// next line the server reads is the ping.
	for _, bad := range []string{"", tk + "\nwork", tk + " extra", "a\tb", "a\rb", "a\x00b", "a\u00a0b", "a\u2028b"} {
		if _, err := c.LoginTicket(42, bad); !errors.Is(err, client.ErrTicket) || strings.Contains(err.Error(), tk) {
			t.Errorf("LoginTicket(%q) = %v, want ErrTicket without the ticket in it", bad, err)
		}
	}
	if r, err := c.Do("ping"); err != nil || !r.OK {
		t.Fatalf("ping: %v, %v", r, err)
	}
	if got := <-lines; got != "#"+c.LastTag()+" ping" {
		t.Fatalf("server read %q after the refused tickets, want ping", got)
	}
}

func ExampleConn_LoginTicket() {
	addr, stop, err := gateway(nil) // a stand-in for a host sharing key
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	c, err := client.Dial(addr, 5*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	tk, _ := ticket.Mint(key, 42, time.Hour, t0) // the account service's job
	_, err = c.LoginTicket(7, tk)
	fmt.Println(err)
	r, err := c.LoginTicket(42, tk)
	fmt.Println(r, err)
	// Output:
	// client: login 7: err auth ticket is for another player: it names player 42, not 7
	// ok welcome player 42 <nil>
}
