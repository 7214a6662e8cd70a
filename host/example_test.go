package host_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/loader"
)

// The game's state and config; in a real game these live in a package the
// plugins import too (see plugins/game).
type Player struct {
	Coins     int64
	LastLogin int64
}

type Config struct {
	WorkReward int64 `json:"work_reward"`
}

// A game's whole main: its types, a login hook and the host's defaults
// (clients on 127.0.0.1:7070, admin on data/admin.sock, state in /dev/shm,
// plugins from ./plugins-dir).
func Example() {
	if loader.IsPreflight() { // the loader re-executes this binary to vet plugins
		loader.PreflightMain()
		return
	}
	h, err := host.New(host.Game[Player, Config]{
		Name:          "mygame",
		DefaultConfig: func() Config { return Config{WorkReward: 10} },
		Login:         func(p *Player, now time.Time) { p.LastLogin = now.Unix() },
	}, host.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := h.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
