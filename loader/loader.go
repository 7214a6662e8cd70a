package loader

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"plugin"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hothost/hothost/abi"
	"github.com/hothost/hothost/loader/sidecar"
)

// Options configure a Loader. Zero values get the defaults noted.
type Options struct {
	// Dir is the plugin directory to poll. Required.
	Dir string
	// PollInterval is Run's period (default 1s).
	PollInterval time.Duration
	// PublicKey, when set, makes a valid <file>.sig mandatory.
	PublicKey ed25519.PublicKey
	// Preflight checks a plugin before the host opens it. The default
	// re-executes os.Executable() in preflight mode (see PreflightMain)
	// and kills it after PreflightTimeout.
	Preflight func(ctx context.Context, path string) (*PreflightReport, error)
	// PreflightTimeout bounds one preflight (default 10s).
	PreflightTimeout time.Duration
	// ProbationWindow is how long after activation panics count against
	// a version (default 1m); ProbationPanics is how many panics in that
	// window roll it back (default 3). A negative value disables probation.
	ProbationWindow time.Duration
	ProbationPanics int
	// Logger gets one line per event (default slog.Default()).
	Logger *slog.Logger
	// OnEvent, when set, is called for every event, never with a lock held.
	OnEvent func(Event)
	// Static modules are linked into the binary: they start active (file
	// "static:<name>") and a newer plugin version takes over as usual. Those
	// given to RegisterStatic are added to every Loader.
	Static []*abi.Module
	// HistoryFile keeps the version history and every decision in it
	// (activations, rollbacks, pins, bad marks, quarantines, crashes, and
	// each file's preflight result) across restarts; a host passes
	// <data dir>/versions.json. "" keeps the history in memory only. See
	// ErrHistoryInvalid for its format and what happens when it is damaged.
	HistoryFile string
}

var (
	staticMu sync.Mutex
	statics  []*abi.Module
)

// RegisterStatic adds a module linked into the binary to every Loader
// created afterwards (call it from an init, before New). It checks the
// descriptor like a plugin's: name, semver, ABI constraint, handlers.
func RegisterStatic(m *abi.Module) error {
	if _, err := staticName(m); err != nil {
		return err
	}
	staticMu.Lock()
	defer staticMu.Unlock()
	statics = append(statics, m)
	return nil
}

// staticName checks a static module as if it came from <name>-<version>.so.
func staticName(m *abi.Module) (fileName, error) {
	if m == nil {
		return fileName{}, fmt.Errorf("%w: nil module", ErrDescriptor)
	}
	fn, err := parseFileName(m.Name + "-" + m.Version + ".so")
	if err != nil {
		return fileName{}, err
	}
	if _, err := checkModule(m, fn); err != nil {
		return fileName{}, err
	}
	return fn, nil
}

// State is where a version stands.
type State string

// Version states, as the admin API shows them.
const (
	StateActive     State = "active"      // its handlers are in the current table
	StateStandby    State = "standby"     // loaded, not active; Activate or Rollback can bring it back
	StateRejected   State = "rejected"    // failed a check; never opened in the host (or opened and refused)
	StateRolledBack State = "rolled back" // was active until an explicit Rollback
	StateBad        State = "bad"         // failed probation, marked bad or quarantined: never activated automatically again, never opened again after a restart
)

// EventKind says what happened.
type EventKind string

// Event kinds.
const (
	EventLoaded          EventKind = "loaded"           // opened, on standby
	EventActivated       EventKind = "activated"        // became active
	EventRejected        EventKind = "rejected"         // a file failed a check
	EventRolledBack      EventKind = "rolled back"      // explicit Rollback
	EventProbationFailed EventKind = "probation failed" // rolled back automatically, marked bad
	EventPinned          EventKind = "pinned"
	EventUnpinned        EventKind = "unpinned"
	EventMarkedBad       EventKind = "marked bad"  // MarkBad: by the host (a hung handler, say) or an operator
	EventQuarantined     EventKind = "quarantined" // RecordCrash: a crash of the process was attributed to it
)

