// Command hotload is hothost's load generator: N connections play M players
// of the example game with a mix of commands for a fixed duration or
// request count, print a progress line every second, and keep a ledger of
// every acknowledged update. At the end it reads every player's coins back
// from the server and checks them against the ledger (exact, except a
// command committed whose reply a host kill swallowed, which it places and
// counts), and checks the total: all players hold what they had, plus what
// works earned, minus what buys spent.
//
//	hotload -addr 127.0.0.1:7070 -conns 16 -players 1000 -duration 30s
//	hotload -requests 100000 -mix 'work=6,balance=2,buy potion=1,whoami=1'
//
// `give` and `trade <item>` in the mix move coins between the load's own
// players (the market module), each to a player picked at random, of 1 to
// -max-move coins:
//
//	hotload -mix 'work=6,balance=2,buy potion=1,whoami=1,give=1,trade potion=1'
//
// Every login carries a ticket minted with the host's key file (-key; the
// host makes it in its data directory at its first start), valid for -ttl
// from that login. An empty -key (-key=) logs in without one, for a host
// started with -insecure-login.
//
// It reports throughput, p50/p99/p99.9 latency and errors by code, and
// exits 1 if the ledger and the server disagree or a request failed.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/hothost/hothost/internal/loadgen"
	"github.com/hothost/hothost/ticket"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7070", "host client address")
	conns := flag.Int("conns", 16, "concurrent connections")
	players := flag.Int("players", 0, "distinct players (default: one per connection)")
	first := flag.Uint64("first-player", 1, "first player id")
	mix := flag.String("mix", "work=6,balance=2,buy potion=1,whoami=1", "command mix: command=weight,...")
	dur := flag.Duration("duration", 10*time.Second, "run this long (0: until -requests)")
	reqs := flag.Int64("requests", 0, "stop after this many requests (0: until -duration)")
	reconnect := flag.Duration("reconnect", 0, "keep redialing this long after a lost connection (0: give up)")
	timeout := flag.Duration("timeout", 10*time.Second, "per request")
	verify := flag.Bool("verify", true, "check every player's coins against the ledger at the end")
	quiet := flag.Bool("quiet", false, "no progress line")
	seed := flag.Uint64("seed", 0, "command choice seed (0: random)")
	maxMove := flag.Int64("max-move", 10, "the most coins one give moves or one trade costs")
	keyFile := flag.String("key", "data/ticket.key", "the host's ticket key file, to mint login tickets (empty: log in without, for an -insecure-login host)")
	ttl := flag.Duration("ttl", time.Hour, "each login ticket's lifetime")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	m, err := loadgen.ParseMix(*mix)
	if err != nil {
		log.Error("bad -mix", "err", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg := loadgen.Config{
		Addr: func() string { return *addr }, Conns: *conns, Players: *players, FirstPlayer: *first, Mix: m,
		Duration: *dur, Requests: *reqs, Reconnect: *reconnect, Timeout: *timeout, Seed: *seed, MaxMove: *maxMove,
	}
	if *keyFile != "" {
		key, err := ticket.LoadKey(*keyFile)
		if err != nil {
			log.Error("cannot mint login tickets (an empty -key logs in without, for an -insecure-login host)", "err", err)
			os.Exit(2)
		}
		cfg.Tickets = loadgen.KeyTickets(key, *ttl)
	}
	if !*quiet {
		cfg.Progress = os.Stderr
	}
	l, err := loadgen.Start(ctx, cfg)
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(2)
	}
	res := l.Wait()
	fmt.Println(res.Summary())
	bad := len(res.Violations) > 0 || res.Failed > 0
	if *verify {
		vctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		ck := loadgen.Verify(vctx, *addr, res, *timeout)
		cancel()
		fmt.Println("ledger:", ck)
		for _, v := range ck.Violations {
			fmt.Println("  VIOLATION", v)
		}
		bad = bad || !ck.OK()
	}
	if bad {
		os.Exit(1)
	}
}
