package loader

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// MarkBad takes module version out of service for good, as a failed
// probation does: its state becomes bad with reason; if it is active, the
// version active before it is restored (with none, the module's messages
// go unhandled); a pin on it is removed. It works on a version known only
// from the history file (not loaded in this process), and the mark is
// durable: after a restart the version is not even opened (see StateBad).
// Event EventMarkedBad. Marking a bad version again changes nothing.
func (l *Loader) MarkBad(module, version, reason string) error {
	return l.change(func() error {
		r, err := l.lineLocked(module, version)
		if err != nil {
			return err
		}
		if s, _, _, _ := r.liveLocked(); s != StateBad {
			l.markBadLocked(r, reason, EventMarkedBad)
		}
		return nil
	})
}

// RecordCrash attributes a crash of the process at time at (zero: now) to
// module version, with the cause in words (for example "host died: fatal
// error: stack overflow in coin 5.0.3 work"). The version's crash count,
// kept in the history across restarts, goes up by one. The version is
// quarantined, that is marked bad like MarkBad with cause as its reason
// (event EventQuarantined), when the crash happened within ProbationWindow
// of its last activation (a negative window disables this rule), or when it
// is its second crash in the history: one bad build costs at most one
// crash, never a crash loop (invariant 11).
//
// A host calls it at start, before the first Poll, for the crash that ended
// the previous process: the version is then known from the history file
// only, and the first Poll activates the version that served before it.
// quarantined reports whether this call quarantined the version (false
// when it was bad already).
func (l *Loader) RecordCrash(module, version, cause string, at time.Time) (quarantined bool, err error) {
	return l.recordCrash(module, version, cause, at, true)
}

// RecordSuspectedCrash is RecordCrash for a death that only may have been
// the version's doing: the process died while it ran, but nothing says
// how (no fatal report, no exit status: a kill -9 or the OOM killer look
// the same as os.Exit). It counts toward the second-crash rule only, so a
// kill from outside that happens to land in a handler never quarantines a
// version by itself.
func (l *Loader) RecordSuspectedCrash(module, version, cause string, at time.Time) (quarantined bool, err error) {
	return l.recordCrash(module, version, cause, at, false)
}

func (l *Loader) recordCrash(module, version, cause string, at time.Time, window bool) (quarantined bool, err error) {
	if at.IsZero() {
		at = time.Now()
	}
	var crashes int
	err = l.change(func() error {
		r, err := l.lineLocked(module, version)
		if err != nil {
			return err
		}
		r.crashes++
		r.lastCrash, crashes = at, r.crashes
		s, _, activated, _ := r.liveLocked()
		w := l.opts.ProbationWindow
		inWindow := window && w > 0 && !activated.IsZero() && !at.Before(activated) && at.Sub(activated) <= w
		if s != StateBad && (inWindow || r.crashes >= 2) {
			quarantined = true
			l.markBadLocked(r, cause, EventQuarantined)
		}
		return nil
	})
	if err == nil && !quarantined {
		l.log.Warn("plugin crash recorded", "module", module, "version", version, "crashes", crashes, "cause", cause,
			"quarantined", false)
	}
	return quarantined, err
}

// VersionByPluginPath maps a plugin path as it names a plugin's functions
// in a stack trace (hothostplugin/coin_5_0_3_ab12cd34ef567890, the path
// hhbuild gives every build) to the module and version built with it. A
// whole function name (the path followed by ".work", ".init.func1", ...)
// is accepted too. It answers from the history, so it works at start,
// before the file is loaded; a path no history line has gives ok false.
func (l *Loader) VersionByPluginPath(pluginPath string) (module, version string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var best *record
	for _, r := range l.history {
		p := r.pluginPath
		if p == "" || r.module == "" || pluginPath != p && !strings.HasPrefix(pluginPath, p+".") {
			continue
		}
		if best == nil || best.err != nil {
			best = r // a version's own line over a rejection of the same build
		}
	}
	if best == nil {
		return "", "", false
	}
	return best.module, best.version, true
}

// HistoryError reports what is wrong with the history file: why it could
// not be used at start (wrapping ErrHistoryInvalid, ErrHistoryVersion,
// ErrHistoryTruncated, ErrHistoryChecksum, or the error reading it; the file
// was moved aside and the Loader started without it), and, until a save
// succeeds again, why the last save failed (ErrHistoryWrite). nil when all
// is well, or without Options.HistoryFile.
func (l *Loader) HistoryError() error {
	l.saveMu.Lock()
	defer l.saveMu.Unlock()
	return errors.Join(l.histErr, l.writeErr)
}

// lineLocked returns the history line of module version: the loaded one if
// any, else the latest.
func (l *Loader) lineLocked(module, ver string) (*record, error) {
	var found *record
	for _, r := range l.history {
		if r.isVersion(module, ver) {
			if r.v != nil {
				return r, nil
			}
			found = r
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: %s %s", ErrUnknownVersion, module, ver)
	}
	return found, nil
}

func (l *Loader) recordOfLocked(v *version) *record {
	for _, r := range l.history {
		if r.v == v {
			return r
		}
	}
	return nil
}

// badPhrases complete "restored: <version> ..." in the activation reason of
// the version that takes over.
var badPhrases = map[EventKind]string{
	EventProbationFailed: "failed probation",
	EventMarkedBad:       "was marked bad",
	EventQuarantined:     "was quarantined",
}

// markBadLocked takes r's version out of service for good: a pin on it is
// removed; if it is active, the previous good version is restored or, with
// none, the module's messages go unhandled; its state becomes bad.
func (l *Loader) markBadLocked(r *record, reason string, kind EventKind) {
	ms := l.modules[r.module]
	if ms != nil && ms.pinned == r.version {
		ms.pinned = ""
		reason += "; pin removed"
	}
	if v := r.v; v != nil {
		v.probation.Store(nil)
		if ms.active == v {
			if prev := popGood(ms); prev != nil {
				reason += "; restored " + prev.version
				l.activateLocked(ms, prev, false, "restored: "+v.version+" "+badPhrases[kind])
			} else {
				ms.active = nil
				reason += "; no earlier version, the module's messages are unhandled"
				l.storeLocked()
			}
		}
	}
	r.setLocked(StateBad, reason)
	l.eventLocked(Event{Kind: kind, Module: r.module, Version: r.version, File: r.file, Reason: reason})
}
