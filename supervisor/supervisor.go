package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Config configures a supervisor. Listen and Binary are required.
type Config struct {
	Listen     string   // client TCP address; "127.0.0.1:0" picks a free port
	Binary     string   // the worker binary
	Args       []string // the worker's arguments (argv[1:])
	Env        []string // added to the supervisor's environment for the worker
	StatusFile string   // optional: Status as JSON, replaced atomically on every change
	// MinBackoff is the wait before restarting a worker that died within
	// StableAfter of its start, the second time in a row (the first restart
	// is immediate); each further quick death doubles it, up to MaxBackoff.
	// Defaults: 100ms, 10s, 5s.
	MinBackoff, MaxBackoff, StableAfter time.Duration
	// ReadyTimeout bounds a new worker's start (until it says ready) and an
	// old worker's drain; past it the worker is killed. Default 30s.
	ReadyTimeout time.Duration
	Logger       *slog.Logger
}

// Defaults of Config.
const (
	DefaultMinBackoff   = 100 * time.Millisecond
	DefaultMaxBackoff   = 10 * time.Second
	DefaultStableAfter  = 5 * time.Second
	DefaultReadyTimeout = 30 * time.Second
)

// sendTimeout bounds one message to a worker: a worker that has not read
// its handover socket for this long is hung, and is killed.
const sendTimeout = 5 * time.Second

// Errors of Upgrade.
var (
	// ErrUpgradeInProgress: an upgrade is already under way; its progress is
	// in Status().LastUpgrade.
	ErrUpgradeInProgress = errors.New("supervisor: an upgrade is already in progress")
	// ErrStopped: the supervisor is not serving (Serve not called yet, or
	// returned, or its context is done).
	ErrStopped = errors.New("supervisor: not serving")
)

// Supervisor owns the client listener and connections and runs one worker
// at a time. See the package documentation.
type Supervisor struct {
	cfg    Config
	log    *slog.Logger
	ln     *os.File // the listening socket
	lnAddr net.Addr
	// lnClosed tells the accept loop that the listener's error is its
	// close (a raw read on a closed *os.File is no os.ErrClosed).
	lnClosed atomic.Bool
	raw      syscall.RawConn
	addr     string
	served   atomic.Bool

	events  chan any        // accepted, workerMsg: to the loop
	exits   chan exited     // from the goroutine waiting for each worker
	reqs    chan upgradeReq // Upgrade calls
	running chan struct{}   // closed when the loop starts
	stopped chan struct{}   // closed when the loop ends

	mu      sync.Mutex // guards st, changed, dirty and fileErr
	st      Status
	changed chan struct{} // closed and replaced on every change
	dirty   bool          // the status file lags st
	fileErr string        // the last status file error logged

	// Owned by the loop (Serve's goroutine).
	conns    map[uint64]*held
	waiting  int // conns not with a ready worker
	epoch    uint64
	counter  uint32
	proc     *proc
	gen      uint64
	binary   string   // the path Upgrade("") starts
	runFile  string   // the file a restart starts: binary, or a restored copy of the previous one
	good     *os.File // the file of the last worker that became ready
	quick    int      // workers in a row that died within StableAfter
	backoff  time.Duration
	up       *UpgradeResult // the upgrade under way
	upSeq    uint64
	timer    *time.Timer
	timerFor timerKind
	stopping bool
	cur      Status // the status being made; publish shows it
}

// held is one client connection the supervisor holds.
type held struct {
	fd        int
	remote    string
	handovers int    // workers that had it and are gone
	with      uint64 // the generation of the worker that has it; 0: none
}

type timerKind int

const (
	timerNone timerKind = iota
	timerReady
	timerDrain
	timerBackoff
)

type accepted struct {
	fd     int
	remote string
}

type workerMsg struct {
	p   *proc
	m   message
	err error // a bad message
}

type upgradeReq struct {
	binary, by string
	reply      chan error
}