// Event is one thing the loader did, for logs, metrics and the admin API.
type Event struct {
	Time            time.Time
	Kind            EventKind
	Module, Version string
	File            string
	Reason          string // why, in words
	Err             error  // for rejections: wraps one sentinel
}

// VersionInfo is one line of the history: a version loaded or a file
// rejected, in this process or (Restored) before a restart.
type VersionInfo struct {
	Module, Version, File string
	State                 State
	Reason                string // why rejected, rolled back, bad or on standby
	Err                   error  // for rejected files
	Pinned                bool
	// LoadedAt is when the version was first loaded (or the file rejected),
	// ActivatedAt its last activation, Changed the last change of its state
	// or reason; all three survive restarts.
	LoadedAt, ActivatedAt, Changed time.Time
	Crashes                        int       // crashes attributed to it (RecordCrash), across restarts
	LastCrash                      time.Time // when the last of them happened
	Restored                       bool      // the line was read from the history file at start
	Loaded                         bool      // its code is open in this process (Activate can use it)
	SHA256                         string    // of the .so, hex ("" for static modules and files rejected unhashed)
	PluginPath                     string    // the plugin path it was built with: what its stack frames name
	PreflightReused                bool      // not preflighted in this process: passed before, same bytes, same host binary
	Calls, Errors, Panics          int64     // counters of this process
	InFlight                       int64
}

// Loader polls a directory for plugin versions and keeps the current table.
type Loader struct {
	opts Options
	log  *slog.Logger
	host buildFacts
	cur  atomic.Pointer[Table]

	pollMu sync.Mutex // one Poll at a time

	mu       sync.Mutex
	files    map[string]*fileRec
	history  []*record
	modules  map[string]*moduleState
	slots    map[string]int // message -> stable index
	slotMsgs []string
	gen      uint64
	serials  int                     // versions added: the next one's Entry.Serial
	pending  []Event                 // emitted after mu is released
	next     *Table                  // built, current once saved (commit)
	plans    map[string]*restorePlan // module -> what to restore; nil after the first complete Poll
	saveSeq  uint64                  // history snapshots taken

	hostID  string // this binary's Go build id: a recorded preflight is reused only in the same binary
	histErr error  // what was wrong with the history file at start

	saveMu    sync.Mutex // one history write at a time
	savedSeq  uint64     // the newest snapshot written (or attempted)
	savedBody []byte     // what the file holds
	writeErr  error      // the last write's failure, until one succeeds
}

type moduleState struct {
	active   *version
	prev     []*version // what was active before, most recent last
	loaded   map[string]*version
	pinned   string
	messages map[string]bool // every message any loaded version handles
}

// fileRec is what the poller knows about one path.
type fileRec struct {
	seen        bool
	size        int64
	mtime       time.Time
	final       bool   // handed to preflight: never considered again
	rejectedKey string // the exact state a pre-open check rejected
	sumKey      string // the state sum was computed for
	sum         [32]byte
	lastErr     error // its rejection in this process, if any
}

