package main

import "github.com/hothost/hothost/abi"

const reward = 10

type wallet struct{ coins int }

var Module = abi.Module{
	Name:    "coin",
	Version: "1.0.0",
	ABI:     ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{
		"work": work,
		"inline": func(c *abi.Call) error {
			done := make(chan struct{})
			close(done)
			return nil
		},
	},
	SelfTest: func() error { return nil },
}

var _ abi.Handler = work
var _ = abi.Handler(work)

func init() {
	Module.Handlers["extra"] = work
	Module.SelfTest = nil
}

func work(c *abi.Call) error {
	w := &wallet{}
	w.coins += reward
	return nil
}
