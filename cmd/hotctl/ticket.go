package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"time"

	"github.com/hothost/hothost/ticket"
)

// ticketCmd runs `hotctl ticket <player> [-ttl 1h] [-key path]`: it mints a
// login ticket with the host's key file and prints it alone on stdout, for
// `login <player> $(hotctl ticket <player>)`. It needs no running host, only
// read access to the key, so it is as privileged as the key file and is not
// in the host's audit log. It returns the exit code.
func ticketCmd(args []string, defaultKey string, now time.Time, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("hotctl ticket", flag.ContinueOnError)
	flags.SetOutput(stderr)
	ttl := flags.Duration("ttl", time.Hour, "how long the ticket is valid")
	keyPath := flags.String("key", defaultKey, "the host's ticket key file")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: hotctl ticket <player> [-ttl 1h] [-key <data>/ticket.key]")
		flags.PrintDefaults()
	}
	player, err := parseTicketArgs(flags, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "hotctl ticket:", err)
		flags.Usage()
		return 2
	}
	key, err := ticket.LoadKey(*keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w (the host creates it at its first start in its -data directory; -key names another file)", err)
	}
	if err != nil {
		fmt.Fprintln(stderr, "hotctl ticket:", err)
		return 1
	}
	tk, err := ticket.Mint(key, player, *ttl, now)
	if err != nil {
		fmt.Fprintln(stderr, "hotctl ticket:", err)
		return 2
	}
	fmt.Fprintln(stdout, tk)
	return 0
}

// parseTicketArgs takes the player id and the flags in either order
// (`ticket 42 -ttl 5m` as well as `ticket -ttl 5m 42`): the flag package
// stops at the first word that is not a flag.
func parseTicketArgs(flags *flag.FlagSet, args []string) (uint64, error) {
	if err := flags.Parse(args); err != nil {
		return 0, err
	}
	if flags.NArg() == 0 {
		return 0, errors.New("no player id")
	}
	id := flags.Arg(0)
	if err := flags.Parse(flags.Args()[1:]); err != nil {
		return 0, err
	}
	if flags.NArg() > 0 {
		return 0, fmt.Errorf("unexpected %q after the player id", flags.Arg(0))
	}
	player, err := strconv.ParseUint(id, 10, 64)
	if err != nil || player == 0 {
		return 0, fmt.Errorf("player id %q must be a decimal number from 1 to %d", id, uint64(1<<64-1))
	}
	return player, nil
}
