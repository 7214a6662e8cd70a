package loader

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// record is one history line: a version loaded (in this process or before
// a restart), or a file rejected. While v is set the version is loaded here
// and v's state, reason and times are the live ones; the record's own
// copies hold what the history file said for a version not loaded here.
type record struct {
	v                     *version
	module, version, file string
	sum                   [32]byte // zero: not hashed (a static module, or rejected before hashing)
	pluginPath            string
	err                   error // set for a rejection
	preflight             *preflightRecord
	preflightReused       bool // this process took the preflight from the history
	crashes               int
	lastCrash             time.Time
	restored              bool // read from the history file at start

	state                          State
	reason                         string
	loadedAt, activatedAt, changed time.Time
}

// restorePlan is what a module had before the restart, honored by the first
// complete Poll (resolveLocked) and then dropped.
type restorePlan struct {
	want  *record    // the version that was active; nil if none was
	fresh []*version // files the history never saw: decided after the restore, by the usual rules
}

func (r *record) liveLocked() (s State, reason string, activated, changed time.Time) {
	if v := r.v; v != nil {
		return v.state, v.reason, v.activatedAt, v.changed
	}
	return r.state, r.reason, r.activatedAt, r.changed
}

func (r *record) setLocked(s State, reason string) {
	if r.v != nil {
		r.v.setLocked(s, reason)
		return
	}
	r.state, r.reason, r.changed = s, reason, time.Now()
}

func (v *version) setLocked(s State, reason string) {
	v.state, v.reason, v.changed = s, reason, time.Now()
}

// isVersion reports whether r stands for module version ver (a rejection
// line does not: nothing of it was loaded).
func (r *record) isVersion(module, ver string) bool {
	return r.err == nil && r.module == module && r.version == ver
}

// openHistory reads the history file at start: records, pins and restore
// plans. A file that cannot be used is moved aside (see ErrHistoryInvalid).
func (l *Loader) openHistory() {
	path := l.opts.HistoryFile
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		l.log.Info("no version history yet; it starts now", "file", path)
		return
	}
	var entries []histEntry
	var body []byte
	if err == nil {
		entries, body, err = decodeHistory(b)
	}
	if err != nil {
		aside, merr := moveAside(path)
		where := "moved aside to " + aside
		if merr != nil {
			where = "could not move it aside: " + merr.Error()
		}
		l.histErr = fmt.Errorf("loader: version history %s: %w (%s; started with an empty history: earlier pins, rollbacks, bad marks and quarantines are not applied)", path, err, where)
		l.log.Error("version history unusable", "err", l.histErr)
		return
	}
	l.savedBody = body
	pins := map[string]string{}
	for _, e := range entries {
		r := recordOf(e)
		l.history = append(l.history, r)
		if r.err != nil {
			continue
		}
		if l.plans == nil {
			l.plans = map[string]*restorePlan{}
		}
		p := l.plans[r.module]
		if p == nil {
			p = &restorePlan{}
			l.plans[r.module] = p
		}
		if r.state == StateActive {
			p.want = r
		}
		if e.Pinned {
			pins[r.module] = r.version
		}
	}
	for module, ver := range pins {
		l.moduleLocked(module).pinned = ver
	}
	l.log.Info("version history read", "file", path, "entries", len(entries), "modules", len(l.plans))
}

func recordOf(e histEntry) *record {
	r := &record{module: e.Module, version: e.Version, file: e.File, pluginPath: e.PluginPath,
		preflight: e.Preflight, crashes: e.Crashes, lastCrash: e.LastCrashAt, restored: true,
		state: e.State, reason: e.Reason, loadedAt: e.LoadedAt, activatedAt: e.ActivatedAt, changed: e.ChangedAt}
	hex.Decode(r.sum[:], []byte(e.SHA256)) // validated; "" leaves it zero
	if e.State == StateRejected {
		r.err = storedRejection(e.Reason, e.ErrKind)
	}
	return r
}

func (l *Loader) entryLocked(r *record) histEntry {
	s, reason, activated, changed := r.liveLocked()
	e := histEntry{Module: r.module, Version: r.version, File: r.file, PluginPath: r.pluginPath,
		State: s, Reason: reason, LoadedAt: r.loadedAt, ActivatedAt: activated, ChangedAt: changed,
		Crashes: r.crashes, LastCrashAt: r.lastCrash, Preflight: r.preflight}
	if r.sum != ([32]byte{}) {
		e.SHA256 = hex.EncodeToString(r.sum[:])
	}
	if r.err != nil {
		e.State, e.Reason, e.ErrKind = StateRejected, r.err.Error(), rejectionKind(r.err)
	} else if ms := l.modules[r.module]; ms != nil && ms.pinned == r.version {
		e.Pinned = true
	}
	return e
}

