// bench has the trivial handler of FIELD-NOTES' per-call table; the same
// function is compiled into the benchmark for the direct-call baseline.
package main

import "github.com/hothost/hothost/abi"

var Module = abi.Module{
	Name:     "bench",
	Version:  version,
	ABI:      ">= 1.0",
	Handlers: map[string]abi.Handler{"inc": inc},
}

func inc(c *abi.Call) error {
	*c.State.(*int64) += int64(len(c.Args)) + 1
	return nil
}
