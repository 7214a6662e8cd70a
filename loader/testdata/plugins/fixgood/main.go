// fixgood is a repair plugin: it divides Coins by 10 above 100.
package main

import (
	"errors"

	"github.com/hothost/hothost/abi"
)

type wallet = struct{ Coins int64 }

var Fix = abi.Fix{
	Name:     "coinfix",
	Version:  version,
	ABI:      ">= 1.1, < 2.0",
	Doc:      "divide coins by 10 above 100",
	Select:   func(c *abi.Call) bool { return c.State.(*wallet).Coins > 100 },
	Apply:    apply,
	SelfTest: selfTest,
}

func apply(c *abi.Call) error {
	c.State.(*wallet).Coins /= 10
	return nil
}

func selfTest() error {
	w := &wallet{Coins: 520}
	if err := apply(&abi.Call{State: w}); err != nil || w.Coins != 52 {
		return errors.New("520 coins did not become 52")
	}
	return nil
}

func main() {}
