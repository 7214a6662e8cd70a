package main

import "os"

import "github.com/hothost/hothost/abi"

var Module = abi.Module{
	Name:     "coin",
	Version:  version,
	ABI:      ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{"work": func(c *abi.Call) error { return nil }},
}

// init exits the process that opens the plugin.
func init() { os.Exit(3) }
