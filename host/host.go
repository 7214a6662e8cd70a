package host

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hothost/hothost/internal/crashmark"
	"github.com/hothost/hothost/internal/resume"
	"github.com/hothost/hothost/loader"
	"github.com/hothost/hothost/state"
	"github.com/hothost/hothost/ticket"
)

// Host is one running server for a game with state T and config C.
type Host[T, C any] struct {
	opts Options
	game Game[T, C]
	log  *slog.Logger

	store   *state.Store[T]
	opened  *state.OpenReport
	loader  *loader.Loader
	config  *configSource[C]
	metrics *metrics
	audit   *auditLog
	lanes   []lane // one per state lane
	mailbox int32  // requests per lane, waiting or running, before `err busy`
	marks   *crashmark.Board
	started time.Time

	unknown    atomic.Int64     // requests for a message no active version handles
	stuck      stuckSet         // fenced requests whose handler still runs
	stuckCount atomic.Int32     // len(stuck.calls), read on every request
	lastCrash  *CrashReport     // the previous process's unclean exit, if any
	players    sessionsByPlayer // live sessions by player, for pushes
	timers     timerPoller      // fires the timers handlers schedule (timers.go)
	tickets    *ticket.Verifier
	logins     *ticket.Limiter // failed logins per client address

	sessions  *resume.Table // client sessions kept in shared memory (stream.go)
	draining  atomic.Bool
	handoff   atomic.Bool // draining for the next worker: sessions stop, connections stay open
	replyKill *replyKill  // test seam (ReplyKillEnv); nil unless set
	connsDone sync.WaitGroup
	connMu    sync.Mutex
	conns     map[*session]struct{} // nil once shutdown ended
	closing   bool                  // shutdown began: no new session is tracked

	stopOnce sync.Once
	stop     chan struct{}
	stopWhy  atomic.Value // string

	clientAddr, adminAddr net.Addr
	ready                 chan struct{}
}

// New checks the options and prepares a host; Run starts it.
func New[T, C any](game Game[T, C], opts Options) (*Host[T, C], error) {
	if game.Name == "" || game.DefaultConfig == nil {
		return nil, errors.New("host: Game needs a Name and a DefaultConfig")
	}
	if err := opts.setDefaults(game.Name); err != nil {
		return nil, err
	}
	h := &Host[T, C]{opts: opts, game: game, log: opts.Logger, stop: make(chan struct{}), ready: make(chan struct{}),
		conns: map[*session]struct{}{}, mailbox: int32(opts.Mailbox)}
	h.stuck.calls = map[uint64]StuckCall{}
	h.replyKill = newReplyKill()
	h.config = newConfigSource(opts.ConfigDir, game.DefaultConfig, game.Validate)
	h.metrics = newMetrics(h.snapshotAge, func() float64 {
		if h.store == nil {
			return 0
		}
		return float64(h.store.Len())
	}, h.collectRequests)
	return h, nil
}

// Ready is closed once the host serves clients and admin calls.
func (h *Host[T, C]) Ready() <-chan struct{} { return h.ready }

// ClientAddr is the client listener's address, valid after Ready.
func (h *Host[T, C]) ClientAddr() net.Addr { return h.clientAddr }

