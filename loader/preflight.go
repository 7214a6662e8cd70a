package loader

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"plugin"
	"sort"
	"strings"
	"time"

	"github.com/hothost/hothost/abi"
)

// EnvPreflight names the environment variable that puts a binary in
// preflight mode; its value is the plugin's path.
const EnvPreflight = "HOTHOST_PREFLIGHT"

// PreflightArg is passed to the child as its only argument, so a binary
// whose main forgot to call PreflightMain fails on an unknown flag instead
// of starting up for real.
const PreflightArg = "-hothost.preflight"

// reportFD is the child's file descriptor for its report: stdout belongs to
// whatever the plugin's init chooses to print.
const reportFD = 3

// PreflightReport is what the preflight child found, sent as JSON.
type PreflightReport struct {
	OK       bool     `json:"ok"`
	Kind     string   `json:"kind,omitempty"`  // which sentinel, when !OK
	Error    string   `json:"error,omitempty"` // the details, when !OK
	Module   string   `json:"module,omitempty"`
	Version  string   `json:"version,omitempty"`
	ABI      string   `json:"abi,omitempty"`
	Handlers []string `json:"handlers,omitempty"`
	SelfTest string   `json:"selftest,omitempty"` // "passed" or "none"
}

// Err returns the report's failure as an error wrapping its sentinel.
func (r *PreflightReport) Err() error {
	if r.OK {
		return nil
	}
	return errOfKind(r.Kind, r.Error)
}

// IsPreflight reports whether this process was started as a preflight child.
func IsPreflight() bool { return os.Getenv(EnvPreflight) != "" }

// PreflightMain opens the plugin named by HOTHOST_PREFLIGHT, checks its
// descriptor and ABI constraint, runs its self-test, writes a JSON
// PreflightReport to fd 3 (stdout when fd 3 is not open) and exits: 0 when
// the plugin passed, 1 when it did not. It never returns. If the plugin's
// init panics, hangs or exits, this process dies and the parent says so.
func PreflightMain() {
	rep := preflight(os.Getenv(EnvPreflight))
	out := os.NewFile(reportFD, "preflight-report")
	if out == nil {
		out = os.Stdout
	} else if _, err := out.Stat(); err != nil {
		out = os.Stdout
	}
	if err := json.NewEncoder(out).Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, "preflight: write report:", err)
		os.Exit(2)
	}
	if !rep.OK {
		os.Exit(1)
	}
	os.Exit(0)
}

func preflight(path string) *PreflightReport {
	fail := func(err error) *PreflightReport {
		return &PreflightReport{Kind: kindOf(err), Error: err.Error()}
	}
	fn, err := parseFileName(filepath.Base(path))
	if err != nil {
		return fail(err)
	}
	p, err := plugin.Open(path)
	if err != nil {
		return fail(explainOpenError(err))
	}
	sym, err := p.Lookup(abi.Symbol)
	if err != nil {
		return fail(fmt.Errorf("%w: %v", ErrNoDescriptor, err))
	}
	m, err := checkModule(sym, fn)
	if err != nil {
		return fail(err)
	}
	rep := &PreflightReport{OK: true, Module: m.Name, Version: m.Version, ABI: m.ABI, SelfTest: "none"}
	for msg := range m.Handlers {
		rep.Handlers = append(rep.Handlers, msg)
	}
	sort.Strings(rep.Handlers)
	if m.SelfTest != nil {
		if err := runSelfTest(m.SelfTest); err != nil {
			return fail(err)
		}
		rep.SelfTest = "passed"
	}
	return rep
}

func runSelfTest(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: panicked: %v", ErrSelfTest, r)
		}
	}()
	if err := f(); err != nil {
		return fmt.Errorf("%w: %v", ErrSelfTest, err)
	}
	return nil
}

// execPreflight is the default Options.Preflight: it re-executes this
// binary in preflight mode and kills it when ctx (bounded by the
// PreflightTimeout) ends.
func execPreflight(ctx context.Context, path string) (*PreflightReport, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%w: find own executable: %v", ErrPreflight, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPreflight, err)
	}
	defer r.Close()
	cmd := exec.CommandContext(ctx, exe, PreflightArg)
	// A -race build sleeps a second before a clean exit, for its
	// goroutines' last reports; nobody waits on a preflight child's, and a
	// host preflights each plugin it starts with.
	cmd.Env = append(os.Environ(), EnvPreflight+"="+path, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.ExtraFiles = []*os.File{w} // fd 3 in the child
	var stderr capBuffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second // don't wait for pipes a killed child's grandchildren hold
	start := time.Now()
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("%w: start %s: %v", ErrPreflight, exe, err)
	}
	w.Close()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(r, 1<<20))
		got <- b
	}()
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w: no report within %v, child killed (an init that never returns?)%s",
			ErrPreflight, time.Since(start).Round(time.Millisecond), stderr.summary())
	}
	// The child has exited, so the report is in the pipe or never will be.
	// Read to EOF; only a grandchild holding the write end could delay EOF,
	// and for that case alone give up after a second.
	var b []byte
	select {
	case b = <-got:
	case <-time.After(time.Second):
		r.Close()
		b = <-got
	}
	var rep PreflightReport
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%w: child ended (%v) before reporting (an init that panics or calls os.Exit?)%s",
			ErrPreflight, werr, stderr.summary())
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%w: unreadable report %.80q: %v", ErrPreflight, b, err)
	}
	if !rep.OK && rep.Kind == "" {
		return nil, fmt.Errorf("%w: child failed without saying why%s", ErrPreflight, stderr.summary())
	}
	return &rep, nil
}

// capBuffer keeps the first 8 KiB a child writes: a panic's message comes first.
type capBuffer struct{ bytes.Buffer }

func (c *capBuffer) Write(p []byte) (int, error) {
	if room := 8<<10 - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// summary is the first few lines of what the child printed to stderr.
func (c *capBuffer) summary() string {
	s := strings.TrimSpace(c.String())
	if s == "" {
		return "; it printed nothing"
	}
	var lines []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" && len(lines) < 3 {
			lines = append(lines, line)
		}
	}
	return "; it printed: " + strings.Join(lines, " | ")
}

var errNoReport = errors.New("preflight returned no report")
