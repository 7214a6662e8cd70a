// Package main is a plugin whose tree holds helper packages: they are
// checked; shared, outside the plugin's folder, is not.
package main

import (
	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/stateless/testdata/tree/plugin/helper"
	"github.com/hothost/hothost/stateless/testdata/tree/shared"
)

var Module = abi.Module{
	Name:     "coin",
	Version:  version,
	ABI:      ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{"work": work},
}

var calls int

func work(c *abi.Call) error {
	calls++
	c.Reply("%d %d", helper.Double(shared.Reward), calls)
	return nil
}

func main() {}
