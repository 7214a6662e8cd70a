// Command hothost runs the example game's server: player state in shared
// memory, handlers hot-swapped from a plugin directory, admin on a Unix
// socket. Defaults work on one machine with nothing else installed:
//
//	hothost                       # clients on 127.0.0.1:7070, admin on data/admin.sock
//	hotctl ticket 42              # a login ticket for player 42, made with data/ticket.key
//	nc 127.0.0.1 7070             # login 42 <ticket>, work, buy sword, give 7 5, help
//	hotctl status                 # see cmd/hotctl
//	hothost -ws-listen 127.0.0.1:7071   # and a browser on http://127.0.0.1:7071/
//
// The same binary is the plugin preflight child when the loader re-executes
// it (HOTHOST_PREFLIGHT set): that check must come before anything else.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	rdebug "runtime/debug"
	"syscall"

	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/loader"
	"github.com/hothost/hothost/plugins/game"
)

func main() {
	if loader.IsPreflight() {
		loader.PreflightMain()
		return
	}
	var o host.Options
	flag.StringVar(&o.Listen, "listen", "127.0.0.1:7070", "client TCP address")
	flag.StringVar(&o.WSListen, "ws-listen", "", "serve browsers on this address: the game's web page at / and its WebSocket at /ws (e.g. 127.0.0.1:7071; default off)")
	flag.StringVar(&o.DataDir, "data", "data", "data directory: snapshots, audit log, admin socket, config")
	flag.StringVar(&o.AdminSocket, "admin-socket", "", "admin Unix socket (default <data>/admin.sock)")
	flag.StringVar(&o.AdminAddr, "admin-addr", "", "also serve admin on this TCP address (needs -admin-token-file)")
	tokenFile := flag.String("admin-token-file", "", "file holding the bearer token for -admin-addr")
	flag.StringVar(&o.ShmDir, "shm-dir", "", "shared memory directory (default /dev/shm)")
	flag.StringVar(&o.StateName, "state", "", "shared memory segment name (default hothost-example)")
	flag.IntVar(&o.Capacity, "capacity", 100_000, "players the state segment holds (fixed when it is created)")
	flag.StringVar(&o.PluginDir, "plugins", "plugins-dir", "plugin directory polled for new versions")
	flag.StringVar(&o.ConfigDir, "config", "", "game config directory of *.json (default <data>/config)")
	flag.StringVar(&o.TicketKey, "ticket-key", "", "HS256 key file for login tickets (default <data>/ticket.key, made at first start)")
	flag.BoolVar(&o.InsecureLogin, "insecure-login", false, "accept `login <id>` without a ticket (local experiments only; logged loudly)")
	flag.StringVar(&o.PublicKey, "public-key", "", "ed25519 public key file; when set, plugins must be signed")
	flag.DurationVar(&o.Poll, "poll", 0, "plugin and config poll interval (default 500ms)")
	flag.DurationVar(&o.SnapshotEvery, "snapshot-every", 0, "snapshot interval: the most a reboot can lose (default 30s)")
	flag.IntVar(&o.Lanes, "lanes", 0, "transaction lanes of a new state segment, a power of two (default 64)")
	flag.IntVar(&o.Mailbox, "mailbox", 0, "requests per lane, waiting or running, before clients get `err busy` (default 256)")
	flag.DurationVar(&o.HandlerTimeout, "handler-timeout", 0, "a handler running longer is fenced, its version marked bad and rolled back (default 2s)")
	flag.DurationVar(&o.DrainTimeout, "drain-timeout", 0, "on SIGTERM, wait this long for running requests, then fence them (default 10s)")
	flag.IntVar(&o.MaxConns, "max-conns", 0, "concurrent client connections (default 10000)")
	flag.IntVar(&o.MaxFrame, "max-frame", 0, "bytes per client frame (default 1024)")
	flag.IntVar(&o.MaxBadFrames, "max-bad-frames", 0, "bad frames before a client is disconnected (default 5)")
	flag.DurationVar(&o.IdleTimeout, "idle-timeout", 0, "close client connections idle this long (default 5m)")
	flag.DurationVar(&o.Probation, "probation", 0, "window after a version's activation in which its panics roll it back (default 30s)")
	flag.IntVar(&o.ProbationPanics, "probation-panics", 0, "panics within the probation window that roll a version back (default 3)")
	maxStack := flag.Int("max-stack-mb", 64, "largest goroutine stack in MiB: a runaway recursion in a handler dies at this size (Go's default, 1 GiB, takes seconds and a GiB to get there)")
	debug := flag.Bool("debug", false, "debug logging")
	flag.Parse()
	rdebug.SetMaxStack(*maxStack << 20)

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "hothost:", err)
			os.Exit(2)
		}
		o.AdminToken = string(trimSpace(b))
	}

	h, err := host.New(host.Game[game.Player, game.Config]{
		Name:          "example",
		DefaultConfig: game.DefaultConfig,
		Validate:      (*game.Config).Validate,
		Login:         game.Login,
	}, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hothost:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := h.Run(ctx); err != nil {
		o.Logger.Error("hothost stopped", "err", err)
		os.Exit(1)
	}
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
