// fixself is a repair plugin whose self-test fails.
package main

import (
	"errors"

	"github.com/hothost/hothost/abi"
)

var Fix = abi.Fix{
	Name:     "coinfix",
	Version:  version,
	ABI:      ">= 1.1, < 2.0",
	Apply:    func(c *abi.Call) error { return nil },
	SelfTest: func() error { return errors.New("the fix would zero every wallet") },
}

func main() {}
