// Command coin is the example game's economy module: `work` earns coins and
// experience, `balance` shows them. Version 1.
package main

import (
	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/plugins/game"
)

// Module is the descriptor the host loads.
var Module = abi.Module{
	Name:    "coin",
	Version: "3.0.5",
	ABI:     ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{
		"work":    work,
		"balance": balance,
	},
	Usage: map[string]string{
		"work":    "work: earn coins and experience",
		"balance": "balance: show coins, experience and level",
	},
	SelfTest: selfTest,
}

const multiplier = 1

func work(c *abi.Call) error {
	p, cfg := c.State.(*game.Player), c.Config.(*game.Config)
	if len(c.Args) != 0 {
		return abi.Fail("usage", "work takes no arguments")
	}
	p.Coins += cfg.WorkReward * multiplier
	p.XP += 10
	for p.XP >= int64(p.Level+1)*cfg.XPPerLevel {
		p.Level++
	}
	c.Reply("coins %d level %d v1", p.Coins, p.Level)
	return nil
}

func balance(c *abi.Call) error {
	p := c.State.(*game.Player)
	c.Reply("coins %d xp %d level %d", p.Coins, p.XP, p.Level)
	return nil
}

func selfTest() error {
	cfg := game.DefaultConfig()
	p := &game.Player{}
	if err := work(&abi.Call{State: p, Config: &cfg}); err != nil || p.Coins != cfg.WorkReward*multiplier {
		return abi.Fail("selftest", "work earned %d, want %d (err %v)", p.Coins, cfg.WorkReward*multiplier, err)
	}
	return nil
}

func main() {}
