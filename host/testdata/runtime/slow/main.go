// Command coin (runtime corpus: slow) is coin v1 whose work sleeps 3s, then
// succeeds: just over the host's default 2s handler deadline. A host that
// fenced the call must not commit what it then writes. The vet lets it
// through.
package main

import (
	"time"

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

// delay is just over hothost's default -handler-timeout of 2s.
const delay = 3 * time.Second

func work(c *abi.Call) error {
	time.Sleep(delay)
	return coinv1.Work(c)
}

func main() {}
