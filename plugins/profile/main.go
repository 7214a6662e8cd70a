// Command profile is the example game's profile module: `name <text>` sets
// the player's name, `whoami` shows the profile.
package main

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/plugins/game"
)

// Module is the descriptor the host loads.
var Module = abi.Module{
	Name:    "profile",
	Version: "1.0.0",
	ABI:     ">= 1.0, < 2.0",
	Handlers: map[string]abi.Handler{
		"name":   name,
		"whoami": whoami,
	},
	Usage: map[string]string{
		"name":   "name <text>: set your display name",
		"whoami": "whoami: show your profile",
	},
}

func name(c *abi.Call) error {
	p := c.State.(*game.Player)
	n := strings.Join(c.Args, " ")
	if n == "" || len(n) > game.NameSize || !utf8.ValidString(n) {
		return abi.Fail("usage", "name <text of 1 to %d bytes of UTF-8>", game.NameSize)
	}
	p.SetName(n)
	c.Reply("name %s", n)
	return nil
}

func whoami(c *abi.Call) error {
	p := c.State.(*game.Player)
	n := p.NameString()
	if n == "" {
		n = "(unnamed)"
	}
	c.Reply("player %d name %s coins %d level %d logins %d last %s", c.Player, n, p.Coins, p.Level, p.Logins,
		time.Unix(p.LastLogin, 0).UTC().Format(time.RFC3339))
	return nil
}

func main() {}
