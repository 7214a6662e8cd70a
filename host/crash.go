package host

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/hothost/hothost/internal/crashmark"
)

// How the host knows, at start, what killed the process before it:
//
//   - the Go runtime's fatal report (an unrecovered panic on any goroutine,
//     `fatal error:`, a stack overflow) is copied to <data>/crash/fatal.txt
//     (debug.SetCrashOutput); plugin frames on the dying goroutine name
//     their version, since hhbuild gives every build its own plugin path;
//   - each lane's mark in shared memory (internal/crashmark) names the
//     version, message and player it was running: all there is after
//     os.Exit, which writes no report;
//   - HOTHOST_PREV_EXIT, set by whatever restarted the host (a supervisor,
//     a test, the systemd unit), says how it ended ("exit status 7",
//     "signal: killed"). A death by signal with no report is not the
//     plugin's doing (kill -9, the OOM killer) and quarantines nothing; a
//     death with no report and no known status is only suspected: it
//     quarantines a version the second time, never the first.
//
// A crash attributed to a version goes to Loader.RecordCrash, which
// quarantines the version if the crash came within its probation window
// or is its second: one bad build costs at most one crash.

// PrevExitEnv names the environment variable through which a supervisor
// tells a new host how the previous one ended, as exec's ProcessState
// prints it ("exit status 7", "signal: killed").
const PrevExitEnv = "HOTHOST_PREV_EXIT"

// CrashReport is what the host found at start about the previous
// process's unclean exit, and what it did about it.
type CrashReport struct {
	Noticed     time.Time `json:"noticed"`               // the start that found it
	Exit        string    `json:"exit"`                  // how the process ended, if known
	Cause       string    `json:"cause,omitempty"`       // the runtime's fatal line, if it wrote one
	Running     []string  `json:"running,omitempty"`     // lane marks: what was in plugin code
	Module      string    `json:"module,omitempty"`      // the version it is attributed to
	Version     string    `json:"version,omitempty"`     //
	Reason      string    `json:"reason"`                // in words, as given to the loader
	Quarantined bool      `json:"quarantined,omitempty"` // the version was taken out of service
	ReportFile  string    `json:"report_file,omitempty"` // the runtime's report, kept
}

func (h *Host[T, C]) crashDir() string { return filepath.Join(h.opts.DataDir, "crash") }

// armCrashOutput moves the previous process's fatal report aside (returned
// as its path, "" if it wrote none) and sends this process's to a fresh file.
func (h *Host[T, C]) armCrashOutput() (prev string, err error) {
	dir := h.crashDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("host: crash dir: %w", err)
	}
	cur := filepath.Join(dir, "fatal.txt")
	if st, err := os.Stat(cur); err == nil && st.Size() > 0 {
		prev = filepath.Join(dir, "last-fatal.txt")
		if err := os.Rename(cur, prev); err != nil {
			return "", fmt.Errorf("host: keep the last fatal report: %w", err)
		}
	}
	f, err := os.OpenFile(cur, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return prev, fmt.Errorf("host: crash output: %w", err)
	}
	defer f.Close() // SetCrashOutput keeps its own descriptor
	if err := debug.SetCrashOutput(f, debug.CrashOptions{}); err != nil {
		return prev, fmt.Errorf("host: crash output: %w", err)
	}
	return prev, nil
}

// attributeCrash runs at start, after the state was opened and before the
// first plugin poll. unclean says the state was not closed cleanly.
func (h *Host[T, C]) attributeCrash(reportFile string, marks []crashmark.Mark, unclean bool) *CrashReport {
	if reportFile == "" && len(marks) == 0 && !unclean {
		return h.loadLastCrash()
	}
	cr := &CrashReport{Noticed: time.Now(), Exit: os.Getenv(PrevExitEnv), ReportFile: reportFile}
	if cr.Exit == "" {
		cr.Exit = "unknown"
	}
	for _, m := range marks {
		cr.Running = append(cr.Running, m.String())
	}
	at := time.Now()
	if reportFile != "" {
		if st, err := os.Stat(reportFile); err == nil {
			at = st.ModTime()
		}
		cause, funcs, err := readFatalReport(reportFile)
		if err != nil {
			h.log.Error("read the last fatal report", "file", reportFile, "err", err)
		}
		cr.Cause = cause
		if mod, ver, fn, ok := h.pluginOf(funcs); ok {
			msg := fn
			for _, m := range marks {
				if m.Module == mod && m.Version == ver {
					msg = m.Msg
				}
			}
			cr.Module, cr.Version = mod, ver
			cr.Reason = fmt.Sprintf("host died: %s in %s %s %s", cause, mod, ver, msg)
		} else {
			cr.Reason = fmt.Sprintf("host died: %s; no plugin frame on the dying goroutine, nothing quarantined", cause)
		}
	} else if m, ok := oneVersion(marks); ok && !strings.HasPrefix(cr.Exit, "signal") {
		status := strings.TrimPrefix(cr.Exit, "exit ")
		if cr.Exit == "unknown" {
			status = "status unknown"
		}
		cr.Module, cr.Version = m.Module, m.Version
		cr.Reason = fmt.Sprintf("host exited (%s) while %s %s ran %s for player %d", status, m.Module, m.Version, m.Msg, m.Player)
	} else if len(marks) > 0 {
		cr.Reason = fmt.Sprintf("host ended (%s) while plugin code ran (%s); not attributed: %s", cr.Exit,
			strings.Join(cr.Running, "; "), map[bool]string{true: "a signal from outside", false: "several versions were running"}[ok])
	} else {
		cr.Reason = fmt.Sprintf("host ended (%s) outside plugin code; nothing quarantined", cr.Exit)
	}
	if cr.Module != "" {
		record := h.loader.RecordCrash
		if cr.Exit == "unknown" && reportFile == "" {
			// Only a mark: a kill -9 from outside looks the same. It counts
			// toward the second-crash rule, never quarantines alone.
			record = h.loader.RecordSuspectedCrash
		}
		q, err := record(cr.Module, cr.Version, cr.Reason, at)
		if err != nil {
			h.log.Error("record the crash in the version history", "module", cr.Module, "version", cr.Version, "err", err)
		}
		cr.Quarantined = q
		h.metrics.crashes.WithLabelValues(cr.Module, cr.Version).Inc()
	}
	h.log.Error("the previous process did not exit cleanly", "reason", cr.Reason, "quarantined", cr.Quarantined,
		"exit", cr.Exit, "running", strings.Join(cr.Running, "; "), "report", reportFile)
	if b, err := json.MarshalIndent(cr, "", "  "); err == nil {
		if err := writeFileAtomic(filepath.Join(h.crashDir(), "last.json"), b); err != nil {
			h.log.Warn("keep the crash report", "err", err)
		}
	}
	return cr
}

