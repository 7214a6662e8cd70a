package host

import (
	"net"

	"errors"
	"fmt"
	"github.com/hothost/hothost/internal/resume"
	"log/slog"
	"path/filepath"
	"time"
)

// Game is what a game supplies besides its plugins: its config type's
// defaults and validation, and a hook run in the login transaction.
type Game[T, C any] struct {
	// Name names the game in logs and the state segment ("hothost-<name>").
	Name string
	// DefaultConfig is the config before any file of the config directory
	// is applied. Files are decoded strictly on top of it, in name order.
	DefaultConfig func() C
	// Validate refuses a config; the old config then stays. Optional.
	Validate func(*C) error
	// Login runs inside the login transaction (stamp the time, count
	// logins). A new player starts from T's zero value. Optional.
	Login func(p *T, now time.Time)
}

// Options configure a host. The zero value of every field but Game-specific
// ones has a default that works on one machine with nothing else installed.
type Options struct {
	Listen          string        // client TCP address; default 127.0.0.1:7070
	WSListen        string        // browser clients: the web page and its WebSocket (ws.go); default off
	AdminSocket     string        // admin HTTP on a Unix socket (mode 0600); default <DataDir>/admin.sock
	AdminAddr       string        // optional admin HTTP on TCP; requires AdminToken
	AdminToken      string        // bearer token for AdminAddr, compared in constant time
	DataDir         string        // snapshots, audit log, admin socket; default ./data
	ShmDir          string        // shared memory directory; default /dev/shm
	StateName       string        // segment name; default hothost-<game name>
	Capacity        int           // players; default 100000
	PluginDir       string        // default ./plugins-dir
	ConfigDir       string        // game config JSON files; default <DataDir>/config
	PublicKey       string        // ed25519 public key file; when set, plugins must be signed
	TicketKey       string        // HS256 key for login tickets; default <DataDir>/ticket.key, made (0600) at first start
	InsecureLogin   bool          // accept `login <id>` without a ticket: local experiments only
	Poll            time.Duration // plugin and config poll interval; default 500ms
	Lanes           int           // transaction lanes of a new state segment (a power of two); default 64
	Mailbox         int           // requests per lane, waiting or running, before `err busy`; default 256
	HandlerTimeout  time.Duration // a handler running longer is fenced and its version marked bad; default 2s
	DrainTimeout    time.Duration // SIGTERM waits this long for running requests, then fences them; default 10s
	MaxFrame        int           // bytes per client frame; default 1024
	MaxConns        int           // concurrent client connections; default 10000
	MaxBadFrames    int           // bad frames before a disconnect; default 5
	IdleTimeout     time.Duration // client idle timeout; default 5m
	SnapshotEvery   time.Duration // periodic snapshot interval (the most a reboot loses); default 30s
	KeepSnapshots   int           // default 5
	ScrubRate       int           // records a second the background scrub checks; default state.DefaultScrubRate, negative: off
	ScrubEvery      time.Duration // a scrub pass over every record this often (the first right after start); default 1h
	Probation       time.Duration // window after activation in which panics roll back; default 30s
	ProbationPanics int           // panics in the window that roll back; default 3
	Logger          *slog.Logger
	// Listener, if set, is where client connections come from instead of
	// Listen: a supervisor's (package supervisor), whose connections
	// carry their id across workers (Handed).
	Listener net.Listener
	// Handover, if set, is the supervisor this host runs under as its
	// worker.
	Handover Handover
}

// Handover is what a worker host needs from the supervisor that holds its
// client connections.
type Handover interface {
	// Ready says the host serves: the supervisor hands it connections.
	Ready() error
	// Drain is closed when the supervisor wants this worker gone (an
	// upgrade): the host stops reading requests, answers those it runs,
	// closes the state cleanly and returns, leaving the connections and
	// their sessions to the next worker.
	Drain() <-chan struct{}
	// Upgrade asks the supervisor to replace this worker with binary
	// ("": the same path again).
	Upgrade(binary string) error
	// SupervisorStatus is the supervisor's status, for the admin API.
	SupervisorStatus() (any, error)
	// Shutdown asks the supervisor to stop for good (the admin API's
	// shutdown): it drains this worker and exits. A worker that stopped on
	// its own would be replaced by the next one.
	Shutdown() error
}

func (o *Options) setDefaults(gameName string) error {
	set := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	setN := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	setD := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	set(&o.Listen, "127.0.0.1:7070")
	set(&o.DataDir, "data")
	set(&o.AdminSocket, filepath.Join(o.DataDir, "admin.sock"))
	set(&o.StateName, "hothost-"+gameName)
	set(&o.PluginDir, "plugins-dir")
	set(&o.ConfigDir, filepath.Join(o.DataDir, "config"))
	set(&o.TicketKey, filepath.Join(o.DataDir, "ticket.key"))
	setN(&o.Capacity, 100_000)
	setN(&o.Lanes, 64)
	setN(&o.Mailbox, 256)
	setN(&o.MaxFrame, 1024)
	setN(&o.MaxConns, 10_000)
	setN(&o.MaxBadFrames, 5)
	setN(&o.KeepSnapshots, 5)
	setN(&o.ProbationPanics, 3)
	setD(&o.Poll, 500*time.Millisecond)
	setD(&o.IdleTimeout, 5*time.Minute)
	setD(&o.SnapshotEvery, 30*time.Second)
	setD(&o.Probation, 30*time.Second)
	setD(&o.HandlerTimeout, 2*time.Second)
	setD(&o.ScrubEvery, time.Hour)
	setD(&o.DrainTimeout, 10*time.Second)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.AdminAddr != "" && o.AdminToken == "" {
		return errors.New("host: an admin TCP address needs an admin token")
	}
	if o.Lanes&(o.Lanes-1) != 0 {
		return fmt.Errorf("host: %d lanes: want a power of two", o.Lanes)
	}
	if o.HandlerTimeout < 0 || o.DrainTimeout < 0 {
		return fmt.Errorf("host: handler timeout %v and drain timeout %v must be positive", o.HandlerTimeout, o.DrainTimeout)
	}
	if o.MaxFrame > resume.MaxFrame {
		return fmt.Errorf("host: max frame %d: a kept session holds lines of at most %d bytes", o.MaxFrame, resume.MaxFrame)
	}
	if o.Lanes < 1 || o.Mailbox < 1 || o.MaxFrame < 16 || o.MaxConns < 1 {
		return fmt.Errorf("host: lanes %d, mailbox %d, max frame %d and max conns %d must be positive (max frame >= 16)",
			o.Lanes, o.Mailbox, o.MaxFrame, o.MaxConns)
	}
	return nil
}