func (l *Loader) infoLocked(r *record) VersionInfo {
	e := l.entryLocked(r)
	vi := VersionInfo{Module: r.module, Version: r.version, File: r.file, State: e.State, Reason: e.Reason,
		Err: r.err, Pinned: e.Pinned, LoadedAt: e.LoadedAt, ActivatedAt: e.ActivatedAt, Changed: e.ChangedAt,
		Crashes: r.crashes, LastCrash: r.lastCrash, Restored: r.restored, Loaded: r.v != nil,
		SHA256: e.SHA256, PluginPath: r.pluginPath, PreflightReused: r.preflightReused}
	if v := r.v; v != nil {
		c := v.calls.sum()
		vi.Calls, vi.Errors, vi.Panics, vi.InFlight = c.done, c.errs, v.panics.Load(), c.started-c.done
	}
	return vi
}

// moduleLocked returns module's state, creating it.
func (l *Loader) moduleLocked(module string) *moduleState {
	ms := l.modules[module]
	if ms == nil {
		ms = &moduleState{loaded: map[string]*version{}, messages: map[string]bool{}}
		l.modules[module] = ms
	}
	return ms
}

// recordForLocked returns the history line a version being loaded belongs
// to: the one read from the file for these exact bytes, or a new one.
func (l *Loader) recordForLocked(c candidate, module, ver string) *record {
	for _, r := range l.history {
		if r.restored && r.v == nil && r.isVersion(module, ver) && r.file == c.path && r.sum == c.sum {
			if c.pre != nil {
				r.preflight, r.preflightReused = c.pre, c.preReused
			}
			if c.pluginPath != "" {
				r.pluginPath = c.pluginPath
			}
			return r
		}
	}
	now := time.Now()
	r := &record{module: module, version: ver, file: c.path, sum: c.sum, pluginPath: c.pluginPath,
		preflight: c.pre, preflightReused: c.preReused, loadedAt: now, changed: now}
	l.history = append(l.history, r)
	return r
}

// badLocked returns the line that marks module version bad, if any.
func (l *Loader) badLocked(module, ver string) *record {
	for _, r := range l.history {
		if s, _, _, _ := r.liveLocked(); s == StateBad && r.isVersion(module, ver) {
			return r
		}
	}
	return nil
}

// reusablePreflightLocked returns a passed preflight recorded for these
// exact bytes, build facts and host binary.
func (l *Loader) reusablePreflightLocked(c candidate, pf buildFacts) *preflightRecord {
	for _, r := range l.history {
		if r.sum == c.sum && r.preflight.reusable(l.hostID, pf, c.fn) {
			return r.preflight
		}
	}
	return nil
}

// restoreLocked puts a version loaded during the restore where the history
// had it. Only the version that was active is activated; one the history
// never saw waits for resolveLocked.
func (l *Loader) restoreLocked(ms *moduleState, p *restorePlan, r *record) {
	v := r.v
	switch {
	case !r.restored:
		p.fresh = append(p.fresh, v)
		v.setLocked(StateStandby, "new since the restart: decided once the versions active before it are back")
	case r == p.want && r.state == StateActive:
		l.activateLocked(ms, v, false, "restored: active before the restart")
		// The restart is no decision: keep the recorded reason and times, so
		// probation (and a crash's attribution window) runs from the real
		// activation.
		v.reason, v.changed = r.reason, r.changed
		l.armProbationLocked(v, r.activatedAt)
		return
	case r.state == StateActive:
		v.setLocked(StateStandby, "restored on standby: another version was active")
	}
	l.eventLocked(Event{Kind: EventLoaded, Module: v.module, Version: v.version, File: v.file, Reason: v.reason})
}

// resolveLocked ends the restore, after the first complete Poll: a module
// whose recorded active version did not come back (file gone, rejected,
// bad) falls back to the version that served most recently before it, a pin
// that cannot hold is removed, and only then are files new since the
// restart decided by the usual rules. Runs under pollMu (it reads l.files).
func (l *Loader) resolveLocked() {
	names := make([]string, 0, len(l.plans))
	for name := range l.plans {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := l.plans[name]
		ms := l.moduleLocked(name)
		if w := p.want; w != nil && (w.v == nil || ms.active != w.v) {
			why := l.whyNotRestoredLocked(w)
			if s, _, _, _ := w.liveLocked(); s == StateActive {
				w.setLocked(StateStandby, "not active since the restart: "+why)
			}
			switch fb := fallback(ms, p); {
			case ms.active != nil:
				// An operator chose a version before the first poll: it stays.
			case fb != nil:
				l.activateLocked(ms, fb, false, fmt.Sprintf("restored in place of %s, active before the restart: %s", w.version, why))
				l.log.Warn("plugin version not restored", "module", name, "version", w.version, "why", why, "active", fb.version)
			default:
				l.log.Error("plugin version not restored and no other version of the module is loaded: its messages are unhandled",
					"module", name, "version", w.version, "why", why)
			}
		}
		if pin := ms.pinned; pin != "" && (ms.active == nil || ms.active.version != pin) {
			ms.pinned = ""
			why := fmt.Sprintf("pin to %s removed: %s is not active after the restart", pin, pin)
			l.log.Warn("plugin pin removed", "module", name, "version", pin)
			l.eventLocked(Event{Kind: EventUnpinned, Module: name, Version: pin, Reason: why})
		}
		ms.prev = ms.prev[:0]
		for _, v := range ms.loaded {
			if v != ms.active && !v.activatedAt.IsZero() && v.state != StateBad && v.state != StateRolledBack {
				ms.prev = append(ms.prev, v)
			}
		}
		sort.Slice(ms.prev, func(i, j int) bool { return ms.prev[i].activatedAt.Before(ms.prev[j].activatedAt) })
		sort.Slice(p.fresh, func(i, j int) bool { return p.fresh[i].sem.LessThan(p.fresh[j].sem) })
		for _, v := range p.fresh {
			l.decideLocked(ms, v)
		}
	}
	l.plans = nil
}

