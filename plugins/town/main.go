// Command town is the example game's building module: `build house` pays
// for a house now, and a timer finishes it later (game.Config.House says
// how much and how long). It shows abi.Call.After: the coins and the timer
// commit together, the timer survives swaps and restarts, and it fires
// once, on whichever version of town is active by then.
package main

import (
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/plugins/game"
)

// Module is the descriptor the host loads.
var Module = abi.Module{
	Name:    "town",
	Version: version,
	ABI:     ">= 1.2, < 2.0",
	Handlers: map[string]abi.Handler{
		"build":       build,
		"house_built": houseBuilt,
	},
	Usage: map[string]string{
		"build":       "build house: pay for a house now; it is built later and you are told",
		"house_built": "house_built: sent by the server when a house is finished",
	},
	SelfTest: selfTest,
}

func build(c *abi.Call) error {
	p, house := c.State.(*game.Player), c.Config.(*game.Config).House
	if len(c.Args) != 1 || c.Args[0] != "house" {
		return abi.Fail("usage", "build house")
	}
	if p.Coins < house.Price {
		return abi.Fail("funds", "a house costs %d, you have %d", house.Price, p.Coins)
	}
	took := time.Duration(house.Seconds * float64(time.Second))
	if _, err := c.After(c.Player, took, "house_built"); err != nil {
		return abi.Fail("busy", "cannot start building: %v", err)
	}
	p.Coins -= house.Price
	c.Reply("building a house for %d coins, ready in %v; coins %d", house.Price, took, p.Coins)
	return nil
}

// houseBuilt finishes a house. Only a timer sends it; a full inventory
// gets the coins back rather than losing the house.
func houseBuilt(c *abi.Call) error {
	if _, ok := c.Timer(); !ok {
		return abi.Fail("usage", "house_built is sent by the server when a house is finished")
	}
	p, house := c.State.(*game.Player), c.Config.(*game.Config).House
	if err := p.Add(house.ID, 1); err != nil {
		p.Coins += house.Price
		c.Tell(c.Player, "no room for your house (%v); %d coins refunded", err, house.Price)
		return nil
	}
	c.Tell(c.Player, "your house is built (town %s)", version)
	return nil
}

// selfTest builds a house on a private player with a scheduler that keeps
// the timer in memory, then fires it.
func selfTest() error {
	cfg := game.DefaultConfig()
	p := &game.Player{Coins: cfg.House.Price}
	c := &abi.Call{Player: 1, Msg: "build", Args: []string{"house"}, State: p, Config: &cfg}
	var sched oneTimer
	c.SetScheduler(&sched)
	if err := build(c); err != nil || p.Coins != 0 || sched.msg != "house_built" {
		return abi.Fail("selftest", "build: coins %d, timer %q, err %v", p.Coins, sched.msg, err)
	}
	fire := &abi.Call{Player: 1, Msg: sched.msg, State: p, Config: &cfg}
	fire.SetTimer(abi.Timer{ID: 1})
	if err := houseBuilt(fire); err != nil || len(fire.Pushes()) != 1 || cfg.ItemName(p.Inventory[0].Item) != "house" {
		return abi.Fail("selftest", "house_built: inventory %v, pushes %v, err %v", p.Inventory[0], fire.Pushes(), err)
	}
	return nil
}

// oneTimer is an abi.Scheduler holding one timer, for the self-test.
type oneTimer struct{ msg string }

func (o *oneTimer) At(_ uint64, _ time.Time, msg, _ string) (uint64, error) {
	o.msg = msg
	return 1, nil
}

func (o *oneTimer) Cancel(uint64, uint64) error { return abi.ErrTimerGone }

func main() {}
