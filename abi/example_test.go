package abi_test

import (
	"errors"
	"fmt"

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
