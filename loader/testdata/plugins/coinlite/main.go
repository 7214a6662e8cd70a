// coinlite is a coin version that handles work but drops echo: the poller
// must not make it active on its own, since echo would start failing.
package main

import "github.com/hothost/hothost/abi"

var Module = abi.Module{
	Name:     "coin",
	Version:  version,
	ABI:      ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{"work": work},
}

func work(c *abi.Call) error {
	c.Reply("%s", version)
	return nil
}
