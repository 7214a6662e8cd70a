// coin is the good test plugin: every call records which version ran it.
package main

import "github.com/hothost/hothost/abi"

var Module = abi.Module{
	Name:    "coin",
	Version: version,
	ABI:     ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{
		"work": work,
		"echo": echo,
	},
	SelfTest: selfTest,
}

// work appends "<version>:begin" and "<version>:end" to the caller's log,
// so a test can see that one call ran on one version throughout.
func work(c *abi.Call) error {
	log := c.State.(*[]string)
	*log = append(*log, version+":begin")
	c.Reply("%s", version)
	*log = append(*log, version+":end")
	return nil
}

func echo(c *abi.Call) error {
	c.Reply("%s", version)
	return nil
}

func selfTest() error {
	var log []string
	return work(&abi.Call{State: &log})
}