// New checks opts and returns a Loader with an empty table. It reads the
// host's build info once: plugins are compared with it.
func New(opts Options) (*Loader, error) {
	if opts.Dir == "" {
		return nil, errors.New("loader: Options.Dir is required")
	}
	host, err := hostFacts()
	if err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.PreflightTimeout <= 0 {
		opts.PreflightTimeout = 10 * time.Second
	}
	if opts.Preflight == nil {
		opts.Preflight = execPreflight
	}
	if opts.ProbationWindow == 0 {
		opts.ProbationWindow = time.Minute
	}
	if opts.ProbationPanics == 0 {
		opts.ProbationPanics = 3
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.PublicKey != nil && len(opts.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("loader: PublicKey has %d bytes, want %d", len(opts.PublicKey), ed25519.PublicKeySize)
	}
	l := &Loader{opts: opts, log: opts.Logger.With("component", "loader"), host: host,
		files: map[string]*fileRec{}, modules: map[string]*moduleState{}, slots: map[string]int{}}
	l.cur.Store(&Table{index: map[string]int{}, modules: map[string]string{}})
	if opts.HistoryFile != "" {
		l.hostID = hostBuildID()
		l.openHistory()
	}
	staticMu.Lock()
	all := append(append([]*abi.Module(nil), statics...), opts.Static...)
	staticMu.Unlock()
	for _, m := range all {
		fn, err := staticName(m)
		if err != nil {
			return nil, fmt.Errorf("loader: static module: %w", err)
		}
		name := "static:" + m.Name + "-" + m.Version
		if err := l.add(candidate{path: name, base: name, fn: fn}, m); err != nil {
			return nil, fmt.Errorf("loader: static module: %w", err)
		}
	}
	// A history that cannot be written is reported by HistoryError and by
	// every later change; the host still starts.
	l.commit()
	return l, nil
}

// Dir is the directory the Loader polls.
func (l *Loader) Dir() string { return l.opts.Dir }

// Current returns the table to call handlers through: one atomic load.
func (l *Loader) Current() *Table { return l.cur.Load() }

// Run polls every PollInterval until ctx is done.
func (l *Loader) Run(ctx context.Context) {
	t := time.NewTicker(l.opts.PollInterval)
	defer t.Stop()
	for {
		if err := l.Poll(ctx); err != nil {
			l.log.Debug("poll", "err", err) // each rejection was logged on its own already
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll scans the directory once: every complete new file is checked,
// preflighted, opened and activated or put on standby. It returns an error
// when the directory cannot be read, and otherwise the rejections of this
// poll joined (each wraps its sentinel; each is also an event and in the
// history).
func (l *Loader) Poll(ctx context.Context) error {
	l.pollMu.Lock()
	defer l.pollMu.Unlock()
	ents, err := os.ReadDir(l.opts.Dir)
	if err != nil {
		return fmt.Errorf("loader: read plugin dir: %w", err)
	}
	var ready []candidate
	var errs []error
	present := make(map[string]bool, len(ents))
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".so") || strings.HasPrefix(name, ".") {
			continue
		}
		present[filepath.Join(l.opts.Dir, name)] = true
		c, ok, err := l.scan(filepath.Join(l.opts.Dir, name))
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			ready = append(ready, c)
		}
	}
	// Forget files that went away before any of their code ran; a path that
	// reached preflight stays remembered, so it is never opened again.
	for path, rec := range l.files {
		if !present[path] && !rec.final {
			delete(l.files, path)
		}
	}
	// Oldest first, so that of several new versions the newest ends active.
	sort.Slice(ready, func(i, j int) bool {
		a, b := ready[i].fn, ready[j].fn
		if a.module != b.module {
			return a.module < b.module
		}
		return a.sem.LessThan(b.sem)
	})
	for _, c := range ready {
		if ctx.Err() != nil {
			break
		}
		if err := l.consider(ctx, c); err != nil {
			errs = append(errs, err)
		}
		// Each file's decision is saved and served before the next file's
		// preflight, which may take up to PreflightTimeout.
		errs = append(errs, l.commit())
	}
	if ctx.Err() == nil {
		l.mu.Lock()
		if l.plans != nil {
			l.resolveLocked()
		}
		l.mu.Unlock()
	}
	errs = append(errs, l.commit())
	return errors.Join(errs...)
}

type candidate struct {
	path string
	base string
	key  string
	sum  [32]byte
	fn   fileName
	rec  *fileRec

	pluginPath string           // from its build info, once read
	pre        *preflightRecord // its preflight's outcome, once known
	preReused  bool             // pre came from the history
}

// scan decides whether path is complete: its .sha256 sidecar is present and
// matches. A mismatch is a rejection only once size and mtime have been the
// same for two polls (the file may still be being written); a file that
// changes after a rejection is looked at again, since nothing of it ran.
func (l *Loader) scan(path string) (candidate, bool, error) {
	rec := l.files[path]
	if rec == nil {
		rec = &fileRec{}
		l.files[path] = rec
	}
	if rec.final {
		return candidate{}, false, nil
	}
	st, err := os.Lstat(path)
	if err != nil {
		return candidate{}, false, nil // gone between ReadDir and Lstat
	}
	stable := rec.seen && rec.size == st.Size() && rec.mtime.Equal(st.ModTime())
	rec.seen, rec.size, rec.mtime = true, st.Size(), st.ModTime()
	base := filepath.Base(path)
	sumFile, err := os.ReadFile(path + sidecar.SumSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return candidate{}, false, nil // not complete until its checksum is there
	}
	statKey := fmt.Sprintf("%d/%d", st.Size(), st.ModTime().UnixNano())
	key := fmt.Sprintf("%s/%x", statKey, sumFile)
	if rec.rejectedKey == key {
		return candidate{}, false, nil // rejected as it is now; told once
	}
	reject := func(err error) (candidate, bool, error) {
		rec.rejectedKey = key
		c := candidate{path: path, rec: rec}
		if rec.sumKey == statKey {
			c.sum = rec.sum // hashed as it is now
		}
		return candidate{}, false, l.reject(c, err)
	}
	if !st.Mode().IsRegular() {
		return reject(fmt.Errorf("%w: %s is not a regular file (%v)", ErrName, base, st.Mode().Type()))
	}
	if err != nil {
		if stable {
			return reject(fmt.Errorf("%w: read %s: %v", ErrChecksum, base+sidecar.SumSuffix, err))
		}
		return candidate{}, false, nil
	}
	want, err := sidecar.ParseSum(sumFile)
	if err != nil {
		if stable {
			return reject(fmt.Errorf("%w: %s: %v", ErrChecksum, base+sidecar.SumSuffix, err))
		}
		return candidate{}, false, nil
	}
	if rec.sumKey != statKey {
		sum, err := sidecar.FileSum(path)
		if err != nil {
			return candidate{}, false, nil
		}
		rec.sum, rec.sumKey = sum, statKey
	}
	if rec.sum != want {
		if stable {
			return reject(fmt.Errorf("%w: %s has sha256 %x, its sidecar says %x", ErrChecksum, base, rec.sum[:8], want[:8]))
		}
		return candidate{}, false, nil // still being written, probably
	}
	fn, err := parseFileName(base)
	if err != nil {
		return reject(err)
	}
	return candidate{path: path, base: base, key: key, sum: rec.sum, fn: fn, rec: rec}, true, nil
}

// consider runs the checks on a complete file and, if it passes, opens it.
func (l *Loader) consider(ctx context.Context, c candidate) error {
	reject := func(err error) error {
		c.rec.rejectedKey = c.key
		return l.reject(c, err)
	}
	l.mu.Lock()
	if ms := l.modules[c.fn.module]; ms != nil && ms.loaded[c.fn.version] != nil {
		v := ms.loaded[c.fn.version]
		l.mu.Unlock()
		return reject(fmt.Errorf("%w: %s %s was loaded from %s (%s)", ErrDuplicate, c.fn.module, c.fn.version, filepath.Base(v.file), v.stateLocked()))
	}
	if r := l.badLocked(c.fn.module, c.fn.version); r != nil {
		_, reason, _, _ := r.liveLocked()
		l.mu.Unlock()
		if r.sum == c.sum {
			// Its code misbehaved in this host before: it is not run again,
			// not even its init (see StateBad). Told once per process.
			c.rec.final = true
			l.log.Warn("plugin not opened: marked bad before", "module", c.fn.module, "version", c.fn.version,
				"file", c.path, "reason", reason)
			return nil
		}
		return reject(fmt.Errorf("%w: %s %s is marked bad (%s); a new build needs a new version", ErrDuplicate, c.fn.module, c.fn.version, reason))
	}
	l.mu.Unlock()
	if l.opts.PublicKey != nil {
		sig, err := os.ReadFile(c.path + sidecar.SigSuffix)
		if err != nil {
			return reject(fmt.Errorf("%w: %s is unsigned (no %s) and this host requires signed plugins", ErrSignature, c.base, sidecar.SigSuffix))
		}
		if err := sidecar.Verify(l.opts.PublicKey, c.base, c.sum, sig); err != nil {
			return reject(fmt.Errorf("%w: %s: %v", ErrSignature, c.base, err))
		}
	}
	pf, err := pluginFacts(c.path)
	if err != nil {
		return reject(fmt.Errorf("%s: %w", c.base, err))
	}
	if err := compareBuild(l.host, pf); err != nil {
		return reject(fmt.Errorf("%s: %w", c.base, err))
	}

	c.pluginPath = pluginPathOf(pf)

	// From here on the file's code runs (first in the child), so the path is
	// never considered again, whatever happens to it.
	c.rec.final = true
	rep, err := l.runPreflight(ctx, &c, pf)
	if err != nil {
		return l.reject(c, fmt.Errorf("%s: preflight: %w", c.base, err))
	}

	// A message belongs to one module: refuse before the host opens it.
	if err := l.conflicts(c.fn.module, rep.Handlers); err != nil {
		return l.reject(c, fmt.Errorf("%s: %w", c.base, err))
	}

	p, err := plugin.Open(c.path)
	if err != nil {
		return l.reject(c, fmt.Errorf("%s: %w", c.base, explainOpenError(err)))
	}
	sym, err := p.Lookup(abi.Symbol)
	if err != nil {
		return l.reject(c, fmt.Errorf("%s: %w: %v", c.base, ErrNoDescriptor, err))
	}
	m, err := checkModule(sym, c.fn)
	if err != nil {
		return l.reject(c, fmt.Errorf("%s: %w", c.base, err))
	}
	if err := ReleaseCleanPages(c.path); err != nil {
		l.log.Debug("read-only pages of the plugin kept resident", "file", c.base, "err", err)
	}
	return l.add(c, m)
}

// ExecPreflight is the default Options.Preflight: it re-executes this
// binary in preflight mode (see PreflightMain) and kills the child when ctx
// ends. A host wraps it to count or time preflights.
func ExecPreflight(ctx context.Context, path string) (*PreflightReport, error) {
	return execPreflight(ctx, path)
}

// runPreflight returns the file's preflight report: the one recorded in the
// history for these bytes, build facts and host binary (a restart does not
// pay for the child again), or a fresh one from Options.Preflight. c.pre
// keeps the outcome either way.
func (l *Loader) runPreflight(ctx context.Context, c *candidate, pf buildFacts) (*PreflightReport, error) {
	l.mu.Lock()
	pre := l.reusablePreflightLocked(*c, pf)
	l.mu.Unlock()
	if pre != nil {
		c.pre, c.preReused = pre, true
		rep := *pre.Report
		return &rep, nil
	}
	pctx, cancel := context.WithTimeout(ctx, l.opts.PreflightTimeout)
	rep, err := l.opts.Preflight(pctx, c.path)
	cancel()
	if err == nil && rep == nil {
		err = fmt.Errorf("%w: %v", ErrPreflight, errNoReport)
	}
	if err == nil {
		err = rep.Err()
	}
	c.pre = &preflightRecord{Passed: err == nil, At: time.Now(), Host: l.hostID, GoVersion: pf.goVersion,
		Settings: comparedSettings(pf), Report: rep}
	if err != nil {
		c.pre.Error = err.Error()
	}
	return rep, err
}

// add registers an opened, checked version and activates it if it is the
// newest and the module is not pinned.
func (l *Loader) add(c candidate, m *abi.Module) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	msgs := make([]string, 0, len(m.Handlers))
	for msg := range m.Handlers {
		msgs = append(msgs, msg)
	}
	if err := l.conflictsLocked(m.Name, msgs); err != nil {
		err = fmt.Errorf("%s: %w", c.base, err)
		l.rejectLocked(c, err)
		return err
	}
	ms := l.moduleLocked(m.Name)
	r := l.recordForLocked(c, m.Name, m.Version)
	v := &version{l: l, module: m.Name, version: m.Version, sem: c.fn.sem, file: c.path, mod: m, loadedAt: r.loadedAt,
		state: r.state, reason: r.reason, activatedAt: r.activatedAt, changed: r.changed, serial: l.serials,
		calls: newCallCounters(runtime.GOMAXPROCS(0))}
	l.serials++
	r.v = v
	ms.loaded[m.Version] = v
	for msg := range m.Handlers {
		ms.messages[msg] = true
	}
	if p := l.plans[m.Name]; p != nil {
		l.restoreLocked(ms, p, r)
		return nil
	}
	l.decideLocked(ms, v)
	return nil
}

