// Command coin (runtime corpus: overflow) is coin v1 whose work recurses
// without end, until the Go runtime stops the host with "fatal error: stack
// overflow" (which no recover catches). The frames on the dying goroutine
// are this plugin's. It takes about 1 GB of stack and some seconds at Go's
// default limit; a host that lowers it (debug.SetMaxStack) dies sooner. The
// vet lets it through: unbounded recursion is not something it can see.
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
	c.Reply("depth %d", deeper(1))
	return coinv1.Work(c)
}

// deeper never returns: each call needs the next one's result.
func deeper(n int) int { return deeper(n+1) + 1 }

func main() {}
