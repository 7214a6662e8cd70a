// Command coin (runtime corpus: gopanic) is coin v1 whose work calls a
// helper package of its own tree, which runs a job on a new goroutine that
// panics (index out of range) while work waits for it. The host recovers
// panics on the call's goroutine only, so this one ends the process. The
// panicking frames are the helper's, whose import path is the same in every
// version: only the lane's marker (work still waits) names the version.
// The vet refuses it for the go statement in helper, a package of the
// plugin's tree (the vet once checked main alone and let it through).
package main

import (
	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/host/testdata/runtime/coinv1"
	"github.com/hothost/hothost/host/testdata/runtime/gopanic/helper"
)

// Module is coin with the same messages as coin v1; only work misbehaves.
var Module = abi.Module{
	Name:    "coin",
	Version: version,
	ABI:     ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{
		"work":    work,
		"balance": coinv1.Balance,
	},
	SelfTest: coinv1.SelfTest,
}

func work(c *abi.Call) error {
	c.Reply("sum %d", helper.Sum([]int64{1, 2, 3}))
	return coinv1.Work(c)
}

func main() {}