// decideLocked activates a newly loaded version if it is the newest and
// the module is not pinned, or puts it on standby saying why.
func (l *Loader) decideLocked(ms *moduleState, v *version) {
	switch {
	case ms.pinned != "":
		l.standbyLocked(v, "module pinned to "+ms.pinned)
	case ms.active != nil && v.sem.GreaterThan(ms.active.sem) && len(dropped(ms.active.mod, v.mod)) > 0:
		// A newer version that stops handling a message would turn every
		// such request into `err unknown` the moment it became active
		// (invariant 6: a swap never fails a request). It waits for an
		// operator to accept that with Activate.
		l.standbyLocked(v, fmt.Sprintf("not activated automatically: it drops %s, which %s handles; Activate accepts that",
			strings.Join(dropped(ms.active.mod, v.mod), ", "), ms.active.version))
	case ms.active == nil || v.sem.GreaterThan(ms.active.sem):
		l.activateLocked(ms, v, true, "newest version")
	default:
		l.standbyLocked(v, "older than active "+ms.active.version)
	}
}

func (l *Loader) standbyLocked(v *version, why string) {
	v.setLocked(StateStandby, why)
	l.eventLocked(Event{Kind: EventLoaded, Module: v.module, Version: v.version, File: v.file, Reason: why})
}

