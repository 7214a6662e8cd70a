// abirange needs an ABI this host does not have.
package main

import "github.com/hothost/hothost/abi"

var Module = abi.Module{
	Name:     "coin",
	Version:  version,
	ABI:      ">= 2.0, < 3.0",
	Handlers: map[string]abi.Handler{"work": func(c *abi.Call) error { return nil }},
}