// Run opens the state, loads the config and the plugins, serves until ctx
// is done or an admin shutdown, then drains: stop accepting, finish queued
// requests, take a final snapshot and mark the state cleanly shut down.
func (h *Host[T, C]) Run(ctx context.Context) (err error) {
	h.started = time.Now()
	o := &h.opts
	for _, d := range []string{o.DataDir, filepath.Join(o.DataDir, "snapshots"), o.ConfigDir, o.PluginDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("host: %w", err)
		}
	}
	if h.audit, err = openAudit(filepath.Join(o.DataDir, "audit.log")); err != nil {
		return err
	}
	defer h.audit.close()

	if err := h.openTickets(); err != nil {
		return err
	}
	if _, _, err := h.config.reload(); err != nil {
		return fmt.Errorf("host: initial config from %s: %w", o.ConfigDir, err)
	}
	fatalReport, err := h.armCrashOutput()
	if err != nil {
		return err
	}
	if err := armTxKill(h.log); err != nil {
		return err
	}
	h.store, h.opened, err = state.Open[T](state.Options{
		Name: o.StateName, ShmDir: o.ShmDir, Capacity: o.Capacity, SnapshotDir: filepath.Join(o.DataDir, "snapshots"),
		KeepSnapshots: o.KeepSnapshots, SnapshotEvery: o.SnapshotEvery, Lanes: o.Lanes, Logger: h.log,
		ScrubRate: o.ScrubRate, ScrubEvery: o.ScrubEvery,
	})
	if err != nil {
		return fmt.Errorf("host: open state: %w", err)
	}
	h.log.Info("state opened", "how", h.opened.How.String(), "report", h.opened.String())
	h.metrics.reg.MustRegister(scrubGauges(h.store.Scrub)...)
	defer func() {
		if cerr := h.store.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("host: close state: %w", cerr))
		}
	}()

	h.lanes = make([]lane, h.store.Lanes())
	marks, left, err := crashmark.Open(h.store.Path()+".marks", h.store.Lanes())
	if marks == nil {
		return fmt.Errorf("host: %w", err)
	}
	if err != nil {
		h.log.Warn("lane marks of the previous process unusable; replaced", "err", err)
	}
	h.marks = marks
	defer h.marks.Close()
	if err := h.openSessions(); err != nil {
		return err
	}
	defer h.closeSessions()

	if h.loader, err = h.newLoader(); err != nil {
		return err
	}
	h.lastCrash = h.attributeCrash(fatalReport, left, h.opened.How == state.Recovered)
	if err := h.loader.Poll(ctx); err != nil {
		h.log.Warn("initial plugin poll", "err", err)
	}
	h.warnFewModules()

	clientLn := o.Listener
	if clientLn == nil {
		if clientLn, err = net.Listen("tcp", o.Listen); err != nil {
			return fmt.Errorf("host: listen for clients: %w", err)
		}
	}
	h.clientAddr = clientLn.Addr()
	ws, err := h.listenWS() // browsers, when Options.WSListen is set (ws.go)
	if err != nil {
		clientLn.Close()
		return err
	}
	defer ws.stop()
	adminLn, err := listenUnix(o.AdminSocket)
	if err != nil {
		clientLn.Close()
		return err
	}
	servers := []*http.Server{h.newAdminServer(false)}
	listeners := []net.Listener{adminLn}
	if o.AdminAddr != "" {
		tl, err := net.Listen("tcp", o.AdminAddr)
		if err != nil {
			clientLn.Close()
			adminLn.Close()
			return fmt.Errorf("host: listen for admin: %w", err)
		}
		h.adminAddr = tl.Addr()
		servers = append(servers, h.newAdminServer(true))
		listeners = append(listeners, tl)
	}
	for i, s := range servers {
		go s.Serve(listeners[i])
	}
	h.connsDone.Add(1)
	go h.serveClients(clientLn)
	ws.serve()
	h.startTimers()

	bg, stopBG := context.WithCancel(context.Background())
	var bgDone sync.WaitGroup
	bgDone.Add(3)
	go func() { defer bgDone.Done(); h.loader.Run(bg) }()
	go func() { defer bgDone.Done(); h.background(bg) }()
	go func() { defer bgDone.Done(); h.watch(bg) }()

	h.log.Info("serving", "clients", h.clientAddr.String(), "admin", o.AdminSocket, "plugins", o.PluginDir,
		"modules", fmt.Sprint(h.loader.Current().Modules()), "config_version", h.config.current().Version)
	close(h.ready)
	var drain <-chan struct{}
	if o.Handover != nil {
		if err := o.Handover.Ready(); err != nil {
			h.log.Error("tell the supervisor this worker is ready", "err", err)
			h.requestStop("supervisor gone")
		}
		drain = o.Handover.Drain()
	}

	select {
	case <-ctx.Done():
		h.stopWhy.CompareAndSwap(nil, "signal")
	case <-h.stop:
	case <-drain:
		h.stopWhy.CompareAndSwap(nil, "handing over to the next worker")
		h.handoff.Store(true)
	}
	h.log.Info("shutting down", "why", h.stopWhy.Load())

	// Stop accepting, refuse new requests, close sessions (each finishes
	// the request it is running), and wait for them, at most DrainTimeout:
	// then whatever still runs is fenced, so nothing commits after the
	// final snapshot and a stuck handler cannot hold the shutdown.
	clientLn.Close()
	ws.stop()
	h.draining.Store(true)
	h.stopTimers()
	h.connMu.Lock()
	h.closing = true
	for s := range h.conns {
		if h.handoff.Load() {
			s.conn.SetReadDeadline(time.Now()) // wakes a waiting read; a running request is answered first
		} else {
			s.conn.Close()
		}
	}
	h.connMu.Unlock()
	drained := make(chan struct{})
	go func() { h.connsDone.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(o.DrainTimeout):
		n := h.fenceOverdue(time.Now(), 0)
		h.log.Error("drain timeout: requests still running were fenced", "fenced", n, "drain_timeout", o.DrainTimeout)
		<-drained // fenced sessions hand over to fresh ones, which find their connection closed
	}
	h.connMu.Lock()
	h.conns = nil
	h.connMu.Unlock()
	stopBG()
	bgDone.Wait()

	if info, err := h.snapshot(); err != nil {
		h.log.Error("final snapshot failed; shared memory still holds every update", "err", err)
	} else {
		h.log.Info("final snapshot", "path", info.Path, "players", info.Players)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range servers {
		s.Shutdown(shutdownCtx)
	}
	os.Remove(o.AdminSocket)
	return nil
}