// dropped lists, sorted, the messages old handles and next does not.
func dropped(old, next *abi.Module) []string {
	var out []string
	for msg := range old.Handlers {
		if _, ok := next.Handlers[msg]; !ok {
			out = append(out, msg)
		}
	}
	sort.Strings(out)
	return out
}

func (l *Loader) conflicts(module string, msgs []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conflictsLocked(module, msgs)
}

// conflictsLocked refuses messages that a loaded version of another module handles.
func (l *Loader) conflictsLocked(module string, msgs []string) error {
	for _, msg := range msgs {
		for name, ms := range l.modules {
			if name != module && ms.messages[msg] {
				return fmt.Errorf("%w: %q is handled by module %s", ErrConflict, msg, name)
			}
		}
	}
	return nil
}

// activateLocked makes v active; push records the old active for Rollback.
func (l *Loader) activateLocked(ms *moduleState, v *version, push bool, why string) {
	if old := ms.active; old != nil && old != v {
		old.probation.Store(nil)
		if old.state == StateActive {
			old.setLocked(StateStandby, "replaced by "+v.version)
		}
		if push {
			ms.prev = append(ms.prev, old)
		}
	}
	ms.active = v
	v.setLocked(StateActive, why)
	l.armProbationLocked(v, v.changed)
	l.storeLocked()
	l.eventLocked(Event{Kind: EventActivated, Module: v.module, Version: v.version, File: v.file, Reason: why})
}

