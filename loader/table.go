package loader

import (
	"fmt"
	"runtime/debug"
	"sort"
	"sync/atomic"
	"time"

	goversion "github.com/hashicorp/go-version"
	"github.com/hothost/hothost/abi"
)

// Table is one immutable set of handlers: for every module, its active
// version's handlers. The loader replaces it whole with one atomic store;
// a caller that loaded a Table finishes on it however many swaps follow.
//
// Message indices are stable for the Loader's life: a message keeps its
// index in every table, so a host can resolve it once (Index) and then per
// request do Current().At(i): one atomic load and a slice index.
type Table struct {
	gen     uint64
	entries []entry
	index   map[string]int
	modules map[string]string // module -> active version
}

type entry struct {
	h      abi.Handler
	serial int // v.serial, kept here so a request reads one line of the table
	v      *version
	msg    string
}

// Gen is the table's generation, one more for every store.
func (t *Table) Gen() uint64 { return t.gen }

// Lookup returns the entry for msg: one map lookup. Prefer Index once and At per call.
func (t *Table) Lookup(msg string) (Entry, bool) {
	i, ok := t.Index(msg)
	if !ok {
		return Entry{}, false
	}
	return t.At(i), true
}

// Index returns msg's stable index if this table has a handler for it.
func (t *Table) Index(msg string) (int, bool) {
	i, ok := t.index[msg]
	if !ok || t.entries[i].h == nil {
		return 0, false
	}
	return i, true
}

// At returns the entry at index i; an entry that is not Valid (no active
// version handles that message now) returns ErrUnknownMessage from Call.
func (t *Table) At(i int) Entry {
	if uint(i) >= uint(len(t.entries)) {
		return Entry{}
	}
	return Entry{&t.entries[i]}
}

// Modules returns module -> active version in this table.
func (t *Table) Modules() map[string]string {
	m := make(map[string]string, len(t.modules))
	for k, v := range t.modules {
		m[k] = v
	}
	return m
}

// Entry is one message's handler in one version.
type Entry struct{ e *entry }

// Valid reports whether the entry has a handler.
func (e Entry) Valid() bool { return e.e != nil && e.e.h != nil }

// Msg is the message name; Module and Version say which code handles it.
func (e Entry) Msg() string { return e.field(func(x *entry) string { return x.msg }) }

// Module is the name of the module that handles the message.
func (e Entry) Module() string { return e.field(func(x *entry) string { return x.v.module }) }

// Version is the version of the module that handles the message.
func (e Entry) Version() string { return e.field(func(x *entry) string { return x.v.version }) }

func (e Entry) field(f func(*entry) string) string {
	if !e.Valid() {
		return ""
	}
	return f(e.e)
}

// Call runs the handler. A panic is recovered and returned as a *PanicError
// (errors.Is(err, ErrPanic)); calls, errors, panics and in-flight calls are
// counted on the version, and a panic feeds its probation, which may roll
// the version back before Call returns.
//
// The counting writes only the calling P's shard of the version's
// counters (counters.go): calls on different cores share no written cache
// line.
func (e Entry) Call(c *abi.Call) (err error) {
	x := e.e
	if x == nil || x.h == nil {
		return ErrUnknownMessage
	}
	v := x.v
	p := procPin() // the calling P's shard (counters.go)
	procUnpin()
	s := v.calls.of(p)
	s.started.Add(1)
	defer func() {
		r := recover()
		s.end(err != nil && r == nil) // a panic is counted by panicked, not as an error
		if r != nil {
			err = v.panicked(x.msg, r)
		}
	}()
	return x.h(c)
}

// Usage is the message's one-line usage from its module (abi.Module.Usage),
// or "" if it gives none.
func (e Entry) Usage() string {
	if !e.Valid() {
		return ""
	}
	return e.e.v.mod.Usage[e.e.msg]
}

// Others is the module's function naming the other players a call of this
// message touches (abi.Module.Others), or nil for a single-player message.
func (e Entry) Others() func(*abi.Call) ([]uint64, error) {
	if !e.Valid() {
		return nil
	}
	return e.e.v.mod.Others[e.e.msg]
}

// Handler is the entry's raw handler, for a host that accounts and recovers
// per request itself (one recover per request, per-lane counters; see
// Serial and Panicked). Calls made through it are not counted on the
// version: Call counts them.
func (e Entry) Handler() abi.Handler {
	if !e.Valid() {
		return nil
	}
	return e.e.h
}

// Serial is a small number unique to the entry's version within its
// Loader (0, 1, 2, ... in load order), for hosts that keep per-version
// counters in per-lane slices instead of shared atomics. -1 for an
// invalid entry.
func (e Entry) Serial() int {
	if !e.Valid() {
		return -1
	}
	return e.e.serial
}

// Panicked is what Call does when its handler panics, for a host that
// recovered the panic itself: count it on the version, feed its probation
// (which may roll the version back before Panicked returns), and return
// the *PanicError (errors.Is(err, ErrPanic)) with the current stack.
func (e Entry) Panicked(r any) error {
	if !e.Valid() {
		return ErrUnknownMessage
	}
	return e.e.v.panicked(e.e.msg, r)
}

// version is one loaded plugin version; its counters are updated by calls
// without any lock.
type version struct {
	l               *Loader
	module, version string
	sem             *goversion.Version
	file            string
	mod             *abi.Module
	loadedAt        time.Time
	serial          int // see Entry.Serial

	calls     callCounters // Entry.Call's, per P
	panics    atomic.Int64 // one shared word: rare, and probation reads it
	probation atomic.Pointer[probation]

	// Guarded by l.mu.
	state       State
	reason      string
	activatedAt time.Time
	changed     time.Time // last change of state or reason (history)
}

// probation is armed on activation and disarmed by rollback or expiry.
type probation struct {
	until     time.Time
	base      int64 // panics before activation
	threshold int64
	fired     atomic.Bool
}

func (v *version) panicked(msg string, r any) error {
	n := v.panics.Add(1)
	pe := &PanicError{Module: v.module, Version: v.version, Msg: msg, Value: r, Stack: debug.Stack()}
	if p := v.probation.Load(); p != nil && n-p.base >= p.threshold && time.Now().Before(p.until) &&
		p.fired.CompareAndSwap(false, true) {
		v.l.failProbation(v, fmt.Sprintf("%d panics within %v of activation (threshold %d), last: %v",
			n-p.base, v.l.opts.ProbationWindow, p.threshold, r))
	}
	return pe
}

// SerialOf is the Entry.Serial of a loaded version, for matching a host's
// per-serial counters to the history.
func (l *Loader) SerialOf(module, ver string) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ms := l.modules[module]; ms != nil && ms.loaded[ver] != nil {
		return ms.loaded[ver].serial, true
	}
	return 0, false
}

// Messages lists, sorted, the messages this table has a handler for.
func (t *Table) Messages() []string {
	out := make([]string, 0, len(t.index))
	for msg, i := range t.index {
		if t.entries[i].h != nil {
			out = append(out, msg)
		}
	}
	sort.Strings(out)
	return out
}
