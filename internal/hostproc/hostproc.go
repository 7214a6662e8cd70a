// Package hostproc builds and runs real hothost processes for the demo, the
// end-to-end tests and the chaos runs: the binaries built by the Makefile's
// flags (inherited from the environment), plugins built by the real build
// tool, the host started as a child process, killed with SIGKILL or stopped
// with SIGTERM, and its admin API called over its Unix socket.
//
// It never fakes a part: everything it starts is the product itself.
package hostproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hothost/hothost/internal/loadgen"
	"github.com/hothost/hothost/ticket"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ModuleRoot is the directory holding the hothost go.mod, found from the
// working directory upwards.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module github.com/hothost/hothost\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("hostproc: hothost go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Bins are the paths of the built binaries.
type Bins struct {
	Root                          string // module root
	Hothost, Hotctl, Hhbuild, Dir string
}

// EnvRaceHost, set to 1, makes Build compile the host with -race (and so,
// through hhbuild -like, every plugin built for it): the end-to-end tests
// then run the whole host under the race detector.
const EnvRaceHost = "HOTHOST_RACE_HOST"

// Build compiles hothost, hotctl and hhbuild into dir with the build flags
// of the environment (the Makefile exports them), so the host matches the
// plugins hhbuild makes.
func Build(dir string) (*Bins, error) { return BuildTagged(dir, "") }

// BuildTagged is Build with build tags (go build -tags): a second host
// binary whose game state type differs, for an upgrade that migrates the
// segment. Plugins built with its Bins.Plugin get the same tags.
func BuildTagged(dir, tags string) (*Bins, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	if os.Getenv(EnvRaceHost) == "1" {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/hothost", "./cmd/hotctl", "./cmd/hhbuild")...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("hostproc: go build: %v\n%s", err, out)
	}
	return &Bins{Root: root, Dir: dir, Hothost: filepath.Join(dir, "hothost"), Hotctl: filepath.Join(dir, "hotctl"),
		Hhbuild: filepath.Join(dir, "hhbuild")}, nil
}

// Plugin builds plugins/<src> as module name at version into out and
// returns the .so path. The source directory is relative to the module root;
// flags go to hhbuild as they are.
func (b *Bins) Plugin(src, name, version, out string, flags ...string) (string, error) {
	cmd := exec.Command(b.Hhbuild, append([]string{"-src", src, "-name", name, "-version", version, "-out", out, "-like", b.Hothost}, flags...)...)
	cmd.Dir = b.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if o, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("hostproc: build plugin %s %s: %v\n%s", name, version, err, o)
	}
	return filepath.Join(out, name+"-"+version+".so"), nil
}

// Config says how to start one host.
type Config struct {
	Dir       string   // work directory: data/ and plugins-dir/ live here
	ShmDir    string   // shared memory directory
	StateName string   // segment name
	Capacity  int      // players (0: the host's default)
	Args      []string // more hothost flags
	Env       []string // more environment, KEY=value (hothost.PrevExitEnv, say)
	// Supervised starts hothost as it starts by default, a supervisor
	// holding the connections of one worker; otherwise it runs alone
	// (-no-supervisor), and killing it is killing the host.
	Supervised bool
}

// Proc is one running host process.
type Proc struct {
	Cmd    *exec.Cmd
	Cfg    Config
	Addr   string // client address
	Socket string // admin socket
	log    *lockedBuffer
	done   chan struct{}
	err    error
}