// New checks cfg and binds the client listener; Serve starts the worker.
func New(cfg Config) (*Supervisor, error) {
	setD := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	setD(&cfg.MinBackoff, DefaultMinBackoff)
	setD(&cfg.MaxBackoff, DefaultMaxBackoff)
	setD(&cfg.StableAfter, DefaultStableAfter)
	setD(&cfg.ReadyTimeout, DefaultReadyTimeout)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MinBackoff < 0 || cfg.MaxBackoff < cfg.MinBackoff || cfg.StableAfter < 0 || cfg.ReadyTimeout < 0 {
		return nil, fmt.Errorf("supervisor: backoff %v..%v, stable after %v, ready timeout %v: want 0 <= min <= max and positive times",
			cfg.MinBackoff, cfg.MaxBackoff, cfg.StableAfter, cfg.ReadyTimeout)
	}
	if cfg.Listen == "" {
		return nil, errors.New("supervisor: no client address to listen on")
	}
	if cfg.Binary == "" {
		return nil, fmt.Errorf("%w: no worker binary given", ErrBadBinary)
	}
	bin, err := filepath.Abs(cfg.Binary)
	if err != nil {
		return nil, fmt.Errorf("supervisor: worker binary: %w", err)
	}
	if err := checkBinary(bin); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	// A *net.TCPListener's raw connection cannot wait for a client (its
	// Read is EINVAL); an *os.File of the same socket can (accept.go).
	lf, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		return nil, fmt.Errorf("supervisor: listener: %w", err)
	}
	raw, err := lf.SyscallConn()
	if err != nil {
		lf.Close()
		return nil, fmt.Errorf("supervisor: listener: %w", err)
	}
	s := &Supervisor{
		cfg: cfg, log: cfg.Logger, ln: lf, lnAddr: ln.Addr(), raw: raw, addr: ln.Addr().String(),
		events: make(chan any, 256), exits: make(chan exited, 2), reqs: make(chan upgradeReq),
		running: make(chan struct{}), stopped: make(chan struct{}), changed: make(chan struct{}),
		conns: map[uint64]*held{}, binary: bin, runFile: bin, epoch: newEpoch(),
	}
	s.cur = Status{PID: os.Getpid(), Listen: s.addr, Binary: bin, State: StateStopped}
	s.st = s.cur
	return s, nil
}

// newEpoch draws the high half of connection ids: ids stay unique across
// supervisor restarts (a worker's session table outlives the supervisor).
func newEpoch() uint64 {
	var b [4]byte
	rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	e := uint64(binary.LittleEndian.Uint32(b[:]))
	if e == 0 {
		e = 1
	}
	return e
}

// Addr is the client listener's address.
func (s *Supervisor) Addr() net.Addr { return s.lnAddr }

// Status returns the supervisor's status now.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.clone()
}