// armProbationLocked records v's activation at since and starts its
// probation from then; a window already over leaves it disarmed.
func (l *Loader) armProbationLocked(v *version, since time.Time) {
	v.activatedAt = since
	v.probation.Store(nil)
	if until := since.Add(l.opts.ProbationWindow); l.opts.ProbationPanics > 0 && l.opts.ProbationWindow > 0 && time.Now().Before(until) {
		v.probation.Store(&probation{until: until, base: v.panics.Load(), threshold: int64(l.opts.ProbationPanics)})
	}
}

// storeLocked builds a table from every module's active version; commit
// makes it current with one atomic store.
func (l *Loader) storeLocked() {
	names := make([]string, 0, len(l.modules))
	for name := range l.modules {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if v := l.modules[name].active; v != nil {
			msgs := make([]string, 0, len(v.mod.Handlers))
			for msg := range v.mod.Handlers {
				msgs = append(msgs, msg)
			}
			sort.Strings(msgs)
			for _, msg := range msgs {
				if _, ok := l.slots[msg]; !ok {
					l.slots[msg] = len(l.slotMsgs)
					l.slotMsgs = append(l.slotMsgs, msg)
				}
			}
		}
	}
	l.gen++
	t := &Table{gen: l.gen, entries: make([]entry, len(l.slotMsgs)),
		index: make(map[string]int, len(l.slots)), modules: map[string]string{}}
	for msg, i := range l.slots {
		t.index[msg] = i
		t.entries[i].msg = msg
	}
	for _, name := range names {
		if v := l.modules[name].active; v != nil {
			t.modules[name] = v.version
			for msg, h := range v.mod.Handlers {
				t.entries[l.slots[msg]] = entry{msg: msg, h: h, v: v, serial: v.serial}
			}
		}
	}
	l.next = t // current once the decision behind it is saved: see commit
}

