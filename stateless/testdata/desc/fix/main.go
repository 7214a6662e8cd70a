package main

import "github.com/hothost/hothost/abi"

var Fix = abi.Fix{Name: "coinfix", Version: "1.0.0", Apply: apply}

func init() {
	Fix.Version = "1.0.2"
}

func apply(c *abi.Call) error { return nil }

func main() {}