// changes returns a channel closed at the next change of the status.
func (s *Supervisor) changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Upgrade replaces the worker with one started from binary ("" starts the
// current binary's path again, for a binary replaced on disk): the worker
// drains and exits, the new one starts and takes every connection once it
// is ready. If it exits or is not ready within ReadyTimeout, the previous
// binary is started again. Upgrade returns once the upgrade is under way;
// its outcome is in Status().LastUpgrade. SIGHUP does the same as
// Upgrade("").
func (s *Supervisor) Upgrade(binary string) error {
	req := upgradeReq{binary: binary, by: "Upgrade call", reply: make(chan error, 1)}
	select {
	case <-s.running:
	default:
		return ErrStopped
	}
	select {
	case s.reqs <- req:
		return <-req.reply
	case <-s.stopped:
		return ErrStopped
	}
}

// Serve accepts clients and runs workers until ctx is done, then drains
// the worker, closes every client connection and returns. It handles
// SIGHUP as Upgrade(""). It is called once.
func (s *Supervisor) Serve(ctx context.Context) error {
	if !s.served.CompareAndSwap(false, true) {
		return errors.New("supervisor: Serve called twice")
	}
	defer close(s.stopped)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s.timer = time.NewTimer(time.Hour)
	s.stopTimer()
	flush := time.NewTicker(time.Second)
	defer flush.Stop()
	go s.acceptLoop()
	close(s.running)
	s.log.Info("supervisor serving", "listen", s.addr, "binary", s.binary)
	// Whatever restarted the supervisor may say how the last one ended
	// (the systemd unit does); its worker died with it.
	s.start(s.runFile, os.Getenv(PrevExitEnv))
	done := ctx.Done()
	for !s.stopping || s.proc != nil {
		select {
		case <-done:
			done = nil
			s.stop()
		case <-hup:
			if err := s.upgrade(upgradeReq{by: "SIGHUP"}); err != nil {
				s.log.Error("upgrade on SIGHUP refused", "err", err)
			}
		case req := <-s.reqs:
			req.reply <- s.upgrade(req)
		case ev := <-s.events:
			s.handle(ev)
		case e := <-s.exits:
			s.onExit(e)
		case <-s.timer.C:
			s.onTimer()
		case <-flush.C:
			s.mu.Lock()
			if s.dirty {
				s.writeFile()
			}
			s.mu.Unlock()
		}
	}
	for id, h := range s.conns {
		unix.Close(h.fd)
		delete(s.conns, id)
	}
	s.waiting = 0
	closeIf(s.good)
	if s.runFile != s.binary {
		os.Remove(s.runFile)
	}
	s.publish(true)
	s.log.Info("supervisor stopped")
	return nil
}

// stop begins the end: no new clients, the worker drains.
func (s *Supervisor) stop() {
	s.stopping = true
	s.lnClosed.Store(true)
	s.ln.Close()
	if s.up != nil && s.up.State != UpgradeDone {
		s.finishUpgrade(UpgradeFailed, "the supervisor stopped", nil)
	}
	s.stopTimer()
	if s.proc != nil {
		s.drain(s.proc, "the supervisor is stopping")
	}
	s.publish(true)
}

func (s *Supervisor) handle(ev any) {
	switch ev := ev.(type) {
	case accepted:
		s.onAccept(ev)
	case workerMsg:
		s.onMessage(ev)
	}
}

func (s *Supervisor) onAccept(a accepted) {
	if s.stopping {
		unix.Close(a.fd)
		return
	}
	s.counter++
	if s.counter == 0 { // 2^32 connections: a new epoch keeps ids unique
		s.epoch, s.counter = newEpoch(), 1
	}
	id := s.epoch<<32 | uint64(s.counter)
	h := &held{fd: a.fd, remote: a.remote}
	s.conns[id] = h
	s.waiting++
	if p := s.proc; p != nil && p.ready && !p.asked {
		s.hand(p, []uint64{id})
	}
	s.publish(false)
}

func (s *Supervisor) onMessage(ev workerMsg) {
	p := ev.p
	if p != s.proc {
		return // from a worker already gone
	}
	if ev.err != nil {
		s.log.Warn("bad message from worker", "pid", p.pid, "err", ev.err)
		s.cur.BadMessages++
		s.cur.LastBad = fmt.Sprintf("worker %d: %v", p.pid, ev.err)
		s.publish(true)
		return
	}
	switch m := ev.m; m.Type {
	case kindReady:
		s.onReady(p)
	case kindClosed:
		if h := s.conns[m.ID]; h != nil && h.with == p.gen {
			unix.Close(h.fd)
			delete(s.conns, m.ID)
			s.publish(false)
		}
	case kindUpgrade:
		err := s.upgrade(upgradeReq{binary: m.Binary, by: fmt.Sprintf("worker %d", p.pid)})
		reply := message{Type: kindReply, Seq: m.Seq}
		if err != nil {
			reply.Error = err.Error()
		}
		s.sendTo(p, reply)
	case kindStatus:
		st := s.Status()
		s.sendTo(p, message{Type: kindReply, Seq: m.Seq, Status: &st})
	case kindShutdown:
		// Answered first: the drain that follows ends the worker's wait.
		s.sendTo(p, message{Type: kindReply, Seq: m.Seq})
		if !s.stopping {
			s.log.Info("shutdown asked by the worker", "pid", p.pid)
			s.stop()
		}
	}
}

func (s *Supervisor) onReady(p *proc) {
	if p.ready {
		s.onMessage(workerMsg{p: p, err: badMessage("from the worker: ready sent twice")})
		return
	}
	p.ready = true
	s.stopTimer()
	s.log.Info("worker ready", "pid", p.pid, "binary", p.binary, "after", time.Since(p.started).Round(time.Millisecond))
	if p.image != nil {
		closeIf(s.good)
		s.good, p.image = p.image, nil
	}
	if s.runFile != p.binary && s.runFile != s.binary {
		os.Remove(s.runFile) // a restored copy no longer needed
	}
	s.runFile = p.binary
	if s.up != nil {
		switch s.up.State {
		case UpgradeStarting:
			s.binary = s.up.To
			s.finishUpgrade(UpgradeDone, "", nil)
		case UpgradePending:
			s.beginDrain(p)
			s.publish(true)
			return
		}
	}
	ids := make([]uint64, 0, s.waiting)
	for id, h := range s.conns {
		if h.with == 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids) // in the order they came
	for len(ids) > 0 {
		n := min(len(ids), maxBatch)
		if !s.hand(p, ids[:n]) {
			break
		}
		ids = ids[n:]
	}
	s.publish(true)
}

// hand gives connections to p, in one message; false if p can take no
// more.
func (s *Supervisor) hand(p *proc, ids []uint64) bool {
	m := message{Type: kindConn, Conns: make([]connInfo, len(ids))}
	fds := make([]int, len(ids))
	for i, id := range ids {
		h := s.conns[id]
		m.Conns[i] = connInfo{ID: id, Remote: h.remote, Handovers: h.handovers}
		fds[i] = h.fd
	}
	if err := send(p.sock, m, fds, sendTimeout); err != nil {
		s.sendFailed(p, err)
		return false
	}
	for _, id := range ids {
		s.conns[id].with = p.gen
	}
	s.waiting -= len(ids)
	s.cur.Handovers += uint64(len(ids))
	return true
}

// sendTo sends m to p, if p can still be told anything.
func (s *Supervisor) sendTo(p *proc, m message) {
	if err := send(p.sock, m, nil, sendTimeout); err != nil {
		s.sendFailed(p, err)
	}
}

// sendFailed: a worker that cannot be told anything is either dying (its
// exit will be reported) or hung, and then it is killed.
func (s *Supervisor) sendFailed(p *proc, err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s.kill(p, fmt.Sprintf("it read nothing from its handover socket for %v", sendTimeout))
		return
	}
	s.log.Debug("send to worker", "pid", p.pid, "err", err)
}