// fallback is the loaded version to serve when the recorded one cannot:
// the one that was active most recently (the previous good one), else the
// newest; never a bad or rolled-back one, nor one new since the restart
// (those are decided next, by the usual rules).
func fallback(ms *moduleState, p *restorePlan) *version {
	var best *version
	for _, v := range ms.loaded {
		if v.state != StateStandby || slices.Contains(p.fresh, v) {
			continue
		}
		if best == nil || v.activatedAt.After(best.activatedAt) ||
			v.activatedAt.Equal(best.activatedAt) && v.sem.GreaterThan(best.sem) {
			best = v
		}
	}
	return best
}

// whyNotRestoredLocked says, for the log and the fallback's reason, why the
// version active before the restart is not active now.
func (l *Loader) whyNotRestoredLocked(w *record) string {
	if s, reason, _, _ := w.liveLocked(); s == StateBad {
		return "it is bad: " + reason
	}
	if strings.HasPrefix(w.file, "static:") {
		return "it is no longer linked into this binary"
	}
	if rec := l.files[w.file]; rec != nil {
		if rec.lastErr != nil {
			return "its file was rejected: " + rec.lastErr.Error()
		}
		if rec.sumKey != "" && rec.sum != w.sum {
			return fmt.Sprintf("its file %s has other content now (sha256 %x..., recorded %x...)", w.file, rec.sum[:6], w.sum[:6])
		}
	}
	if _, err := os.Lstat(w.file); errors.Is(err, fs.ErrNotExist) {
		return "its file " + w.file + " is gone"
	}
	return "its file " + w.file + " was not complete (no matching .sha256)"
}

// commit saves the history if it changed, then makes the table built for
// the decisions saved current and delivers their events. A version thus
// serves only once the history says so: if its first request kills the
// process, the next start knows the version it crashed in (RecordCrash,
// invariant 11). A save that fails is logged and returned, and the table
// is made current all the same: a decision that cannot be saved still
// takes effect (a rollback above all).
func (l *Loader) commit() error {
	gen, err := l.save()
	l.mu.Lock()
	if t := l.next; t != nil && t.gen <= gen {
		l.cur.Store(t)
		l.next = nil
	}
	l.mu.Unlock()
	l.flush()
	return err
}

// save writes the history file when its content changed, and returns the
// generation of the newest table whose decisions the file holds. Snapshots
// are taken under mu and written outside it (an fsync must not hold up
// Versions); of two racing saves the newer snapshot wins.
func (l *Loader) save() (gen uint64, err error) {
	l.mu.Lock()
	gen = l.gen
	if l.opts.HistoryFile == "" {
		l.mu.Unlock()
		return gen, nil
	}
	entries := make([]histEntry, 0, len(l.history))
	for _, r := range l.history {
		entries = append(entries, l.entryLocked(r))
	}
	l.saveSeq++
	seq := l.saveSeq
	l.mu.Unlock()
	body, err := encodeHistory(entries)
	if err != nil {
		return gen, fmt.Errorf("loader: %w: encode: %v", ErrHistoryWrite, err)
	}
	l.saveMu.Lock()
	defer l.saveMu.Unlock()
	if seq < l.savedSeq || bytes.Equal(body, l.savedBody) {
		return gen, nil // a newer snapshot was written, or this one is
	}
	l.savedSeq = seq
	if err := writeHistory(l.opts.HistoryFile, body); err != nil {
		l.writeErr = fmt.Errorf("loader: %w: %s: %v (the change is in effect but will not survive a restart)", ErrHistoryWrite, l.opts.HistoryFile, err)
		l.log.Error("version history not saved", "err", l.writeErr)
		return gen, l.writeErr
	}
	l.savedBody, l.writeErr = body, nil
	return gen, nil
}
