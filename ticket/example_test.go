package ticket_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hothost/hothost/ticket"
)

func ExampleMint() {
	key := []byte("an example key of 32 bytes, fine") // use LoadOrCreateKey
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tk, err := ticket.Mint(key, 42, time.Hour, now)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tk) // what a client sends: login 42 <ticket>
	// Output:
	// eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiIsImV4cCI6MTc5NTM1MjQwMCwiaWF0IjoxNzk1MzQ4ODAwfQ.xadFB3VZyQoxkGpkLYApqILlAA_383XMmnIIUG4Vbkc
}

func ExampleVerifier_Verify() {
	key := []byte("an example key of 32 bytes, fine")
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tk, _ := ticket.Mint(key, 42, time.Hour, now)
	v, err := ticket.NewVerifier(key)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(v.Verify(tk, 42, now.Add(time.Minute)))
	// A gateway branches on the reason and shows the whole error.
	for _, err := range []error{
		v.Verify(tk, 7, now),
		v.Verify(tk, 42, now.Add(2*time.Hour)),
		v.Verify("", 42, now),
	} {
		switch {
		case errors.Is(err, ticket.ErrExpired):
			fmt.Println("err auth expired:", err)
		case errors.Is(err, ticket.ErrOtherPlayer):
			fmt.Println("err auth player:", err)
		default:
			fmt.Println("err auth:", err)
		}
	}
	// Output:
	// <nil>
	// err auth player: ticket is for another player: it names player 42, not 7
	// err auth expired: ticket expired: exp was 2026-11-22T13:00:00Z
	// err auth: no ticket
}

func ExampleLoadOrCreateKey() {
	dir, _ := os.MkdirTemp("", "hothost-data-")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "ticket.key")
	for range 2 {
		key, created, err := ticket.LoadOrCreateKey(path)
		if err != nil {
			fmt.Println(err)
			return
		}
		st, _ := os.Stat(path)
		fmt.Println(len(key), "bytes, created:", created, "mode:", st.Mode())
	}
	os.Chmod(path, 0o644)
	_, _, err := ticket.LoadOrCreateKey(path)
	fmt.Println(errors.Is(err, ticket.ErrKey))
	// Output:
	// 32 bytes, created: true mode: -rw-------
	// 32 bytes, created: false mode: -rw-------
	// true
}

func ExampleLimiter() {
	l := ticket.NewLimiter(ticket.Limits{Burst: 2, Every: 5 * time.Second})
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for i := range 3 {
		ok, wait := l.Allow("198.51.100.7:40112", now)
		fmt.Println("attempt", i+1, ok, wait)
		if ok { // a wrong ticket
			l.Failed("198.51.100.7:40112", now)
		}
	}
	ok, _ := l.Allow("198.51.100.7:40999", now.Add(5*time.Second))
	fmt.Println("after 5s:", ok)
	// Output:
	// attempt 1 true 0s
	// attempt 2 true 0s
	// attempt 3 false 5s
	// after 5s: true
}