func (s *Supervisor) kill(p *proc, reason string) {
	s.log.Warn("killing worker", "pid", p.pid, "reason", reason)
	p.asked, p.reason = true, reason
	syscall.Kill(p.pid, syscall.SIGKILL)
}

// drain asks p to finish its requests and exit, within ReadyTimeout.
func (s *Supervisor) drain(p *proc, reason string) {
	if p.asked {
		return
	}
	p.asked, p.reason = true, reason
	s.log.Info("draining worker", "pid", p.pid, "reason", reason)
	s.setTimer(timerDrain, s.cfg.ReadyTimeout)
	if err := send(p.sock, message{Type: kindDrain}, nil, sendTimeout); err != nil {
		s.kill(p, fmt.Sprintf("%s, but it could not be told: %v", reason, err))
	}
}

func (s *Supervisor) onTimer() {
	kind := s.timerFor
	s.timerFor = timerNone
	switch p := s.proc; {
	case kind == timerBackoff && p == nil && !s.stopping:
		s.start(s.runFile, s.prevExit())
	case kind == timerReady && p != nil && !p.ready:
		s.kill(p, fmt.Sprintf("not ready within %v", s.cfg.ReadyTimeout))
	case kind == timerDrain && p != nil:
		s.kill(p, fmt.Sprintf("%s, and it did not exit within %v", p.reason, s.cfg.ReadyTimeout))
	}
}

// start starts a worker from file; a failure to start is reported as its
// exit.
func (s *Supervisor) start(file, prevExit string) {
	s.gen++
	env := workerEnv(os.Environ(), s.cfg.Env, s.addr, prevExit)
	p, err := spawn(s.gen, file, s.cfg.Args, env, s.exits)
	if err != nil {
		s.log.Error("worker did not start", "binary", file, "err", err)
		p = &proc{gen: s.gen, binary: file, started: time.Now(), stderr: newTail()}
		s.proc = p
		s.exits <- exited{p: p, err: err}
		return
	}
	s.proc = p
	s.log.Info("worker started", "pid", p.pid, "binary", file)
	s.cur.Starts++
	if s.up != nil && s.up.State == UpgradeStarting {
		s.up.NewPID = p.pid
	}
	s.setTimer(timerReady, s.cfg.ReadyTimeout)
	go s.read(p)
	s.publish(true)
}

