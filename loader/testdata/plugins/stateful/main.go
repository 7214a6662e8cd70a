// A plugin that keeps a counter between calls: hhbuild must refuse it.
package main

import "github.com/hothost/hothost/abi"

var Module = abi.Module{
	Name:     "stateful",
	Version:  version,
	ABI:      ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{"count": count},
}

var calls int

func count(c *abi.Call) error {
	calls++
	c.Reply("calls %d", calls)
	return nil
}
