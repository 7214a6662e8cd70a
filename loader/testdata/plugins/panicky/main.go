// panicky passes every check, then its handler panics on every call.
package main

import "github.com/hothost/hothost/abi"

var Module = abi.Module{
	Name:    "coin",
	Version: version,
	ABI:     ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{
		"work": func(c *abi.Call) error { panic("panicky work " + version) },
		"echo": func(c *abi.Call) error { panic("panicky echo " + version) },
	},
}
