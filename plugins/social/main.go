// Command social is the example game's messaging module: `tell` sends a
// push to another player. It changes no state: it shows abi.Call.Tell,
// whose pushes leave only once the transaction commits.
package main

import (
	"strconv"
	"strings"

	"github.com/hothost/hothost/abi"
)

// Module is the descriptor the host loads.
var Module = abi.Module{
	Name:    "social",
	Version: "1.0.0",
	ABI:     ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{
		"tell": tell,
	},
	Usage: map[string]string{
		"tell": "tell <player> <text>: send a message that arrives as a push",
	},
}

func tell(c *abi.Call) error {
	if len(c.Args) < 2 {
		return abi.Fail("usage", "tell <player> <text>")
	}
	to, err := strconv.ParseUint(c.Args[0], 10, 64)
	if err != nil || to == 0 {
		return abi.Fail("usage", "player %q must be a decimal id", c.Args[0])
	}
	c.Tell(to, "from %d: %s", c.Player, strings.Join(c.Args[1:], " "))
	c.Reply("told %d", to)
	return nil
}

func main() {}
