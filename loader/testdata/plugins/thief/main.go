// thief claims coin's message "work": a message belongs to one module.
package main

import "github.com/hothost/hothost/abi"

var Module = abi.Module{
	Name:     "thief",
	Version:  version,
	ABI:      ">= 1.0",
	Handlers: map[string]abi.Handler{"work": func(c *abi.Call) error { return nil }},
}
