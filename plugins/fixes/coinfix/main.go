// Command coinfix is the example game's repair plugin for "build 4.2.0 paid
// 10x coins": every player holding more than Threshold coins gets a tenth
// of them back. It is a Fix, not a Module: the host runs it through
// `hotctl fix dry-run` and `hotctl fix apply`, never for a client message.
//
//	hhbuild -src plugins/fixes/coinfix -name coinfix -version 1.0.0 -out data/fixes -like bin/hothost
//	hotctl fix dry-run coinfix-1.0.0.so
package main

import (
	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/plugins/game"
)

// Threshold is the most coins a player could hold honestly when the bad
// build ran: the ones above it got 10x.
const Threshold = 10_000

// Fix is the descriptor the host looks up.
var Fix = abi.Fix{
	Name:     "coinfix",
	Version:  "1.0.0",
	ABI:      ">= 1.1, < 2.0",
	Doc:      "build 4.2.0 paid 10x coins: divide the coins of players above 10,000 by 10",
	Select:   selected,
	Apply:    apply,
	SelfTest: selfTest,
}

func selected(c *abi.Call) bool { return c.State.(*game.Player).Coins > Threshold }

func apply(c *abi.Call) error {
	p := c.State.(*game.Player)
	p.Coins /= 10
	c.Reply("coins %d", p.Coins)
	return nil
}

func selfTest() error {
	p := &game.Player{Coins: 52_000}
	c := &abi.Call{State: p}
	if !selected(c) {
		return abi.Fail("selftest", "52,000 coins not selected")
	}
	if err := apply(c); err != nil || p.Coins != 5_200 {
		return abi.Fail("selftest", "52,000 coins became %d (err %v), want 5,200", p.Coins, err)
	}
	if selected(&abi.Call{State: &game.Player{Coins: Threshold}}) {
		return abi.Fail("selftest", "a player at the threshold was selected")
	}
	return nil
}

func main() {}
