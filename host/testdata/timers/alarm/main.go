// Command alarm (timer tests) schedules any message for its caller and
// handles timers that succeed, fail, panic or hang, for the host's timer
// tests. The coins of game.Player count the timers that took effect.
package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/plugins/game"
)

// Module is the descriptor the host loads.
var Module = abi.Module{
	Name:    "alarm",
	Version: "1.0.0",
	ABI:     ">= 1.2, < 2.0",
	Handlers: map[string]abi.Handler{
		"alarm":  alarm,
		"cancel": cancel,
		"ring":   ring,
		"fail":   fail,
		"boom":   boom,
		"stall":  stall,
	},
}

// alarm <ms> <msg> [args...]: schedule msg with args in ms milliseconds.
func alarm(c *abi.Call) error {
	if len(c.Args) < 2 {
		return abi.Fail("usage", "alarm <ms> <msg> [args...]")
	}
	ms, err := strconv.ParseInt(c.Args[0], 10, 64)
	if err != nil {
		return abi.Fail("usage", "ms %q: %v", c.Args[0], err)
	}
	id, err := c.After(c.Player, time.Duration(ms)*time.Millisecond, c.Args[1], c.Args[2:]...)
	if err != nil {
		return abi.Fail("timer", "%v", err)
	}
	c.Reply("alarm %d", id)
	return nil
}

// cancel <id>: cancel a pending timer of the caller.
func cancel(c *abi.Call) error {
	if len(c.Args) != 1 {
		return abi.Fail("usage", "cancel <id>")
	}
	id, err := strconv.ParseUint(c.Args[0], 10, 64)
	if err != nil {
		return abi.Fail("usage", "id %q: %v", c.Args[0], err)
	}
	if err := c.Cancel(c.Player, id); err != nil {
		return abi.Fail("timer", "%v", err)
	}
	c.Reply("cancelled %d", id)
	return nil
}

func timerOnly(c *abi.Call) (abi.Timer, error) {
	t, ok := c.Timer()
	if !ok {
		return t, abi.Fail("usage", "%s is sent by timers only", c.Msg)
	}
	return t, nil
}

// ring: one coin, and a push naming the args and the due time in Unix
// nanoseconds (so a client can measure the lag).
func ring(c *abi.Call) error {
	t, err := timerOnly(c)
	if err != nil {
		return err
	}
	c.State.(*game.Player).Coins++
	c.Tell(c.Player, "ring %s due %d", strings.Join(c.Args, " "), t.Due.UnixNano())
	return nil
}

// fail changes the player, then refuses: the change must not commit.
func fail(c *abi.Call) error {
	if _, err := timerOnly(c); err != nil {
		return err
	}
	c.State.(*game.Player).Coins += 1000
	c.Tell(c.Player, "fail was committed")
	return abi.Fail("broken", "fail refuses on purpose")
}

// boom panics.
func boom(c *abi.Call) error {
	if _, err := timerOnly(c); err != nil {
		return err
	}
	c.State.(*game.Player).Coins += 1000
	panic(fmt.Sprintf("boom for player %d", c.Player))
}

// stall never returns in time: the watchdog fences it.
func stall(c *abi.Call) error {
	if _, err := timerOnly(c); err != nil {
		return err
	}
	c.State.(*game.Player).Coins += 1000
	time.Sleep(time.Hour)
	return nil
}

func main() {}