// openTickets loads (or makes, at first start) the login ticket key.
func (h *Host[T, C]) openTickets() error {
	h.logins = ticket.NewLimiter(ticket.Limits{})
	if h.opts.InsecureLogin {
		h.log.Warn("INSECURE LOGIN: -insecure-login is set; anyone who reaches the client port can log in as any player. Never run this in production.")
		return nil
	}
	key, created, err := ticket.LoadOrCreateKey(h.opts.TicketKey)
	if err != nil {
		return fmt.Errorf("host: ticket key: %w", err)
	}
	if created {
		h.log.Info("made a login ticket key; the account service signs tickets with it", "file", h.opts.TicketKey)
	}
	if h.tickets, err = ticket.NewVerifier(key); err != nil {
		return fmt.Errorf("host: ticket key %s: %w", h.opts.TicketKey, err)
	}
	h.tickets.Leeway = 30 * time.Second // clock drift between the account service and this host
	return nil
}

func (h *Host[T, C]) requestStop(why string) {
	h.stopOnce.Do(func() {
		h.stopWhy.CompareAndSwap(nil, why)
		close(h.stop)
	})
}

func (h *Host[T, C]) newLoader() (*loader.Loader, error) {
	var pub ed25519.PublicKey
	if h.opts.PublicKey != "" {
		b, err := os.ReadFile(h.opts.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("host: public key: %w", err)
		}
		if pub, err = parsePublicKey(b); err != nil {
			return nil, fmt.Errorf("host: public key %s: %w", h.opts.PublicKey, err)
		}
	}
	l, err := loader.New(loader.Options{
		Dir: h.opts.PluginDir, PollInterval: h.opts.Poll, PublicKey: pub,
		ProbationWindow: h.opts.Probation, ProbationPanics: h.opts.ProbationPanics,
		HistoryFile: filepath.Join(h.opts.DataDir, "versions.json"),
		Logger:      h.log, OnEvent: h.onLoaderEvent,
	})
	if err != nil {
		return nil, fmt.Errorf("host: loader: %w", err)
	}
	return l, nil
}

