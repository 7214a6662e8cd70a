package main

import (
	"fmt"
	"os"

	"github.com/hothost/hothost/abi"
)

var counter int // want `package-level variable counter is state kept between calls`

var (
	a, b = 1, 2 // want `package-level variable a is state` `package-level variable b is state`
)

var Module = abi.Module{
	Name:    fmt.Sprint("coin"), // want `call in the Module descriptor's initializer`
	Version: "1.0.0",
	Handlers: map[string]abi.Handler{
		"work": work,
	},
}

var _ = setup() // want `call in the initializer of a blank variable`

func setup() int { return 1 }

func init() {
	Module.Handlers["more"] = work
	counter = 3                  // want `init does more than register: it assigns to something other than the descriptor \(Module or Fix\)`
	fmt.Println("hello")         // want `init does more than register: only assignments`
	Module.Name = os.Getenv("X") // want `init does more than register: it calls a function`
}

func work(c *abi.Call) error {
	counter++
	go func() {}() // want `go statement`
	return nil
}