// read passes p's messages to the loop until its socket ends.
func (s *Supervisor) read(p *proc) {
	r := newReceiver(p.sock, fromWorker)
	for {
		m, _, err := r.next() // a worker's messages carry no descriptors (decode checks)
		if err != nil && !errors.Is(err, ErrBadMessage) {
			return // its exit is reported by the waiter
		}
		select {
		case s.events <- workerMsg{p: p, m: m, err: err}:
		case <-s.stopped:
			return
		}
	}
}

func (s *Supervisor) prevExit() string {
	if s.cur.LastExit == nil {
		return ""
	}
	return s.cur.LastExit.Status
}

func (s *Supervisor) onExit(e exited) {
	p := e.p
	if p != s.proc {
		return
	}
	s.proc = nil
	s.stopTimer()
	if p.sock != nil {
		p.sock.Close()
	}
	closeIf(p.image)
	ex := &Exit{PID: p.pid, Binary: p.binary, At: time.Now(), Uptime: time.Since(p.started), Asked: p.asked,
		Reason: p.reason, Stderr: p.stderr.last()}
	switch {
	case e.err != nil:
		ex.Status = "not started: " + e.err.Error()
	case e.state != nil:
		ex.Status = e.state.String()
	}
	for _, h := range s.conns {
		if h.with == p.gen {
			h.with = 0
			h.handovers++
			s.waiting++
		}
	}
	level := slog.LevelWarn
	if p.asked {
		level = slog.LevelInfo
	}
	s.log.Log(context.Background(), level, "worker exited", "pid", p.pid, "status", ex.Status, "uptime", ex.Uptime.Round(time.Millisecond),
		"reason", p.reason, "conns", len(s.conns))
	s.cur.LastExit = ex

	switch {
	case s.stopping:
	case s.up != nil && s.up.State == UpgradeStarting:
		s.upgradeFailed(p, ex)
	case s.up != nil: // pending or draining: the old worker is gone, the new one starts
		s.up.State = UpgradeStarting
		s.start(s.up.To, ex.Status)
	default:
		s.restart(ex)
	}
	s.publish(true)
}

// restart starts the worker again after one that died unasked (or was
// killed for not being ready), with backoff.
func (s *Supervisor) restart(ex *Exit) {
	s.cur.Restarts++
	if ex.Uptime >= s.cfg.StableAfter {
		s.quick, s.backoff = 0, 0
	} else {
		s.quick++
		switch {
		case s.quick == 1:
			s.backoff = 0
		case s.backoff == 0:
			s.backoff = s.cfg.MinBackoff
		default:
			s.backoff = min(2*s.backoff, s.cfg.MaxBackoff)
		}
	}
	if s.backoff == 0 {
		s.start(s.runFile, ex.Status)
		return
	}
	s.log.Warn("worker dies soon after it starts: backing off", "deaths_in_a_row", s.quick, "backoff", s.backoff)
	s.setTimer(timerBackoff, s.backoff)
}

// upgrade begins an upgrade to req.binary.
func (s *Supervisor) upgrade(req upgradeReq) error {
	if s.stopping {
		return ErrStopped
	}
	if s.up != nil {
		return fmt.Errorf("%w (to %s, %s)", ErrUpgradeInProgress, s.up.To, s.up.State)
	}
	to := req.binary
	if to == "" {
		to = s.binary
	}
	s.upSeq++
	u := &UpgradeResult{Seq: s.upSeq, From: s.binary, To: to, By: req.by, Started: time.Now()}
	abs, err := filepath.Abs(to)
	if err == nil {
		u.To = abs
		err = checkBinary(abs)
	}
	if err != nil {
		u.State, u.Finished, u.Reason = UpgradeFailed, time.Now(), err.Error()
		s.cur.LastUpgrade = u
		s.publish(true)
		return err
	}
	s.up = u
	s.log.Info("upgrade", "seq", u.Seq, "from", u.From, "to", u.To, "by", u.By)
	switch p := s.proc; {
	case p == nil: // in backoff: no worker to drain
		s.stopTimer()
		u.State = UpgradeStarting
		s.start(u.To, s.prevExit())
	case !p.ready: // a worker is starting: it drains once it is ready, or is replaced if it dies first
		u.State = UpgradePending
	default:
		s.beginDrain(p)
	}
	s.publish(true)
	return nil
}