// parsePublicKey accepts a raw 32-byte key or its base64 text.
func parsePublicKey(b []byte) (ed25519.PublicKey, error) {
	if len(b) == ed25519.PublicKeySize {
		return ed25519.PublicKey(b), nil
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("want %d raw bytes or their base64", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(k), nil
}

func (h *Host[T, C]) onLoaderEvent(e loader.Event) {
	kind := strings.ReplaceAll(string(e.Kind), " ", "_")
	h.metrics.events.WithLabelValues(kind).Inc()
}

// warnFewModules says loudly when the host starts serving with no modules,
// or fewer than the history says served before the restart.
func (h *Host[T, C]) warnFewModules() {
	mods := h.loader.Current().Modules()
	prev := map[string]bool{}
	for _, v := range h.loader.Versions() {
		if v.Module != "" && v.State != loader.StateRejected {
			prev[v.Module] = true
		}
	}
	var missing []string
	for m := range prev {
		if _, ok := mods[m]; !ok {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	switch {
	case len(mods) == 0:
		h.log.Error("SERVING WITH NO HANDLERS: every request but login and ping answers `err unknown`",
			"plugins", h.opts.PluginDir, "modules_before", len(prev))
	case len(missing) > 0:
		h.log.Error("SERVING WITH FEWER MODULES THAN BEFORE THE RESTART", "missing", strings.Join(missing, ", "),
			"active", fmt.Sprint(mods))
	}
}

// background polls the config directory. (Periodic snapshots are the
// state store's: Options.SnapshotEvery.)
func (h *Host[T, C]) background(ctx context.Context) {
	poll := time.NewTicker(h.opts.Poll)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			h.reloadConfig()
		}
	}
}

func (h *Host[T, C]) reloadConfig() (changed bool, err error) {
	changed, fresh, err := h.config.reload()
	if err != nil && fresh {
		h.metrics.events.WithLabelValues("config_refused").Inc()
		h.log.Warn("config change refused; the old config stays", "err", err, "version", h.config.current().Version)
	}
	if changed {
		h.metrics.events.WithLabelValues("config_reloaded").Inc()
		cur := h.config.current()
		h.log.Info("config reloaded", "version", cur.Version, "hash", cur.Hash, "files", cur.Files)
	}
	return changed, err
}

// Reload polls the plugin directory and the config directory now.
func (h *Host[T, C]) Reload(ctx context.Context) (map[string]any, error) {
	perr := h.loader.Poll(ctx)
	changed, cerr := h.reloadConfig()
	out := map[string]any{"modules": h.loader.Current().Modules(), "config_version": h.config.current().Version,
		"config_changed": changed}
	if perr != nil {
		out["plugin_error"] = perr.Error()
	}
	if cerr != nil {
		out["config_error"] = cerr.Error()
		return out, cerr
	}
	return out, nil
}

func (h *Host[T, C]) snapshot() (state.SnapshotInfo, error) { return h.store.Snapshot() }

// snapshotAge is the age of the newest snapshot's contents: the most a
// reboot would lose now. -1 before the first snapshot.
func (h *Host[T, C]) snapshotAge() float64 {
	if h.store == nil {
		return -1
	}
	info, _, _ := h.store.LastSnapshot()
	if info.Created.IsZero() {
		return -1
	}
	return time.Since(info.Created).Seconds()
}

func (h *Host[T, C]) activeOf(module string) string { return h.loader.Current().Modules()[module] }

// listenUnix listens on a Unix socket that only this user can use: the
// socket file is created under a umask that leaves it 0600.
func listenUnix(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("host: remove stale admin socket: %w", err)
	}
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return nil, fmt.Errorf("host: listen on admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("host: admin socket mode: %w", err)
	}
	return ln, nil
}
