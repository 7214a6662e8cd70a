// Command shop is the example game's shop module: `buy <item>` spends coins
// at the prices of the live config; `inventory` lists what a player holds.
package main

import (
	"fmt"
	"strings"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/plugins/game"
)

// Module is the descriptor the host loads.
var Module = abi.Module{
	Name:    "shop",
	Version: "1.0.0",
	ABI:     ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{
		"buy":       buy,
		"inventory": inventory,
	},
	Usage: map[string]string{
		"buy":       "buy <item>: spend coins on an item from the game's price list",
		"inventory": "inventory: list what you own",
	},
}

func buy(c *abi.Call) error {
	p, cfg := c.State.(*game.Player), c.Config.(*game.Config)
	if len(c.Args) != 1 {
		return abi.Fail("usage", "buy <item>")
	}
	it, ok := cfg.Items[c.Args[0]]
	if !ok {
		return abi.Fail("item", "no item %q for sale", c.Args[0])
	}
	if p.Coins < it.Price {
		return abi.Fail("funds", "%s costs %d, you have %d", c.Args[0], it.Price, p.Coins)
	}
	p.Coins -= it.Price
	if err := p.Add(it.ID, 1); err != nil {
		return abi.Fail("inventory", "%v", err)
	}
	c.Reply("bought %s for %d coins %d", c.Args[0], it.Price, p.Coins)
	return nil
}

func inventory(c *abi.Call) error {
	p, cfg := c.State.(*game.Player), c.Config.(*game.Config)
	var parts []string
	for _, s := range p.Inventory {
		if s.Count > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", cfg.ItemName(s.Item), s.Count))
		}
	}
	if len(parts) == 0 {
		c.Reply("inventory empty")
		return nil
	}
	c.Reply("inventory %s", strings.Join(parts, " "))
	return nil
}

func main() {}
