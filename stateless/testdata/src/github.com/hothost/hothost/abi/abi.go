// Package abi is a stub of hothost's abi for the analyzer's tests.
package abi

type Call struct{}

type Handler func(c *Call) error

type Module struct {
	Name, Version, ABI string
	Handlers           map[string]Handler
	SelfTest           func() error
}

type Fix struct {
	Name, Version, ABI, Doc string
	Select                  func(c *Call) bool
	Apply                   Handler
	SelfTest                func() error
}
