// Command coin (runtime corpus: exit) is coin v1 whose work ends the host
// process with status 7, in the middle of a call and with no crash report.
// The vet refuses it: os.Exit ends the host process.
package main

import (
	"os"

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
	os.Exit(7)
	return coinv1.Work(c)
}

func main() {}