// Start starts a host and waits until its admin API answers and it serves
// clients, or until ctx ends.
func (b *Bins) Start(ctx context.Context, cfg Config) (*Proc, error) {
	args := []string{"-listen", "127.0.0.1:0", "-data", filepath.Join(cfg.Dir, "data"),
		"-plugins", filepath.Join(cfg.Dir, "plugins-dir"), "-shm-dir", cfg.ShmDir, "-state", cfg.StateName, "-poll", "50ms"}
	if cfg.Capacity > 0 {
		args = append(args, "-capacity", fmt.Sprint(cfg.Capacity))
	}
	if !cfg.Supervised {
		args = append(args, "-no-supervisor")
	}
	args = append(args, cfg.Args...)
	p := &Proc{Cfg: cfg, Socket: filepath.Join(cfg.Dir, "data", "admin.sock"), log: &lockedBuffer{}, done: make(chan struct{})}
	os.Remove(p.Socket) // a socket left by a killed host must not answer for the new one
	p.Cmd = exec.Command(b.Hothost, args...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.log, p.log
	p.Cmd.Env = append(os.Environ(), cfg.Env...)
	if err := p.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("hostproc: start hothost: %w", err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	for {
		var st struct {
			PID     int    `json:"pid"`
			Clients string `json:"clients"`
		}
		// A supervised host's admin API is its worker's.
		if err := p.Admin(ctx, "GET", "/v1/status", &st); err == nil && (st.PID == p.Cmd.Process.Pid || cfg.Supervised) && st.Clients != "" {
			p.Addr = st.Clients
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("hostproc: hothost exited before serving: %v\n%s", p.err, p.Log())
		case <-ctx.Done():
			p.Kill()
			return nil, fmt.Errorf("hostproc: hothost not serving: %w\n%s", ctx.Err(), p.Log())
		case <-time.After(20 * time.Millisecond): // polling the admin socket until it answers
		}
	}
}

// WorkerPID is the pid of the process serving now: the worker of a
// supervised host (it changes at each restart), else the host's own.
func (p *Proc) WorkerPID(ctx context.Context) (int, error) {
	var st struct {
		PID int `json:"pid"`
	}
	if err := p.Admin(ctx, "GET", "/v1/status", &st); err != nil {
		return 0, err
	}
	return st.PID, nil
}

// Admin calls the admin API over the Unix socket and decodes the JSON answer
// into out (when not nil). A non-2xx answer is an error carrying the body.
func (p *Proc) Admin(ctx context.Context, method, path string, out any) error {
	return AdminCall(ctx, p.Socket, method, path, out)
}

// AdminCall is Admin for a socket path.
func AdminCall(ctx context.Context, socket, method, path string, out any) error {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, method, "http://hothost"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("hostproc: %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(body)))
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits for a clean exit.
func (p *Proc) Stop() error {
	p.Cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	return p.err
}

// Ticket mints a login ticket for player with the host's key (made in its
// data directory at its first start), valid for an hour.
func (p *Proc) Ticket(player uint64) (string, error) {
	return p.Tickets()(player)
}

// Tickets is a loadgen.Tickets minting with the host's key; a key that
// cannot be read makes every call fail with that error.
func (p *Proc) Tickets() loadgen.Tickets {
	key, err := ticket.LoadKey(filepath.Join(p.Cfg.Dir, "data", "ticket.key"))
	if err != nil {
		return func(uint64) (string, error) { return "", fmt.Errorf("hostproc: %w", err) }
	}
	return loadgen.KeyTickets(key, time.Hour)
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// RaceReport is the race detector's first report in the host's output, or
// "" when there is none.
func (p *Proc) RaceReport() string {
	log := p.Log()
	i := strings.Index(log, "WARNING: DATA RACE")
	if i < 0 {
		return ""
	}
	return log[i:min(len(log), i+4000)]
}

// Log is everything the host printed so far.
func (p *Proc) Log() string { return p.log.String() }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Install copies a built plugin (and its sidecars) into a plugin directory
// the way an operator should: sidecars first, the .so renamed into place.
func Install(so, pluginDir string) error {
	base := filepath.Base(so)
	for _, ext := range []string{".sig", ".sha256", ""} {
		src := so + ext
		b, err := os.ReadFile(src)
		if errors.Is(err, os.ErrNotExist) && ext == ".sig" {
			continue
		}
		if err != nil {
			return fmt.Errorf("hostproc: install %s: %w", base, err)
		}
		tmp := filepath.Join(pluginDir, "."+base+ext+".tmp")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return fmt.Errorf("hostproc: install %s: %w", base, err)
		}
		if err := os.Rename(tmp, filepath.Join(pluginDir, base+ext)); err != nil {
			return fmt.Errorf("hostproc: install %s: %w", base, err)
		}
	}
	return nil
}
