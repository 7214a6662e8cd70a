// Command market is the example game's trading module: `give` hands coins
// to another player and `trade` sells an item to one, each a transaction
// across both players (abi.Module.Others) that commits for both or for
// neither, and tells the other player with a push.
package main

import (
	"strconv"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/plugins/game"
)

// Module is the descriptor the host loads.
var Module = abi.Module{
	Name:    "market",
	Version: "1.0.0",
	ABI:     ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{
		"give":  give,
		"trade": trade,
	},
	Others: map[string]func(*abi.Call) ([]uint64, error){
		"give":  target,
		"trade": target,
	},
	Usage: map[string]string{
		"give":  "give <player> <coins>: hand coins to another player",
		"trade": "trade <player> <item> <price>: sell one item to another player for coins they pay",
	},
}

// target is the other player: the first argument.
func target(c *abi.Call) ([]uint64, error) {
	if len(c.Args) == 0 {
		return nil, abi.Fail("usage", "%s <player> ...", c.Msg)
	}
	to, err := strconv.ParseUint(c.Args[0], 10, 64)
	if err != nil || to == 0 {
		return nil, abi.Fail("usage", "player %q must be a decimal id", c.Args[0])
	}
	if to == c.Player {
		return nil, abi.Fail("usage", "%s needs another player", c.Msg)
	}
	return []uint64{to}, nil
}

func amount(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, abi.Fail("usage", "%q must be a positive number of coins", s)
	}
	return n, nil
}

func give(c *abi.Call) error {
	if len(c.Args) != 2 {
		return abi.Fail("usage", "give <player> <coins>")
	}
	to, _ := target(c)
	n, err := amount(c.Args[1])
	if err != nil {
		return err
	}
	p, q := c.State.(*game.Player), c.Other(to[0]).(*game.Player)
	if p.Coins < n {
		return abi.Fail("funds", "you have %d coins, not %d", p.Coins, n)
	}
	p.Coins -= n
	q.Coins += n
	c.Tell(to[0], "you received %d coins from %d", n, c.Player)
	c.Reply("gave %d coins to %d; coins %d", n, to[0], p.Coins)
	return nil
}

func trade(c *abi.Call) error {
	if len(c.Args) != 3 {
		return abi.Fail("usage", "trade <player> <item> <price>")
	}
	to, _ := target(c)
	price, err := amount(c.Args[2])
	if err != nil {
		return err
	}
	cfg := c.Config.(*game.Config)
	it, ok := cfg.Items[c.Args[1]]
	if !ok {
		return abi.Fail("item", "no item %q", c.Args[1])
	}
	p, q := c.State.(*game.Player), c.Other(to[0]).(*game.Player)
	if !p.Remove(it.ID, 1) {
		return abi.Fail("item", "you have no %s", c.Args[1])
	}
	if q.Coins < price {
		return abi.Fail("funds", "player %d has %d coins, not %d", to[0], q.Coins, price)
	}
	if err := q.Add(it.ID, 1); err != nil {
		return abi.Fail("inventory", "player %d: %v", to[0], err)
	}
	q.Coins -= price
	p.Coins += price
	c.Tell(to[0], "you bought %s from %d for %d coins", c.Args[1], c.Player, price)
	c.Reply("sold %s to %d for %d coins; coins %d", c.Args[1], to[0], price, p.Coins)
	return nil
}

func main() {}