// failProbation restores what was active before v and marks v bad. It runs
// on the goroutine of the call that crossed the threshold.
func (l *Loader) failProbation(v *version, reason string) {
	l.mu.Lock()
	ms := l.modules[v.module]
	if ms == nil || ms.active != v {
		l.mu.Unlock()
		return
	}
	l.markBadLocked(l.recordOfLocked(v), reason, EventProbationFailed)
	l.mu.Unlock()
	l.commit() // a failed save is logged and reported by HistoryError
}

// popGood pops the most recent previously active version that is not bad.
func popGood(ms *moduleState) *version {
	for len(ms.prev) > 0 {
		p := ms.prev[len(ms.prev)-1]
		ms.prev = ms.prev[:len(ms.prev)-1]
		if p.state != StateBad && p != ms.active {
			return p
		}
	}
	return nil
}

// Activate makes a loaded version active (an atomic store); the version
// active before it is what Rollback restores. Like every decision, it
// returns once the history file holds it; an ErrHistoryWrite error means
// it took effect but would not survive a restart.
func (l *Loader) Activate(module, ver string) error {
	return l.change(func() error {
		ms, v, err := l.findLocked(module, ver)
		if err != nil {
			return err
		}
		if ms.pinned != "" && ms.pinned != ver {
			return fmt.Errorf("%w: %s is pinned to %s", ErrPinned, module, ms.pinned)
		}
		if ms.active != v {
			l.activateLocked(ms, v, true, "activated by operator")
		}
		return nil
	})
}

// Rollback restores the version that was active before the current one and
// marks the current one rolled back (the poller will not re-activate it).
func (l *Loader) Rollback(module string) error {
	return l.change(func() error {
		ms := l.modules[module]
		if ms == nil || ms.active == nil {
			return fmt.Errorf("%w: module %s has no active version", ErrNoPrevious, module)
		}
		if ms.pinned != "" {
			return fmt.Errorf("%w: %s is pinned to %s", ErrPinned, module, ms.pinned)
		}
		cur := ms.active
		prev := popGood(ms)
		if prev == nil {
			return fmt.Errorf("%w: %s %s", ErrNoPrevious, module, cur.version)
		}
		cur.probation.Store(nil)
		l.activateLocked(ms, prev, false, "rollback from "+cur.version)
		cur.setLocked(StateRolledBack, "rolled back to "+prev.version)
		l.eventLocked(Event{Kind: EventRolledBack, Module: module, Version: cur.version, File: cur.file, Reason: cur.reason})
		return nil
	})
}

// Pin activates a version and keeps it active: new files of the module are
// loaded on standby until Unpin.
func (l *Loader) Pin(module, ver string) error {
	return l.change(func() error {
		ms, v, err := l.findLocked(module, ver)
		if err != nil {
			return err
		}
		ms.pinned = ver
		if ms.active != v {
			l.activateLocked(ms, v, true, "pinned by operator")
		}
		l.eventLocked(Event{Kind: EventPinned, Module: module, Version: ver, File: v.file})
		return nil
	})
}

