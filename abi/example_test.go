package abi_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/hothost/hothost/abi"
)

type player struct{ Coins int64 }

// A plugin's main package exports a Module; the host calls its handlers
// with a Call whose State is the player's private copy.
func ExampleModule() {
	work := func(c *abi.Call) error {
		p := c.State.(*player)
		if len(c.Args) > 0 {
			return abi.Fail("args", "work takes no arguments, got %d", len(c.Args))
		}
		p.Coins += 10
		c.Reply("coins %d", p.Coins)
		return nil
	}
	m := abi.Module{Name: "coin", Version: "1.0.0", ABI: ">= 1.0, < 2.0",
		Handlers: map[string]abi.Handler{"work": work}}

	p := &player{Coins: 5}
	c := &abi.Call{Player: 7, Msg: "work", State: p}
	if err := m.Handlers["work"](c); err != nil {
		fmt.Println("err", err)
	}
	fmt.Println(c.ReplyText())

	c = &abi.Call{Player: 7, Msg: "work", Args: []string{"hard"}, State: p}
	err := m.Handlers["work"](c)
	var ae *abi.Error
	fmt.Println(errors.As(err, &ae), ae.Code)
	// Output:
	// coins 15
	// true args
}

// A repair plugin's main package exports a Fix: Select picks the players
// it is for, Apply changes one player's private copy. The host runs it
// through the admin API (dry run, apply, undo); here it is called by hand.
func ExampleFix() {
	fix := abi.Fix{Name: "coinfix", Version: "1.0.0", ABI: ">= 1.1, < 2.0",
		Doc:    "build 4.2.0 paid 10x coins: divide by 10 above 10,000",
		Select: func(c *abi.Call) bool { return c.State.(*player).Coins > 10_000 },
		Apply: func(c *abi.Call) error {
			c.State.(*player).Coins /= 10
			return nil
		}}

	for _, p := range []*player{{Coins: 52_000}, {Coins: 900}} {
		c := &abi.Call{Player: 7, State: p}
		if fix.Select(c) {
			if err := fix.Apply(c); err != nil {
				fmt.Println("err", err)
			}
		}
		fmt.Println(p.Coins)
	}
	// Output:
	// 5200
	// 900
}

// memTimers is a Scheduler for calling handlers by hand, as a plugin's own
// tests do; the host's keeps timers with the player's state.
type memTimers struct {
	next    uint64
	pending map[uint64]string
}

func (m *memTimers) At(player uint64, due time.Time, msg, args string) (uint64, error) {
	m.next++
	m.pending[m.next] = fmt.Sprintf("%s %q for %d at %s", msg, args, player, due.Format(time.TimeOnly))
	return m.next, nil
}

func (m *memTimers) Cancel(player, id uint64) error {
	if _, ok := m.pending[id]; !ok {
		return abi.ErrTimerGone
	}
	delete(m.pending, id)
	return nil
}

// A handler schedules a message for later with After; the host calls that
// message's handler when it is due, with Timer() set. A message meant only
// for timers refuses a client's call.
func ExampleCall_After() {
	build := func(c *abi.Call) error {
		p := c.State.(*player)
		if p.Coins < 100 {
			return abi.Fail("funds", "a house costs 100")
		}
		if _, err := c.After(c.Player, 30*time.Second, "house_built", "oak"); err != nil {
			return abi.Fail("busy", "cannot build now: %v", err)
		}
		p.Coins -= 100 // committed with the timer, or neither is
		c.Reply("building, ready in 30s")
		return nil
	}
	built := func(c *abi.Call) error {
		t, ok := c.Timer()
		if !ok {
			return abi.Fail("usage", "house_built is sent by the server")
		}
		c.Tell(c.Player, "your %s house is built (timer %d)", c.Args[0], t.ID)
		return nil
	}

	timers := &memTimers{pending: map[uint64]string{}}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	c := &abi.Call{Player: 7, Msg: "build", Now: now, State: &player{Coins: 150}}
	c.SetScheduler(timers)
	if err := build(c); err != nil {
		fmt.Println("err", err)
	}
	fmt.Println(c.ReplyText(), "|", timers.pending[1])

	// What the host does when the timer is due:
	fire := &abi.Call{Player: 7, Msg: "house_built", Args: []string{"oak"}, Now: now.Add(30 * time.Second)}
	fire.SetTimer(abi.Timer{ID: 1, Due: now.Add(30 * time.Second)})
	built(fire)
	fmt.Println(fire.Pushes()[0].Text)

	// A client sending the message itself is refused.
	err := built(&abi.Call{Player: 7, Msg: "house_built", Args: []string{"oak"}})
	fmt.Println(err)

	// Cancel takes the id After returned.
	c.Cancel(7, 1)
	fmt.Println(errors.Is(c.Cancel(7, 1), abi.ErrTimerGone))
	// Output:
	// building, ready in 30s | house_built "oak" for 7 at 12:00:30
	// your oak house is built (timer 1)
	// usage: house_built is sent by the server
	// true
}
