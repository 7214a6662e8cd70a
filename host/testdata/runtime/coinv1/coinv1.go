// Package coinv1 is coin v1's handlers (plugins/coin/v1), shared by the
// runtime corpus so that each case's main package holds only its
// misbehaving work handler. Like any package shared by several plugin
// versions it must not change once a host has loaded it ("plugin was built
// with a different version of package ..."), and it is not plugin code of
// any case: it lies outside their folders, so the vet does not check it.
package coinv1

import (
	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/plugins/game"
)

// Work is coin v1's work: earns WorkReward coins and 10 XP.
func Work(c *abi.Call) error {
	p, cfg := c.State.(*game.Player), c.Config.(*game.Config)
	if len(c.Args) != 0 {
		return abi.Fail("usage", "work takes no arguments")
	}
	p.Coins += cfg.WorkReward
	p.XP += 10
	for p.XP >= int64(p.Level+1)*cfg.XPPerLevel {
		p.Level++
	}
	c.Reply("coins %d level %d v1", p.Coins, p.Level)
	return nil
}

// Balance is coin v1's balance.
func Balance(c *abi.Call) error {
	p := c.State.(*game.Player)
	c.Reply("coins %d xp %d level %d", p.Coins, p.XP, p.Level)
	return nil
}

// SelfTest runs coin v1's handlers, never a case's work: every case must
// pass preflight and become active, so that the host meets its fault at
// run time.
func SelfTest() error {
	cfg := game.DefaultConfig()
	p := &game.Player{Coins: 3}
	c := &abi.Call{State: p, Config: &cfg}
	if err := Work(c); err != nil || p.Coins != 3+cfg.WorkReward {
		return abi.Fail("selftest", "work earned %d, want %d (err %v)", p.Coins-3, cfg.WorkReward, err)
	}
	if err := Balance(c); err != nil {
		return abi.Fail("selftest", "balance: %v", err)
	}
	return nil
}