// loadLastCrash reads the last unclean exit recorded by an earlier start,
// for the status page; nil if none (or unreadable: it is only a report).
func (h *Host[T, C]) loadLastCrash() *CrashReport {
	b, err := os.ReadFile(filepath.Join(h.crashDir(), "last.json"))
	if err != nil {
		return nil
	}
	var cr CrashReport
	if json.Unmarshal(b, &cr) != nil {
		return nil
	}
	return &cr
}

// oneVersion returns a mark if every mark names the same version.
func oneVersion(marks []crashmark.Mark) (crashmark.Mark, bool) {
	if len(marks) == 0 {
		return crashmark.Mark{}, false
	}
	for _, m := range marks[1:] {
		if m.Module != marks[0].Module || m.Version != marks[0].Version {
			return crashmark.Mark{}, false
		}
	}
	return marks[0], true
}

// readFatalReport returns the cause of a fatal report ("panic: boom",
// "fatal error: stack overflow") and the functions on the first goroutine
// it printed (the one that died), innermost first, with the function that
// created it last. A panic's report carries its message; a fatal error's
// message goes to stderr only, so its cause is read off the frames.
func readFatalReport(path string) (cause string, funcs []string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var system []string // the runtime stack printed before the goroutine's
	inG := false
scan:
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cause == "" && (strings.HasPrefix(line, "fatal error: ") || strings.HasPrefix(line, "panic: ")):
			cause = strings.TrimSuffix(line, " [recovered]")
		case !inG && strings.HasPrefix(line, "goroutine ") && strings.HasSuffix(line, ":"):
			inG = true
		case inG && line == "":
			break scan
		case strings.HasPrefix(line, "created by "):
			fn := strings.TrimPrefix(line, "created by ")
			if i := strings.Index(fn, " in goroutine "); i >= 0 {
				fn = fn[:i]
			}
			funcs = append(funcs, fn)
		case line != "" && !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, "...") && strings.Contains(line, "("):
			if i := strings.LastIndexByte(line, '('); i > 0 {
				line = line[:i]
			}
			if inG {
				funcs = append(funcs, line)
			} else {
				system = append(system, line)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return cause, funcs, err
	}
	if cause == "" {
		cause = fatalCause(system, funcs)
	}
	if cause == "" {
		return "", funcs, errors.New("no panic line and no recognisable fatal error in the report")
	}
	return cause, funcs, nil
}

// fatalCause names a fatal error by the runtime function that threw it.
func fatalCause(system, funcs []string) string {
	for _, f := range system {
		if f == "runtime.newstack" {
			return "fatal error: stack overflow"
		}
	}
	if len(funcs) > 0 {
		switch funcs[0] {
		case "internal/runtime/maps.fatal", "runtime.fatal":
			return "fatal error: concurrent map access"
		case "runtime.throw":
			return "fatal error"
		}
	}
	return ""
}

// pluginOf finds the first function of funcs that is plugin code and the
// version it belongs to: by its plugin path (a frame of the plugin's main
// package), or else by looking the function up in the symbol tables of the
// history's plugin files (a helper package of the plugin's own tree),
// skipping functions the host binary has itself.
func (h *Host[T, C]) pluginOf(funcs []string) (module, version, fn string, ok bool) {
	for _, f := range funcs {
		if mod, ver, ok := h.loader.VersionByPluginPath(f); ok {
			return mod, ver, shortFunc(f), true
		}
	}
	exe, _ := os.Executable()
	own := elfFuncs(exe)
	for _, f := range funcs {
		if own[f] || strings.HasPrefix(f, "runtime.") {
			continue
		}
		for _, v := range h.loader.Versions() {
			if v.File == "" || v.Module == "" {
				continue
			}
			if elfFuncs(v.File)[f] {
				return v.Module, v.Version, shortFunc(f), true
			}
		}
	}
	return "", "", "", false
}

// elfFuncs is the set of function symbols an ELF file defines (empty if it
// cannot be read).
func elfFuncs(path string) map[string]bool {
	out := map[string]bool{}
	f, err := elf.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	syms, _ := f.Symbols()
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Section != elf.SHN_UNDEF {
			out[s.Name] = true
		}
	}
	return out
}

// shortFunc is a function's name without its package path.
func shortFunc(f string) string {
	if i := strings.LastIndexByte(f, '/'); i >= 0 {
		f = f[i+1:]
	}
	if i := strings.IndexByte(f, '.'); i >= 0 {
		f = f[i+1:]
	}
	return f
}

// writeFileAtomic writes path crash-safely: a temp file, fsync, rename.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
