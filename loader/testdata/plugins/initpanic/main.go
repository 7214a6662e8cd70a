package main

import "github.com/hothost/hothost/abi"

var Module = abi.Module{
	Name:     "coin",
	Version:  version,
	ABI:      ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{"work": func(c *abi.Call) error { return nil }},
}

// init panics: opening this plugin kills the process that opens it.
func init() { panic("boom: initpanic's init") }
