package main

import "time"

import "github.com/hothost/hothost/abi"

var Module = abi.Module{
	Name:     "coin",
	Version:  version,
	ABI:      ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{"work": func(c *abi.Call) error { return nil }},
}

// init never returns (sleeping, so the runtime sees no deadlock).
func init() {
	for {
		time.Sleep(time.Hour)
	}
}
