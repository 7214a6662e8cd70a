package main

import "github.com/hothost/hothost/abi"

const threshold = 10_000

var Fix = abi.Fix{
	Name:    "coinfix",
	Version: "1.0.0",
	ABI:     ">= 1.1, < 2.0",
	Select:  func(c *abi.Call) bool { return true },
	Apply:   apply,
}

func init() {
	Fix.Doc = "divide coins by 10 above the threshold"
}

func apply(c *abi.Call) error { return nil }
