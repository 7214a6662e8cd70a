// Command coin (runtime corpus: hang) is coin v1 whose work never returns:
// an empty loop with no function call, so it never blocks, never yields and
// holds a CPU for as long as the process lives. Only Go's asynchronous
// preemption keeps it from stalling the garbage collector. (The other kind
// of hang, blocking on a channel that is never written, costs no CPU; this
// one is the harder case for a host.) The vet lets it through.
package main

import (
	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/host/testdata/runtime/coinv1"
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
	for {
	}
}

func main() {}
