// Command coin (runtime corpus: mapwrites) is coin v1 whose work starts two
// goroutines writing one map without a lock and waits for them. The Go
// runtime stops the host with "fatal error: concurrent map writes" (no
// recover catches it), usually within microseconds on two or more CPUs; on
// one CPU it takes until a preemption lands inside a write. The frames of
// the writing goroutines are this plugin's. The vet refuses it for the go
// statement.
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
	counts := map[int]int{}
	done := make(chan struct{})
	for range 2 {
		go func() {
			for i := 0; ; i++ {
				counts[i%64] = i
			}
		}()
	}
	<-done // never closed: the writers run until the runtime stops them
	return coinv1.Work(c)
}

func main() {}
