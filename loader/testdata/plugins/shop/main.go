// shop is a second module, versioned independently of coin.
package main

import "github.com/hothost/hothost/abi"

var Module = abi.Module{
	Name:     "shop",
	Version:  version,
	ABI:      ">= 1.0",
	Handlers: map[string]abi.Handler{"buy": buy},
}

func buy(c *abi.Call) error {
	c.Reply("shop %s", version)
	return nil
}
