// Command hothost runs the example game's server: player state in shared
// memory, handlers hot-swapped from a plugin directory, admin on a Unix
// socket. Defaults work on one machine with nothing else installed:
//
//	hothost                       # clients on 127.0.0.1:7070, admin on data/admin.sock
//	hotctl ticket 42              # a login ticket for player 42, made with data/ticket.key
//	nc 127.0.0.1 7070             # login 42 <ticket>, work, buy sword, give 7 5, help
//	hotctl status                 # see cmd/hotctl
//	hothost -ws-listen 127.0.0.1:7071   # and a browser on http://127.0.0.1:7071/
//	hotctl upgrade                # a worker from the hothost binary now on disk; clients stay connected
//
// hothost is two processes (package supervisor): the one you start is the
// supervisor, which holds the client listener and every client connection
// and runs no game code; it starts this same binary again as its worker,
// the host proper, and hands it the connections. A worker that dies is
// replaced and a new binary takes over (SIGHUP to the supervisor, or
// hotctl upgrade) with the clients kept connected; only the supervisor's
// own death disconnects them. -no-supervisor runs the host alone, as one
// process.
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
	"path/filepath"
	rdebug "runtime/debug"
	"syscall"

	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/loader"
	"github.com/hothost/hothost/plugins/game"
	"github.com/hothost/hothost/supervisor"
)

func main() {
	if loader.IsPreflight() {
		loader.PreflightMain()
		return
	}
	var o host.Options
	flag.StringVar(&o.Listen, "listen", "127.0.0.1:7070", "client TCP address (the supervisor listens on it)")
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
	alone := flag.Bool("no-supervisor", false, "run the host alone, as one process: a crash or a host upgrade then disconnects every client")
	var sc supervisor.Config
	flag.StringVar(&sc.StatusFile, "supervisor-status", "", "the supervisor's status file, readable while no worker runs (default <data>/supervisor.json)")
	flag.DurationVar(&sc.MinBackoff, "min-backoff", 0, "wait before restarting a worker that died within -stable-after of its start the second time in a row; doubles with each further one (default 100ms)")
	flag.DurationVar(&sc.MaxBackoff, "max-backoff", 0, "longest wait before restarting a worker (default 10s)")
	flag.DurationVar(&sc.StableAfter, "stable-after", 0, "a worker that dies sooner after its start counts towards backoff (default 5s)")
	flag.DurationVar(&sc.ReadyTimeout, "ready-timeout", 0, "a worker not ready this long after its start, or still running this long after it was told to drain, is killed (default 30s)")
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
	switch {
	case supervisor.IsWorker():
		os.Exit(runWorker(o))
	case *alone:
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		os.Exit(runHost(ctx, o))
	default:
		os.Exit(runSupervisor(sc, o))
	}
}

// runHost runs the host until ctx is done (alone) or the supervisor
// drains it (worker), and returns the exit code.
func runHost(ctx context.Context, o host.Options) int {
	h, err := host.New(host.Game[game.Player, game.Config]{
		Name:          "example",
		DefaultConfig: game.DefaultConfig,
		Validate:      (*game.Config).Validate,
		Login:         game.Login,
	}, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hothost:", err)
		return 2
	}
	if err := h.Run(ctx); err != nil {
		o.Logger.Error("hothost stopped", "err", err)
		return 1
	}
	return 0
}

// runWorker runs the host as the supervisor's worker: clients come from
// the supervisor, and only the supervisor stops it (a drain). It takes no
// signals: one from outside ends it like a crash, and the supervisor
// starts the next worker with the clients kept.
func runWorker(o host.Options) int {
	w, err := supervisor.Attach()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hothost worker:", err)
		return 2
	}
	o.Logger = o.Logger.With("worker", os.Getpid())
	o.Listener = w.Listener()
	o.Handover = handover{w}
	code := runHost(context.Background(), o)
	w.Close()
	return code
}

// handover is the worker side of the supervisor as the host wants it.
type handover struct{ *supervisor.Worker }

func (h handover) SupervisorStatus() (any, error) {
	st, err := h.Worker.Status()
	if err != nil {
		return nil, err
	}
	return st, nil
}

// runSupervisor runs the supervisor until SIGTERM or SIGINT: its worker is
// this binary, with the same arguments. It returns the exit code.
func runSupervisor(sc supervisor.Config, o host.Options) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hothost: the worker binary:", err)
		return 2
	}
	if sc.StatusFile == "" {
		sc.StatusFile = filepath.Join(o.DataDir, "supervisor.json")
	}
	if err := os.MkdirAll(filepath.Dir(sc.StatusFile), 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "hothost:", err)
		return 2
	}
	sc.Listen, sc.Binary, sc.Args = o.Listen, exe, os.Args[1:]
	sc.Logger = o.Logger.With("supervisor", os.Getpid())
	s, err := supervisor.New(sc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hothost:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := s.Serve(ctx); err != nil {
		sc.Logger.Error("supervisor stopped", "err", err)
		return 1
	}
	return 0
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