func (s *Supervisor) beginDrain(p *proc) {
	s.up.State, s.up.OldPID = UpgradeDraining, p.pid
	s.drain(p, "upgrade to "+s.up.To)
}

// upgradeFailed: the new worker ended before it was ready. The previous
// binary starts again (a kept copy, if its path now names another file).
func (s *Supervisor) upgradeFailed(p *proc, ex *Exit) {
	how := "exited (" + ex.Status + ")"
	if p.reason != "" {
		how = p.reason + " (" + ex.Status + ")"
	}
	s.finishUpgrade(UpgradeFailed, fmt.Sprintf("the worker from %s ended before it was ready: %s", p.binary, how), ex.Stderr)
	back := s.runFile
	if s.good != nil && replaced(s.good, back) {
		dir := os.TempDir()
		if s.cfg.StatusFile != "" {
			dir = filepath.Dir(s.cfg.StatusFile)
		}
		if cp, err := restoreImage(s.good, dir, back); err != nil {
			s.log.Error("the previous binary was replaced on disk and cannot be restored: starting the new file", "path", back, "err", err)
		} else {
			s.log.Warn("the previous binary was replaced on disk: starting the copy kept of it", "path", back, "copy", cp)
			back = cp
		}
	}
	s.log.Error("upgrade failed: starting the previous binary", "reason", s.cur.LastUpgrade.Reason, "binary", back)
	s.runFile = back
	s.cur.Restarts++
	s.start(back, ex.Status)
}

func (s *Supervisor) finishUpgrade(state, reason string, stderr []string) {
	u := s.up
	s.up = nil
	u.State, u.Finished, u.Reason, u.Stderr = state, time.Now(), reason, stderr
	if state == UpgradeDone {
		s.log.Info("upgrade done", "seq", u.Seq, "to", u.To, "pid", u.NewPID, "took", u.Finished.Sub(u.Started).Round(time.Millisecond))
	}
	s.cur.LastUpgrade = u
}

func (s *Supervisor) setTimer(kind timerKind, d time.Duration) {
	s.timerFor = kind
	s.timer.Reset(d)
}

func (s *Supervisor) stopTimer() {
	s.timerFor = timerNone
	s.timer.Stop()
}

// publish makes the loop's status the one Status returns. Lifecycle
// changes also go to the status file, before anyone can see them in
// Status; connection counts reach it within a second.
func (s *Supervisor) publish(lifecycle bool) {
	st := &s.cur
	st.Binary = s.binary
	st.Running = ""
	if s.runFile != s.binary {
		st.Running = s.runFile
	}
	st.Worker, st.WorkerSince, st.NextStart, st.Backoff = 0, time.Time{}, time.Time{}, s.backoff
	switch p := s.proc; {
	case p == nil && (s.stopping || s.timerFor != timerBackoff):
		st.State = StateStopped
	case p == nil:
		st.State = StateBackoff
		st.NextStart = time.Now().Add(s.backoff)
	default:
		st.Worker, st.WorkerSince = p.pid, p.started
		switch {
		case p.asked:
			st.State = StateDraining
		case p.ready:
			st.State = StateReady
		default:
			st.State = StateStarting
		}
	}
	if s.up != nil {
		u := *s.up
		st.LastUpgrade = &u
	}
	st.Conns, st.Waiting, st.Updated = len(s.conns), s.waiting, time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = st.clone()
	s.dirty = true
	if lifecycle {
		s.writeFile()
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// writeFile writes s.st to the status file; s.mu is held.
func (s *Supervisor) writeFile() {
	s.dirty = false
	if s.cfg.StatusFile == "" {
		return
	}
	err := writeStatusFile(s.cfg.StatusFile, s.st)
	switch {
	case err != nil && err.Error() != s.fileErr:
		s.log.Error("status file not written", "err", err)
		s.fileErr = err.Error()
	case err == nil:
		s.fileErr = ""
	}
}
