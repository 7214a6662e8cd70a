// selftest loads fine but its self-test fails.
package main

import (
	"errors"

	"github.com/hothost/hothost/abi"
)

var Module = abi.Module{
	Name:     "coin",
	Version:  version,
	ABI:      ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{"work": func(c *abi.Call) error { return nil }},
	SelfTest: func() error { return errors.New("2+2 is not 5") },
}