// Unpin lets the poller activate newer versions again. It does not change
// the active version by itself: the next newer file does.
func (l *Loader) Unpin(module string) error {
	return l.change(func() error {
		ms := l.modules[module]
		if ms == nil || ms.pinned == "" {
			return nil
		}
		ver := ms.pinned
		ms.pinned = ""
		l.eventLocked(Event{Kind: EventUnpinned, Module: module, Version: ver})
		return nil
	})
}

// change runs a decision under mu, then saves the history and delivers the
// events: a decision returns only once it is durable.
func (l *Loader) change(decide func() error) error {
	l.mu.Lock()
	err := decide()
	l.mu.Unlock()
	if serr := l.commit(); err == nil {
		err = serr
	}
	return err
}

func (l *Loader) findLocked(module, ver string) (*moduleState, *version, error) {
	ms := l.modules[module]
	if ms == nil || ms.loaded[ver] == nil {
		for i := len(l.history) - 1; i >= 0; i-- {
			if r := l.history[i]; r.isVersion(module, ver) {
				s, reason, _, _ := r.liveLocked()
				return nil, nil, fmt.Errorf("%w: %s %s is %s (%s) and was not opened since the restart", ErrNotLoaded, module, ver, s, reason)
			}
		}
		return nil, nil, fmt.Errorf("%w: %s %s", ErrNotLoaded, module, ver)
	}
	return ms, ms.loaded[ver], nil
}

// Versions returns the history: every version loaded and every file
// rejected, oldest first, across restarts when Options.HistoryFile is set,
// with this process's counters.
func (l *Loader) Versions() []VersionInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]VersionInfo, 0, len(l.history))
	for _, r := range l.history {
		out = append(out, l.infoLocked(r))
	}
	return out
}

func (v *version) stateLocked() State { return v.state }

func (l *Loader) reject(c candidate, err error) error {
	if c.rec != nil {
		c.rec.lastErr = err
	}
	l.mu.Lock()
	l.rejectLocked(c, err)
	l.mu.Unlock()
	return err
}

// rejectLocked adds a rejection to the history. The same file rejected for
// the same cause (sentinel) before a restart keeps its one line, with the
// latest words.
func (l *Loader) rejectLocked(c candidate, err error) {
	var r *record
	for _, h := range l.history {
		if h.err != nil && h.file == c.path && h.sum == c.sum && rejectionKind(h.err) == rejectionKind(err) {
			r = h
			break
		}
	}
	if r == nil {
		now := time.Now()
		r = &record{file: c.path, sum: c.sum, state: StateRejected, loadedAt: now}
		if fn, perr := parseFileName(filepath.Base(c.path)); perr == nil {
			r.module, r.version = fn.module, fn.version
		}
		l.history = append(l.history, r)
	}
	if r.reason != err.Error() {
		r.reason, r.changed = err.Error(), time.Now()
	}
	r.err = err
	if c.pluginPath != "" {
		r.pluginPath = c.pluginPath
	}
	if c.pre != nil {
		r.preflight, r.preflightReused = c.pre, c.preReused
	}
	l.eventLocked(Event{Kind: EventRejected, Module: r.module, Version: r.version, File: c.path, Reason: err.Error(), Err: err})
}

func (l *Loader) eventLocked(e Event) {
	e.Time = time.Now()
	l.pending = append(l.pending, e)
}

// flush logs and delivers queued events outside the lock, so OnEvent may
// call back into the Loader.
func (l *Loader) flush() {
	l.mu.Lock()
	evs := l.pending
	l.pending = nil
	l.mu.Unlock()
	for _, e := range evs {
		level := slog.LevelInfo
		switch e.Kind {
		case EventRejected, EventProbationFailed, EventMarkedBad, EventQuarantined:
			level = slog.LevelWarn
		}
		l.log.Log(context.Background(), level, "plugin "+string(e.Kind),
			"module", e.Module, "version", e.Version, "file", e.File, "reason", e.Reason)
		if l.opts.OnEvent != nil {
			l.opts.OnEvent(e)
		}
	}
}
