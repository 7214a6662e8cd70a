// Command hangfix is a test repair whose Apply never returns for player
// 3003, as a buggy fix's might: the host must give up on that player,
// commit nothing of it and keep serving.
package main

import (
	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/plugins/game"
)

// Fix is the descriptor the host looks up.
var Fix = abi.Fix{
	Name:    "hangfix",
	Version: "1.0.0",
	ABI:     ">= 1.1, < 2.0",
	Apply:   apply,
}

func apply(c *abi.Call) error {
	if c.Player == 3003 {
		select {}
	}
	c.State.(*game.Player).Coins /= 10
	return nil
}

func main() {}
